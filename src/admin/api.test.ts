/**
 * The admin API over real HTTP, against a real gateway: authentication,
 * the role × operation matrix, body protections, every act audited, and
 * acts that take effect on the public side.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { adminApi, type Reply, send } from '../test-support/http.js';
import { BODY_OPERATIONS, OPERATIONS } from './api/index.js';
import { adminOpenApiDocument } from './api/openapi.js';
import { runAdminCommand } from './tokens/cli.js';
import { ADMIN_ROLES, type AdminRole, roleAllows } from './tokens/store.js';

const PEPPER = 'admin-api-test-pepper-0123456789';

function baseConfig(upstreamUrl: string, extra: Record<string, unknown> = {}) {
  return {
    listen: { trusted_proxies: ['127.0.0.1'] },
    auth: { api_keys: { pepper: '${env:PORTCULLIS_TEST_ADMIN_PEPPER}', cache_ttl: '1s' } },
    blocks: { refresh: '1h' },
    upstreams: { app: { url: upstreamUrl } },
    routes: [
      { path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' },
      { path: '/public', methods: ['GET'], upstream: 'app', auth: 'none' },
    ],
    ...extra,
  };
}

async function cliToken(gw: TestGateway, role: AdminRole, name = `${role} test`): Promise<string> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runAdminCommand(['tokens', 'create', '--role', role, '--name', name], {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    env: { ...process.env, PORTCULLIS_CONFIG: gw.configFile, PORTCULLIS_DATA: gw.dataDir },
  });
  assert.equal(code, 0, err.join('\n'));
  return out.join('').trim();
}

const api = (gw: TestGateway, token: string | undefined) => adminApi(gw.adminUrl, token);

function assertProblem(reply: Reply, status: number, code?: string): void {
  assert.equal(reply.status, status, reply.body);
  assert.match(String(reply.headers['content-type']), /^application\/problem\+json/);
  const p = reply.json<{ status: number; code: string }>();
  assert.equal(p.status, status);
  if (code !== undefined) assert.equal(p.code, code);
}

const within = async (ms: number, check: () => Promise<boolean>) => {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
};

/** A concrete path for an operation's template, with a made-up id. */
const concrete = (path: string) => path.replace('{id}', 'key_AAAAAAAAAAAAAAAA');

