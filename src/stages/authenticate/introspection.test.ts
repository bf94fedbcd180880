import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';

interface Endpoint {
  url: string;
  calls: { authorization: string | undefined; token: string }[];
  close(): Promise<void>;
}

/** A real RFC 7662 endpoint: tokens in `active` are active with the given claims. */
async function startIntrospection(active: Record<string, Record<string, unknown>>): Promise<Endpoint> {
  const calls: Endpoint['calls'] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const token = new URLSearchParams(body).get('token') ?? '';
      calls.push({ authorization: req.headers.authorization, token });
      const claims = active[token];
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(claims ? { active: true, ...claims } : { active: false }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/introspect`,
    calls,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const future = () => Math.floor(Date.now() / 1000) + 3600;

describe('opaque tokens by introspection', () => {
  let upstream: TestUpstream;
  let endpoint: Endpoint;
  let gw: TestGateway;

  before(async () => {
    upstream = await startUpstream();
    endpoint = await startIntrospection({
      'opaque-alice': { sub: 'alice', scope: 'orders:read orders:write', exp: future(), tenant: 'acme' },
      'opaque-expired': { sub: 'bob', scope: 'orders:read', exp: Math.floor(Date.now() / 1000) - 10 },
      'opaque-other-issuer': { sub: 'mallory', exp: future(), iss: 'https://evil.example' },
      'opaque-carol': { sub: 'carol', scope: 'orders:read', exp: future() },
      'opaque-refresh': { sub: 'alice', exp: future(), token_type: 'refresh_token' },
    });
    process.env.PC_TEST_INTROSPECTION_SECRET = 's3cret:with/odd chars';
    gw = await startTestGateway({
      listen: { trusted_proxies: ['127.0.0.1'] },
      auth: {
        introspection: {
          providers: [
            {
              name: 'opaque',
              endpoint: endpoint.url,
              client_id: 'portcullis gw',
              client_secret: '${env:PC_TEST_INTROSPECTION_SECRET}',
            },
          ],
        },
        brute_force: { max_failures: 3, max_failures_per_ip: 3, window: '1m', lockout: '2s' },
      },
      upstreams: { app: { url: upstream.url } },
      routes: [
        { path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' },
        { path: '/public', methods: ['GET'], upstream: 'app', auth: 'none' },
      ],
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
    await endpoint.close();
  });

  const bearer = (token: string, ip = '198.51.100.1') => ({
    headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': ip },
  });

  it('lets an active token through and tells the upstream who called', async () => {
    const reply = await send(gw.url, '/orders', {
      headers: {
        authorization: 'Bearer opaque-alice',
        'x-portcullis-subject': 'admin',
        'x-portcullis-tenant': 'globex',
        'x-forwarded-for': '198.51.100.1',
      },
    });
    assert.equal(reply.status, 200);
    const headers = reply.json().headers as Record<string, string>;
    assert.equal(headers['x-portcullis-subject'], 'alice');
    assert.equal(headers['x-portcullis-tenant'], 'acme');
    assert.equal(headers['x-portcullis-scopes'], 'orders:read orders:write');
    assert.equal(headers['x-portcullis-auth'], 'jwt');
  });

  it('authenticates to the endpoint with form-encoded Basic credentials (RFC 6749 §2.3.1)', () => {
    const expected = `Basic ${Buffer.from('portcullis+gw:s3cret%3Awith%2Fodd+chars').toString('base64')}`;
    assert.equal(endpoint.calls[0]?.authorization, expected);
  });

  it('reuses a cached result instead of asking again', async () => {
    const before = endpoint.calls.length;
    assert.equal((await send(gw.url, '/orders', bearer('opaque-alice'))).status, 200);
    assert.equal(endpoint.calls.length, before);
  });

  it('answers 401 with invalid_token and nothing more for an inactive token', async () => {
    const reply = await send(gw.url, '/orders', bearer('opaque-unknown', '198.51.100.2'));
    assert.equal(reply.status, 401);
    assert.equal(reply.headers['www-authenticate'], 'Bearer realm="portcullis", error="invalid_token"');
    assert.equal(reply.json().code, 'auth.invalid_credentials');
    assert.doesNotMatch(reply.body, /inactive|unknown|opaque/);
  });

  it('refuses an active answer whose exp has passed', async () => {
    assert.equal((await send(gw.url, '/orders', bearer('opaque-expired', '198.51.100.3'))).status, 401);
  });

  it('answers 401 with a challenge when no credential is sent', async () => {
    const reply = await send(gw.url, '/orders', { headers: { 'x-forwarded-for': '198.51.100.4' } });
    assert.equal(reply.status, 401);
    assert.equal(reply.json().code, 'auth.required');
    assert.equal(reply.headers['www-authenticate'], 'Bearer realm="portcullis"');
  });

  it('still serves public routes without credentials', async () => {
    assert.equal((await send(gw.url, '/public')).status, 200);
  });

  it('locks out an IP after repeated failures, before asking the endpoint again', async () => {
    const ip = '203.0.113.9';
    for (let i = 0; i < 3; i++) {
      assert.equal((await send(gw.url, '/orders', bearer(`guess-${i}`, ip))).status, 401);
    }
    const before = endpoint.calls.length;
    const locked = await send(gw.url, '/orders', bearer('opaque-carol', ip));
    assert.equal(locked.status, 429);
    assert.equal(locked.json().code, 'auth.locked_out');
    assert.ok(Number(locked.headers['retry-after']) >= 1);
    assert.equal(endpoint.calls.length, before, 'no introspection while locked out');
    // A token already introspected (cached) passes: others' failures never refuse it.
    assert.equal((await send(gw.url, '/orders', bearer('opaque-alice', ip))).status, 200);
    // Another client is not affected.
    assert.equal((await send(gw.url, '/orders', bearer('opaque-carol', '203.0.113.10'))).status, 200);
  });

  it('refuses a refresh token (token_type) with 401, without counting it as a guess', async () => {
    const reply = await send(gw.url, '/orders', bearer('opaque-refresh', '198.51.100.7'));
    assert.equal(reply.status, 401);
    assert.match(
      JSON.stringify(gw.logs.filter((l) => l.msg === 'authentication failed').at(-1)),
      /wrong_token_type/,
    );
  });

  it('lifts the lockout when it expires', async () => {
    await new Promise((r) => setTimeout(r, 2100));
    assert.equal((await send(gw.url, '/orders', bearer('opaque-alice', '203.0.113.9'))).status, 200);
  });

  it('fails closed with 503 when the endpoint is down', async () => {
    const down = await startTestGateway({
      auth: {
        introspection: {
          providers: [
            {
              name: 'down',
              endpoint: 'http://127.0.0.1:1/introspect',
              client_id: 'a',
              client_secret: '${env:PC_TEST_INTROSPECTION_SECRET}',
            },
          ],
        },
      },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' }],
    });
    try {
      const before = upstream.requests.length;
      const reply = await send(down.url, '/orders', bearer('opaque-alice'));
      assert.equal(reply.status, 503);
      assert.equal(reply.json().code, 'auth.unavailable');
      assert.equal(upstream.requests.length, before);
    } finally {
      await down.close();
    }
  });
});

describe('introspection checks audience and token type', () => {
  let upstream: TestUpstream;
  let endpoint: Endpoint;
  let gw: TestGateway;

  before(async () => {
    upstream = await startUpstream();
    endpoint = await startIntrospection({
      'for-orders': { sub: 'a', aud: 'orders', exp: future() },
      'for-several': { sub: 'b', aud: ['billing', 'orders'], exp: future() },
      'for-billing': { sub: 'c', aud: 'billing', exp: future() },
      'no-audience': { sub: 'd', exp: future() },
      'bearer-type': { sub: 'e', aud: 'orders', token_type: 'Bearer', exp: future() },
      'access-type': { sub: 'f', aud: 'orders', token_type: 'access_token', exp: future() },
      'refresh-type': { sub: 'g', aud: 'orders', token_type: 'refresh_token', exp: future() },
      'id-type': { sub: 'h', aud: 'orders', token_type: 'id_token', exp: future() },
    });
    process.env.PC_TEST_INTROSPECTION_SECRET = 's3cret';
    gw = await startTestGateway({
      auth: {
        introspection: {
          providers: [
            {
              name: 'opaque',
              endpoint: endpoint.url,
              audience: ['orders'],
              client_id: 'gw',
              client_secret: '${env:PC_TEST_INTROSPECTION_SECRET}',
            },
          ],
        },
      },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' }],
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
    await endpoint.close();
  });

  const status = async (token: string) =>
    (await send(gw.url, '/orders', { headers: { authorization: `Bearer ${token}` } })).status;

  it('accepts a token whose aud names the configured audience, as a string or in a list', async () => {
    assert.equal(await status('for-orders'), 200);
    assert.equal(await status('for-several'), 200);
  });

  it('refuses a token issued for another API with 401', async () => {
    assert.equal(await status('for-billing'), 401);
  });

  it('refuses a token without aud when an audience is configured', async () => {
    assert.equal(await status('no-audience'), 401);
  });

  it('accepts access token types', async () => {
    assert.equal(await status('bearer-type'), 200);
    assert.equal(await status('access-type'), 200);
  });

  it('refuses a refresh token with 401', async () => {
    assert.equal(await status('refresh-type'), 401);
  });

  it('refuses an ID token with 401', async () => {
    assert.equal(await status('id-type'), 401);
  });
});
