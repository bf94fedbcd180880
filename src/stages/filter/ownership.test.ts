/**
 * Ownership decided on the response, from outside: a real gateway in front
 * of an upstream that answers whatever object is asked for, to whoever asks.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import { ConfigError, loadConfig } from '../../config/load.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';

const SECRET = 'a-token-secret-for-the-response-ownership-tests';
const SECRET_ENV = 'PORTCULLIS_OWNERSHIP_TEST_SECRET';

const THINGS = [
  { id: 1, user_id: 'u1', name: 'one' },
  { id: 2, user_id: 'u2', name: 'two' },
  { id: 3, user_id: 'u1', name: 'three' },
];

function answer(res: ServerResponse, status: number, value: unknown, type = 'application/json'): true {
  res.writeHead(status, { 'content-type': type });
  res.end(typeof value === 'string' ? value : JSON.stringify(value));
  return true;
}

/** Answers every object to everyone, like an upstream that trusts the gateway to decide. */
function naiveUpstream(): Promise<TestUpstream> {
  return startUpstream((req, res) => {
    const url = req.url ?? '';
    const one = /^\/(?:things|off|shadow)\/(\w+)$/.exec(url);
    if (url === '/things' || url === '/strict/things') return answer(res, 200, THINGS);
    if (url === '/page') return answer(res, 200, { data: THINGS, next: 'cursor-2' });
    if (url === '/page-broken') return answer(res, 200, { data: 'nope' });
    if (one?.[1] === 'missing') return answer(res, 404, { error: 'no such thing' });
    if (one?.[1] === 'unowned') return answer(res, 200, { id: 9, name: 'nobody’s' });
    if (one) return answer(res, 200, { ...THINGS[Number(one[1]) - 1], secret: `s${one[1]}` });
    if (url === '/docs/1') return answer(res, 200, { id: 1, meta: { tenant: 'acme' }, text: 'acme plans' });
    if (url === '/big') return answer(res, 200, { user_id: 'u1', pad: 'x'.repeat(5000) });
    if (url === '/text') return answer(res, 200, 'user_id=u2 secret=s2', 'text/plain');
    return answer(res, 404, { error: 'no route' });
  });
}

const route = (name: string, path: string, authorize: unknown, extra: Record<string, unknown> = {}) => ({
  name,
  path,
  methods: ['GET'],
  upstream: 'api',
  authorize,
  // Inspection's 10ms CPU budget can be passed by a cold first request on a shared test machine.
  inspection: { timeout: '500ms' },
  ...extra,
});

