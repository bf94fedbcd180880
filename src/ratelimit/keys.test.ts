import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import type { Principal } from '../contracts/principal.js';
import { makeContext, principal, testRoute } from '../test-support/stage.js';
import { parseKeyPart } from './compile.js';
import { clientIpKey, compileKey, parseIpv6 } from './keys.js';

function ctx(options: {
  ip?: string;
  principal?: Principal;
  headers?: Record<string, string>;
  route?: string;
}) {
  const req = { headers: options.headers ?? {}, method: 'GET' } as unknown as IncomingMessage;
  return makeContext(req, {} as ServerResponse, {
    route: testRoute(options.route ?? 'orders'),
    clientIp: options.ip ?? '192.0.2.1',
    principal: options.principal,
  });
}

const key = (spec: string[], c: ReturnType<typeof ctx>, v6 = 64) => compileKey(spec.map(parseKeyPart), v6)(c);

describe('client IP keys', () => {
  it('keys every address of one IPv6 /64 as one client, so rotating addresses does not escape the limit', () => {
    const a = clientIpKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd', 64);
    const b = clientIpKey('2001:db8:1:2::1', 64);
    const other = clientIpKey('2001:db8:1:3::1', 64);
    assert.equal(a, '2001:db8:1:2:0:0:0:0/64');
    assert.equal(a, b);
    assert.notEqual(a, other);
  });

  it('honours the configured prefix length, including one inside a group', () => {
    assert.equal(clientIpKey('2001:db8:abcd:12ff::1', 56), '2001:db8:abcd:1200:0:0:0:0/56');
    assert.equal(clientIpKey('2001:db8::1', 128), '2001:db8:0:0:0:0:0:1/128');
  });

  it('normalises IPv4-mapped IPv6 addresses to IPv4, in any spelling', () => {
    assert.equal(clientIpKey('::ffff:192.0.2.7', 64), '192.0.2.7');
    assert.equal(clientIpKey('::ffff:c000:207', 64), '192.0.2.7');
    assert.equal(clientIpKey('0:0:0:0:0:ffff:192.0.2.7', 64), '192.0.2.7');
  });

  it('drops a zone and spells one address one way', () => {
    assert.equal(clientIpKey('fe80::1%eth0', 64), clientIpKey('FE80:0:0:0::2', 64));
    assert.deepEqual(parseIpv6('::'), [0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(parseIpv6('1::'), [1, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(parseIpv6('not-an-ip'), undefined);
  });
});

describe('limit keys', () => {
  const jwt = principal('jwt', 'user-1', { tenant: 'acme', claims: { client_id: 'app-7', plan: 'gold' } });
  const apiKey = principal('api_key', 'key_abc');

  it('reads each kind of part from the request', () => {
    assert.equal(key(['ip'], ctx({ ip: '198.51.100.9' })), '198.51.100.9');
    assert.equal(key(['api_key'], ctx({ principal: apiKey })), 'key_abc');
    assert.equal(key(['client'], ctx({ principal: jwt })), 'app-7');
    assert.equal(key(['principal'], ctx({ principal: jwt })), 'jwt:user-1');
    assert.equal(key(['tenant'], ctx({ principal: jwt })), 'acme');
    assert.equal(key(['route'], ctx({ route: 'export' })), 'export');
    assert.equal(key(['claim:plan'], ctx({ principal: jwt })), 'gold');
    assert.equal(key([], ctx({})), '*');
  });

  it('combines parts, e.g. principal + route', () => {
    assert.equal(
      key(['principal', 'route'], ctx({ principal: apiKey, route: 'export' })),
      'api_key:key_abc|export',
    );
  });

  it('does not count a request that lacks a part of the key', () => {
    assert.equal(key(['api_key'], ctx({ principal: jwt })), undefined);
    assert.equal(key(['principal', 'route'], ctx({})), undefined);
    assert.equal(key(['tenant'], ctx({ principal: apiKey })), undefined);
    assert.equal(key(['header:x-tenant'], ctx({})), undefined);
  });

  it('keeps a principal of one kind apart from an API key with the same id', () => {
    const lookalike = principal('jwt', 'key_abc');
    assert.notEqual(
      key(['principal'], ctx({ principal: lookalike })),
      key(['principal'], ctx({ principal: apiKey })),
    );
  });

  it('hashes header values: bounded, and never a client secret in Redis or the logs', () => {
    const secret = 'Bearer eyJhbGciOiJIUzI1NiJ9.secret-part';
    const k = key(['header:Authorization'], ctx({ headers: { authorization: secret } }))!;
    assert.equal(k.length, 22);
    assert.ok(!k.includes('secret'));
    assert.equal(k, key(['header:authorization'], ctx({ headers: { authorization: secret } })));
  });

  it('refuses a key header sent twice, which could otherwise pick a fresh bucket per request', () => {
    const req = {
      headers: { 'x-client': 'victim' },
      rawHeaders: ['X-Client', 'victim', 'X-Client', 'fresh-1'],
      method: 'GET',
    } as unknown as IncomingMessage;
    const c = makeContext(req, {} as ServerResponse, { route: testRoute('orders'), clientIp: '192.0.2.1' });
    assert.throws(() => key(['header:x-client'], c), { code: 'request.bad_header' });
    assert.ok(key(['header:x-client'], ctx({ headers: { 'x-client': 'victim' } })));
  });

  it('cannot be made to collide by a "|" inside a part', () => {
    const a = key(['principal', 'route'], ctx({ principal: principal('jwt', 'a|b'), route: 'c' }));
    const b = key(['principal', 'route'], ctx({ principal: principal('jwt', 'a'), route: 'b|c' }));
    assert.notEqual(a, b);
  });
});