describe('the admin API', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  const tokens = {} as Record<AdminRole, string>;

  before(async () => {
    process.env.PORTCULLIS_TEST_ADMIN_PEPPER = PEPPER;
    upstream = await startUpstream();
    gw = await startTestGateway(baseConfig(upstream.url));
    for (const role of ADMIN_ROLES) tokens[role] = await cliToken(gw, role);
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  describe('authentication', () => {
    it('answers 401 problem+json to every operation without a token, with a Bearer challenge', async () => {
      for (const o of OPERATIONS) {
        const reply = await api(gw, undefined)(o.method, concrete(o.path));
        assertProblem(reply, 401, 'auth.required');
        assert.match(String(reply.headers['www-authenticate']), /^Bearer /);
      }
    });

    it('answers 401 to a made-up, a truncated or a non-bearer token, and 200 to a real one', async () => {
      const real = tokens.viewer;
      for (const bad of [
        'pcla_AAAAAAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBCCCCCC',
        real.slice(0, -1),
        `${real.slice(0, -8)}AAAAAAAA`,
      ]) {
        assertProblem(await api(gw, bad)('GET', '/admin/whoami'), 401, 'auth.invalid_credentials');
      }
      assertProblem(
        await api(gw, undefined)('GET', '/admin/whoami', undefined, { authorization: `Basic ${real}` }),
        401,
      );
      const ok = await api(gw, real)('GET', '/admin/whoami');
      assert.equal(ok.status, 200, ok.body);
      assert.deepEqual(
        { name: ok.json().name, role: ok.json().role },
        { name: 'viewer test', role: 'viewer' },
      );
    });

    it('never serves the admin API on the public listener', async () => {
      const reply = await send(gw.url, '/admin/whoami', {
        headers: { authorization: `Bearer ${tokens.admin}` },
      });
      assert.equal(reply.status, 404);
    });

    it('keeps /healthz, /readyz and /metrics open as before', async () => {
      for (const path of ['/healthz', '/readyz', '/metrics']) {
        assert.equal((await send(gw.adminUrl, path)).status, 200, path);
      }
    });
  });

  describe('roles', () => {
    it('let each role call exactly the operations at or below it (viewer cannot revoke, operator cannot reload)', async () => {
      const refusedOf: Record<string, string[]> = {};
      const allowedOf: Record<string, string[]> = {};
      for (const role of ADMIN_ROLES) {
        for (const o of OPERATIONS) {
          // Made-up ids and empty bodies: allowed calls end in 200, 400, 404 or 409, changing nothing.
          const reply = await api(gw, tokens[role])(
            o.method,
            concrete(o.path),
            BODY_OPERATIONS.has(o.operationId) ? {} : undefined,
          );
          const name = `${o.method} ${o.path}`;
          if (roleAllows(role, o.role)) {
            assert.ok(
              ![401, 403].includes(reply.status) && reply.status < 500,
              `${role} ${name}: ${reply.body}`,
            );
            allowedOf[role] = [...(allowedOf[role] ?? []), name];
          } else {
            assertProblem(reply, 403, 'authz.forbidden');
            refusedOf[role] = [...(refusedOf[role] ?? []), name];
          }
        }
      }
      assert.ok(refusedOf.viewer?.includes('POST /admin/keys/{id}/revoke'));
      assert.ok(refusedOf.viewer?.includes('POST /admin/blocks'));
      assert.ok(refusedOf.operator?.includes('POST /admin/reload'));
      assert.ok(refusedOf.operator?.includes('POST /admin/tokens'));
      assert.ok(allowedOf.operator?.includes('POST /admin/keys/{id}/revoke'));
      assert.equal(refusedOf.admin, undefined);
    });
  });

  describe('its OpenAPI description', () => {
    it('describes every operation handled, with its role, and nothing else', async () => {
      const reply = await api(gw, tokens.viewer)('GET', '/admin/openapi.json');
      assert.equal(reply.status, 200);
      const doc = reply.json<{
        openapi: string;
        paths: Record<string, Record<string, Record<string, unknown>>>;
      }>();
      assert.equal(doc.openapi, '3.1.0');
      assert.deepEqual(doc, JSON.parse(JSON.stringify(adminOpenApiDocument())));
      const described = Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.entries(ops).map(
          ([method, o]) => `${method.toUpperCase()} ${path} ${o.operationId} ${o['x-portcullis-role']}`,
        ),
      );
      const handled = OPERATIONS.map((o) => `${o.method} ${o.path} ${o.operationId} ${o.role}`);
      assert.deepEqual([...described].sort(), [...handled].sort());
      const withBody = Object.values(doc.paths).flatMap((ops) =>
        Object.values(ops)
          .filter((o) => o.requestBody !== undefined)
          .map((o) => String(o.operationId)),
      );
      assert.deepEqual(withBody.sort(), [...BODY_OPERATIONS].sort());
      for (const o of OPERATIONS) {
        const params = (doc.paths[o.path]?.[o.method.toLowerCase()]?.parameters ?? []) as {
          name: string;
          in: string;
        }[];
        assert.deepEqual(
          params.filter((p) => p.in === 'query').map((p) => p.name),
          [...o.query],
          `query parameters of ${o.operationId}`,
        );
      }
    });
  });

  describe('request bodies', () => {
    const post = (body: string, headers: Record<string, string> = {}) =>
      api(gw, tokens.operator)('POST', '/admin/blocks', body, headers);

    it('refuse other media types with 415', async () => {
      assertProblem(await post('kind=ip', { 'content-type': 'application/x-www-form-urlencoded' }), 415);
      assertProblem(await post('{}', { 'content-type': 'text/plain' }), 415);
      assertProblem(await post('{}', { 'content-encoding': 'gzip' }), 415);
    });

    it('refuse malformed JSON, non-objects, repeated or unknown members with 400', async () => {
      assertProblem(await post('{"kind": "ip",'), 400, 'request.bad_json');
      assertProblem(await post('[1]'), 400, 'input.invalid');
      assertProblem(
        await post('{"kind":"ip","subject":"203.0.113.9","duration":"1h","kind":"principal"}'),
        400,
        'input.invalid',
      );
      assertProblem(
        await post(JSON.stringify({ kind: 'ip', subject: '203.0.113.9', duration: '1h', admin: true })),
        400,
        'input.invalid',
      );
    });

    it('refuse a body over admin.api.max_body with 413, never 500', async () => {
      const big = JSON.stringify({
        kind: 'ip',
        subject: '203.0.113.9',
        duration: '1h',
        reason: 'x'.repeat(70_000),
      });
      assertProblem(await post(big), 413, 'request.body_too_large');
    });

    it('are refused with 400 where the operation takes none', async () => {
      assertProblem(
        await api(gw, tokens.admin)('POST', '/admin/reload', { force: true }),
        400,
        'input.invalid',
      );
      // Node's client sends a GET body without framing unless told its length.
      assertProblem(
        await api(gw, tokens.viewer)('GET', '/admin/keys', {}, { 'content-length': '2' }),
        400,
        'input.invalid',
      );
    });

    it('accept a well-formed body', async () => {
      const reply = await post(JSON.stringify({ kind: 'ip', subject: '203.0.113.250', duration: '1m' }));
      assert.equal(reply.status, 201, reply.body);
    });
  });

  describe('API keys', () => {
    it('creates a key, shown once, that then works against the gateway; lists it without any secret', async () => {
      const call = api(gw, tokens.operator);
      const created = await call('POST', '/admin/keys', {
        name: 'ci',
        scopes: ['orders:read'],
        expires_in: '1d',
      });
      assert.equal(created.status, 201, created.body);
      const { key, record } = created.json<{ key: string; record: { id: string } }>();
      assert.match(key, /^pcl_/);
      const orders = await send(gw.url, '/orders', { headers: { 'x-api-key': key } });
      assert.equal(orders.status, 200, orders.body);
      assert.equal((await send(gw.url, '/orders')).status, 401);

      const listed = await api(gw, tokens.viewer)('GET', '/admin/keys');
      assert.equal(listed.status, 200);
      assert.ok(listed.json<{ keys: { id: string }[] }>().keys.some((k) => k.id === record.id));
      assert.ok(!listed.body.includes(key.slice(22, 60)), 'the secret is not listed');
      assert.doesNotMatch(listed.body, /digest|pcl_/);
    });

    it('creates a key restricted to named routes, and refuses a route name the config does not have', async () => {
      const call = api(gw, tokens.operator);
      const unknown = await call('POST', '/admin/keys', {
        name: 'typo',
        scopes: ['a'],
        routes: ['GET /ordres'],
      });
      assertProblem(unknown, 400);
      assert.match(unknown.body, /no route is named/);
      const created = await call('POST', '/admin/keys', {
        name: 'orders only',
        scopes: ['a'],
        routes: ['GET /orders'],
      });
      assert.equal(created.status, 201, created.body);
      const { key, record } = created.json<{ key: string; record: { routes: string[] } }>();
      assert.deepEqual(record.routes, ['GET /orders']);
      assert.equal((await send(gw.url, '/orders', { headers: { 'x-api-key': key } })).status, 200);
    });

    it('revokes a key: the gateway refuses it within a second; a second revoke changes nothing', async () => {
      const call = api(gw, tokens.operator);
      const { key, record } = (await call('POST', '/admin/keys', { name: 'doomed', scopes: ['a'] })).json<{
        key: string;
        record: { id: string };
      }>();
      assert.equal((await send(gw.url, '/orders', { headers: { 'x-api-key': key } })).status, 200);
      const revoked = await call('POST', `/admin/keys/${record.id}/revoke`);
      assert.equal(revoked.status, 200, revoked.body);
      assert.equal(revoked.json<{ record: { status: string } }>().record.status, 'revoked');
      assert.ok(
        await within(
          3000,
          async () => (await send(gw.url, '/orders', { headers: { 'x-api-key': key } })).status === 401,
        ),
      );
      assert.equal((await call('POST', `/admin/keys/${record.id}/revoke`)).json().alreadyRevoked, true);
      assertProblem(await call('POST', '/admin/keys/key_ZZZZZZZZZZZZZZZZ/revoke'), 404);
    });

    it('rotates a key: both work during the overlap, and the old one cannot be rotated twice', async () => {
      const call = api(gw, tokens.operator);
      const { key, record } = (await call('POST', '/admin/keys', { name: 'rotating', scopes: ['a'] })).json<{
        key: string;
        record: { id: string };
      }>();
      const rotated = await call('POST', `/admin/keys/${record.id}/rotate`, { overlap: '1h' });
      assert.equal(rotated.status, 201, rotated.body);
      const next = rotated.json<{ key: string; previous: { replacedBy: string } }>();
      assert.notEqual(next.key, key);
      for (const k of [key, next.key]) {
        assert.equal((await send(gw.url, '/orders', { headers: { 'x-api-key': k } })).status, 200);
      }
      assertProblem(await call('POST', `/admin/keys/${record.id}/rotate`, {}), 409, 'keys.already_rotated');
    });
  });

  describe('blocks', () => {
    it('added through the API take effect at once, only on their subject, and lift again', async () => {
      const ip = '203.0.113.77';
      const from = (addr: string) => send(gw.url, '/public', { headers: { 'x-forwarded-for': addr } });
      assert.equal((await from(ip)).status, 200);
      const added = await api(gw, tokens.operator)('POST', '/admin/blocks', {
        kind: 'ip',
        subject: ip,
        duration: '1h',
        status: 403,
        reason: 'incident 42',
      });
      assert.equal(added.status, 201, added.body);
      const block = added.json<{ block: { id: string } }>().block;
      const refused = await from(ip);
      assert.equal(refused.status, 403);
      assert.equal(refused.json().code, 'client.blocked');
      assert.equal((await from('203.0.113.78')).status, 200);

      const listed = await api(gw, tokens.viewer)('GET', '/admin/blocks');
      assert.ok(listed.json<{ blocks: { id: string }[] }>().blocks.some((b) => b.id === block.id));

      assert.equal((await api(gw, tokens.operator)('DELETE', `/admin/blocks/${block.id}`)).status, 200);
      assert.equal((await from(ip)).status, 200);
      assertProblem(await api(gw, tokens.operator)('DELETE', `/admin/blocks/${block.id}`), 409);
    });

    it('refuse a block without a valid kind or duration with 400', async () => {
      const call = api(gw, tokens.operator);
      assertProblem(
        await call('POST', '/admin/blocks', { kind: 'country', subject: 'x', duration: '1h' }),
        400,
      );
      assertProblem(
        await call('POST', '/admin/blocks', { kind: 'ip', subject: '203.0.113.1', duration: 'soon' }),
        400,
      );
      assertProblem(
        await call('POST', '/admin/blocks', { kind: 'ip', subject: 'not an ip', duration: '1h' }),
        400,
      );
    });
  });

  describe('token revocations, alerts, routes and status', () => {
    it('records a token revocation and lists it', async () => {
      const call = api(gw, tokens.operator);
      const made = await call('POST', '/admin/revocations', {
        kind: 'sub',
        subject: 'mallory',
        reason: 'stolen laptop',
      });
      assert.equal(made.status, 201, made.body);
      const listed = await call('GET', '/admin/revocations');
      assert.ok(
        listed
          .json<{ revocations: { kind: string; subject: string }[] }>()
          .revocations.some((r) => r.kind === 'sub' && r.subject === 'mallory'),
      );
      assertProblem(
        await call('POST', '/admin/revocations', { kind: 'before', issued_before: '2999-01-01T00:00:00Z' }),
        400,
      );
    });

    it('explains a request with the running config: denied without credentials, allowed with a key', async () => {
      const { key } = (
        await api(gw, tokens.operator)('POST', '/admin/keys', { name: 'explained', scopes: ['a'] })
      ).json<{ key: string }>();
      const call = api(gw, tokens.viewer);
      const denied = await call('POST', '/admin/explain', { method: 'GET', target: '/orders' });
      assert.equal(denied.status, 200, denied.body);
      assert.deepEqual(
        { decision: denied.json().decision, status: denied.json().status, route: denied.json().route },
        { decision: 'deny', status: 401, route: denied.json().route },
      );
      const allowed = await call('POST', '/admin/explain', { method: 'GET', target: '/orders', key });
      assert.equal(allowed.json().decision, 'allow', allowed.body);
      assert.ok(!allowed.body.includes(key), 'the key is not echoed');
      assertProblem(
        await call('POST', '/admin/explain', { method: 'GET', target: '/orders', key, token: 'x' }),
        400,
      );
      assertProblem(await call('POST', '/admin/explain', { method: 'get', target: 'orders' }), 400);
    });

    it('lists alerts', async () => {
      const reply = await api(gw, tokens.viewer)('GET', '/admin/alerts?since=1h&limit=10');
      assert.equal(reply.status, 200);
      assert.ok(Array.isArray(reply.json().alerts));
      assertProblem(await api(gw, tokens.viewer)('GET', '/admin/alerts?limit=0'), 400);
      assertProblem(await api(gw, tokens.viewer)('GET', '/admin/alerts?limit=5&limit=1000'), 400);
      assertProblem(await api(gw, tokens.viewer)('GET', '/admin/alerts?debug=1'), 400);
    });

    it('shows the routes with their effective policies and no secret', async () => {
      const reply = await api(gw, tokens.viewer)('GET', '/admin/routes');
      assert.equal(reply.status, 200);
      const routes = reply.json<{ routes: { path: string; auth: unknown; authorize: unknown }[] }>().routes;
      const orders = routes.find((r) => r.path === '/orders');
      assert.ok((orders?.auth as string[] | undefined)?.includes('api_key'), reply.body);
      assert.equal(orders?.authorize, 'any-authenticated');
      assert.ok(!reply.body.includes(PEPPER));
    });

    it('reports readiness and the config version in force', async () => {
      const reply = await api(gw, tokens.viewer)('GET', '/admin/status');
      assert.equal(reply.status, 200);
      const status = reply.json<{
        ready: boolean;
        checks: Record<string, { state: string }>;
        config: { version: string };
      }>();
      assert.equal(status.ready, true);
      assert.equal(status.checks.store?.state, 'up');
      assert.match(status.config.version, /^sha256:[0-9a-f]{16}$/);
      assert.ok(!reply.body.includes(PEPPER));
    });
  });

  describe('reload', () => {
    it('swaps in the edited config for an admin, and is refused to an operator', async () => {
      assertProblem(await api(gw, tokens.operator)('POST', '/admin/reload'), 403);
      const before = (await api(gw, tokens.viewer)('GET', '/admin/status')).json<{
        config: { version: string };
      }>();
      assert.equal((await send(gw.url, '/new')).status, 404);
      const config = baseConfig(upstream.url);
      config.routes.push({ path: '/new', methods: ['GET'], upstream: 'app', auth: 'none' });
      const text = readFileSync(gw.configFile, 'utf8');
      writeFileSync(
        gw.configFile,
        `${text}\n# edited\n`.replace(/routes:[\s\S]*?\n(?=\S)/, `${stringify({ routes: config.routes })}`),
      );
      const reply = await api(gw, tokens.admin)('POST', '/admin/reload');
      assert.equal(reply.status, 200, reply.body);
      assert.equal((await send(gw.url, '/new')).status, 200);
      const afterStatus = (await api(gw, tokens.viewer)('GET', '/admin/status')).json<{
        config: { version: string };
      }>();
      assert.notEqual(afterStatus.config.version, before.config.version);
    });

    it('keeps the previous config serving when the file is invalid, with a 409 problem', async () => {
      const text = readFileSync(gw.configFile, 'utf8');
      writeFileSync(gw.configFile, `${text}\nnot_a_key: true\n`);
      try {
        assertProblem(await api(gw, tokens.admin)('POST', '/admin/reload'), 409, 'config.reload_failed');
        assert.equal((await send(gw.url, '/public')).status, 200);
      } finally {
        writeFileSync(gw.configFile, text);
      }
    });
  });

  describe('admin tokens', () => {
    it('an admin makes a token through the API that works at once, lists it without its secret, and revokes it', async () => {
      const call = api(gw, tokens.admin);
      const made = await call('POST', '/admin/tokens', { role: 'viewer', name: 'dashboard' });
      assert.equal(made.status, 201, made.body);
      const { token, record } = made.json<{ token: string; record: { id: string } }>();
      assert.match(token, /^pcla_/);
      assert.equal((await api(gw, token)('GET', '/admin/whoami')).json().name, 'dashboard');
      const listed = await call('GET', '/admin/tokens');
      assert.ok(listed.body.includes(record.id));
      assert.ok(!listed.body.includes(token));
      assert.doesNotMatch(listed.body, /pcla_|digest/);
      assert.equal((await call('DELETE', `/admin/tokens/${record.id}`)).status, 200);
      assertProblem(await api(gw, token)('GET', '/admin/whoami'), 401);
    });
  });

  describe('the audit chain', () => {
    it('records every act with the admin token id, name and role, and verifies', async () => {
      const call = api(gw, tokens.operator);
      const whoami = (await call('GET', '/admin/whoami')).json<{ id: string }>();
      await call('POST', '/admin/blocks', { kind: 'principal', subject: 'eve', duration: '5m' });
      const key = (await call('POST', '/admin/keys', { name: 'audited', scopes: ['a'] })).json<{
        record: { id: string };
      }>();
      await call('POST', `/admin/keys/${key.record.id}/revoke`);
      await call('POST', '/admin/revocations', { kind: 'jti', subject: 'tok-1' });
      await gw.running.audit.flush();
      const events = await gw.running.audit.repository.search({ principal: `admin-api:${whoami.id}` }, 100);
      const actions = events.map((e) => (e as { action: string | null }).action);
      // This test's acts, and the earlier tests' (rotate, lift) by the same token.
      for (const action of [
        'block.added',
        'block.lifted',
        'key.created',
        'key.revoked',
        'key.rotated',
        'token.revoked',
      ]) {
        assert.ok(actions.includes(action), `${action} in ${actions.join(', ')}`);
      }
      const adminId = (await api(gw, tokens.admin)('GET', '/admin/whoami')).json<{ id: string }>().id;
      const adminActs = (
        await gw.running.audit.repository.search({ principal: `admin-api:${adminId}` }, 100)
      ).map((e) => (e as { action: string | null }).action);
      for (const action of [
        'config.reload_requested',
        'config.reload_failed',
        'admin_token.created',
        'admin_token.revoked',
      ]) {
        assert.ok(adminActs.includes(action), `${action} in ${adminActs.join(', ')}`);
      }
      const viewerId = (await api(gw, tokens.viewer)('GET', '/admin/whoami')).json<{ id: string }>().id;
      const viewerActs = (
        await gw.running.audit.repository.search({ principal: `admin-api:${viewerId}` }, 200)
      ).map((e) => e as { action: string | null; target: string | null; data: string | null });
      // The role matrix logs every role in to the console (POST /admin/session): that act is audited,
      // and so is each call it made above the viewer's role; reading is not an act.
      assert.deepEqual(
        viewerActs.filter((e) => e.action !== 'admin.login' && e.action !== 'admin.forbidden'),
        [],
        'reading is not an act',
      );
      const refused = viewerActs.filter((e) => e.action === 'admin.forbidden');
      const refusedOps = new Set(refused.map((e) => e.target));
      for (const o of OPERATIONS.filter((o) => !roleAllows('viewer', o.role))) {
        assert.ok(refusedOps.has(o.operationId), `a refused ${o.operationId} is audited`);
      }
      assert.ok(!refusedOps.has('whoami'), 'an allowed call is not audited as refused');
      assert.match(refused.find((e) => e.target === 'revokeKey')?.data ?? '', /"needed_role":"operator"/);
      const detail = events.map((e) => (e as { data: string | null }).data).join('\n');
      assert.match(detail, /"admin_role":"operator"/);
      assert.match(detail, /"admin_name":"operator test"/);
      assert.match(detail, new RegExp(`"admin_id":"${whoami.id}"`));

      const searched = await api(gw, tokens.viewer)('GET', `/admin/audit/events?action=key.revoked&limit=5`);
      assert.equal(searched.status, 200);
      assert.ok(searched.json<{ events: unknown[] }>().events.length >= 1);

      const verify = await api(gw, tokens.viewer)('GET', '/admin/audit/verify');
      assert.equal(verify.status, 200, verify.body);
      assert.equal(verify.json().ok, true, verify.body);
    });

    it('records token creation and revocation made with the CLI', async () => {
      await gw.running.audit.flush();
      const events = await gw.running.audit.repository.search({ action: 'admin_token.created' }, 100);
      assert.ok(events.length >= ADMIN_ROLES.length);
    });
  });
});

describe('the admin API under guessing', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    process.env.PORTCULLIS_TEST_ADMIN_PEPPER = PEPPER;
    upstream = await startUpstream();
    gw = await startTestGateway(
      baseConfig(upstream.url, {
        auth: {
          api_keys: { pepper: '${env:PORTCULLIS_TEST_ADMIN_PEPPER}' },
          brute_force: { max_failures_per_ip: 3, lockout: '1m' },
        },
      }),
    );
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('locks out an IP after repeated bad tokens with 429 and Retry-After, even for a good token', async () => {
    const good = await cliToken(gw, 'viewer');
    assert.equal((await api(gw, good)('GET', '/admin/whoami')).status, 200);
    for (let i = 0; i < 3; i++) {
      const guess = `pcla_${String(i).repeat(16)}_${'G'.repeat(43)}ABCDEF`;
      assertProblem(await api(gw, guess)('GET', '/admin/whoami'), 401);
    }
    const locked = await api(gw, good)('GET', '/admin/whoami');
    assertProblem(locked, 429, 'auth.locked_out');
    assert.ok(Number(locked.headers['retry-after']) >= 1);
  });
});