describe('ownership decided on the response', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  const as = new Map<string, Record<string, string>>();

  before(async () => {
    process.env[SECRET_ENV] = SECRET;
    upstream = await naiveUpstream();
    gw = await startTestGateway({
      log: { level: 'info' },
      auth: {
        jwt: {
          providers: [
            {
              name: 'test',
              issuer: 'urn:test',
              audience: ['api'],
              algorithms: ['HS256'],
              hmac_secret: `\${env:${SECRET_ENV}}`,
              tenant_claim: 'tenant',
              roles_claim: 'roles',
            },
          ],
        },
      },
      upstreams: { api: { url: upstream.url } },
      routes: [
        route('things', '/things', { owner: { response: '$.user_id' } }),
        route('strict', '/strict/things', { owner: { response: '/user_id', items: 'refuse' } }),
        route('page', '/page', { owner: { response: '/user_id', collection: '/data' } }),
        route('page-broken', '/page-broken', { owner: { response: '/user_id', collection: '/data' } }),
        route('thing', '/things/{id}', { owner: { response: 'user_id', status: 403 } }),
        route('doc', '/docs/{id}', { tenant: { response: '/meta/tenant' } }),
        route(
          'big',
          '/big',
          { owner: { response: '/user_id' } },
          { responses: { max_bytes: '1kb', pass_through_large: true } },
        ),
        route('text', '/text', { owner: { response: '/user_id' } }),
        route('off', '/off/{id}', { owner: { response: '/user_id' } }, { responses: { mode: 'off' } }),
        route('shadow', '/shadow/{id}', { mode: 'shadow', owner: { response: '/user_id' } }),
      ],
    });
    const token = (sub: string, tenant: string) =>
      new SignJWT({ tenant, roles: [] })
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
        .setIssuer('urn:test')
        .setAudience('api')
        .setSubject(sub)
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(SECRET));
    as.set('u1', { authorization: `Bearer ${await token('u1', 'acme')}` });
    as.set('u2', { authorization: `Bearer ${await token('u2', 'globex')}` });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('passes the owner’s object untouched and refuses anyone else’s (here with 403), body withheld', async () => {
    const own = await send(gw.url, '/things/1', { headers: as.get('u1') });
    assert.equal(own.status, 200, own.body);
    assert.deepEqual(own.json(), { id: 1, user_id: 'u1', name: 'one', secret: 's1' });
    const foreign = await send(gw.url, '/things/1', { headers: as.get('u2') });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.json().code, 'authz.forbidden');
    assert.ok(!foreign.body.includes('s1') && !foreign.body.includes('one'), foreign.body);
    assert.ok(gw.logs.some((l) => l.msg === 'authorization denied on the response' && l.route === 'thing'));
  });

  it('refuses an object without the field: it belongs to no one', async () => {
    const r = await send(gw.url, '/things/unowned', { headers: as.get('u1') });
    assert.equal(r.status, 403);
  });

  it('removes the items of a collection that are not the caller’s', async () => {
    const u1 = await send(gw.url, '/things', { headers: as.get('u1') });
    assert.equal(u1.status, 200);
    assert.deepEqual(
      u1.json<{ id: number }[]>().map((t) => t.id),
      [1, 3],
    );
    const u2 = await send(gw.url, '/things', { headers: as.get('u2') });
    assert.deepEqual(u2.json<{ id: number }[]>(), [THINGS[1]]);
    assert.equal(u2.headers['content-length'], String(Buffer.byteLength(u2.body)));
  });

  it('checks the items of a wrapped collection and keeps the wrapper', async () => {
    const r = await send(gw.url, '/page', { headers: as.get('u2') });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { data: [THINGS[1]], next: 'cursor-2' });
    const broken = await send(gw.url, '/page-broken', { headers: as.get('u2') });
    assert.equal(broken.status, 502);
  });

  it('or refuses the whole collection when the rule says items: refuse', async () => {
    const r = await send(gw.url, '/strict/things', { headers: as.get('u1') });
    assert.equal(r.status, 404);
    assert.equal(r.json().code, 'route.not_found');
    assert.ok(!r.body.includes('three'));
  });

  it('binds the tenant through a nested field', async () => {
    assert.equal((await send(gw.url, '/docs/1', { headers: as.get('u1') })).status, 200);
    const other = await send(gw.url, '/docs/1', { headers: as.get('u2') });
    assert.equal(other.status, 404);
    assert.ok(!other.body.includes('acme plans'));
  });

  it('reads the response whole: larger than the limit is refused with 502, even where large ones may pass', async () => {
    const r = await send(gw.url, '/big', { headers: as.get('u1') });
    assert.equal(r.status, 502);
    assert.equal(r.json().code, 'upstream.response_too_large');
  });

  it('refuses with 502 a response it cannot read for ownership', async () => {
    const r = await send(gw.url, '/text', { headers: as.get('u1') });
    assert.equal(r.status, 502);
    assert.equal(r.json().code, 'upstream.invalid_response');
    assert.ok(!r.body.includes('s2'));
  });

  it('answers the upstream’s own 404 like a foreign object’s', async () => {
    const missing = await send(gw.url, '/off/missing', { headers: as.get('u1') });
    const foreign = await send(gw.url, '/off/2', { headers: as.get('u1') });
    assert.equal(missing.status, 404);
    assert.equal(foreign.status, 404);
    assert.deepEqual(
      { ...missing.json<object>(), request_id: 0 },
      { ...foreign.json<object>(), request_id: 0 },
    );
  });

  it('still decides where response filtering is off', async () => {
    const own = await send(gw.url, '/off/2', { headers: as.get('u2') });
    assert.equal(own.status, 200);
    assert.equal(own.json().secret, 's2');
  });

  it('in shadow mode reports the would-be denial and lets the response through', async () => {
    const r = await send(gw.url, '/shadow/2', { headers: as.get('u1') });
    assert.equal(r.status, 200);
    assert.ok(gw.logs.some((l) => l.msg === 'authorization would deny the response (shadow)'));
  });
});

describe('checking rules decided on the response', () => {
  const load = async (authorize: unknown) => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-ownership-'));
    const file = join(dir, 'portcullis.yaml');
    writeFileSync(
      file,
      stringify({
        auth: { api_keys: {} },
        upstreams: { api: { url: 'http://127.0.0.1:1' } },
        routes: [{ path: '/things/{id}', methods: ['GET'], upstream: 'api', authorize }],
      }),
    );
    try {
      return await loadConfig(file, { env: { PORTCULLIS_DATA: dir } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const messages = async (authorize: unknown) => {
    try {
      await load(authorize);
      return [];
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.issues.map((i) => `${i.path}: ${i.message}`);
    }
  };

  it('accepts a JSON Pointer and a simple path, with the status and items options', async () => {
    await load({ owner: { response: '/user_id', status: 403, items: 'refuse' } });
    await load({ tenant: { response: '$.meta.tenant' } });
  });

  it('refuses a rule that binds nothing, options without response, and a malformed field', async () => {
    assert.match((await messages({ owner: { claim: 'sub' } })).join('\n'), /expected param .* or response/);
    assert.match(
      (await messages({ owner: { param: 'path.id', status: 403 } })).join('\n'),
      /status, items and collection apply to rules decided on the response/,
    );
    for (const owner of [
      { response: '$..x' },
      { response: '/x', status: 500 },
      { response: '/x', items: 'x' },
    ]) {
      assert.match((await messages({ owner })).join('\n'), /^routes\[0\]\.authorize: expected/);
    }
  });
});
