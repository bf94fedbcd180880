/**
 * The policy matrix of the demo API: every principal against every route,
 * through a real gateway in front of the real demo upstream, and the same
 * cells through `portcullis explain`, which must agree.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { startOrdersApi } from '../demo/orders-api.js';
import { DEMO_SECRET_ENV, DEMO_USERS, type DemoUser, signDemoToken } from '../demo/tokens.js';
import { createApiKeyStore } from '../keys/store.js';
import { demoConfig } from '../test-support/demo.js';
import { startTestGateway, type TestGateway } from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { explainRequest } from './explain.js';

type Who = 'anonymous' | 'alice' | 'bob' | 'carol' | 'mallory' | 'narrow-key';
const WHO: Who[] = ['anonymous', 'alice', 'bob', 'carol', 'mallory', 'narrow-key'];

// mallory: a user of another tenant with broad scopes; narrow-key: an API key of tenant acme with orders:read only.
const MALLORY: DemoUser = {
  sub: '4',
  name: 'mallory',
  tenant: 'initech',
  roles: ['user'],
  scope: 'orders:read orders:write',
};

const NEW_ORDER = JSON.stringify({ item: 'widget', qty: 1 });

/** [method, target, expected status per principal in WHO order]. */
const MATRIX: [string, string, number[]][] = [
  ['GET', '/public/catalog', [200, 200, 200, 200, 200, 200]],
  ['GET', '/users/1', [401, 200, 403, 200, 403, 403]],
  ['GET', '/users/1/orders', [401, 200, 403, 200, 403, 403]],
  ['POST', '/users/1/orders', [401, 201, 403, 201, 403, 403]],
  ['GET', '/users/2/orders', [401, 403, 200, 200, 403, 403]],
  ['GET', '/orders/ord_1001', [401, 200, 404, 200, 404, 404]],
  ['GET', '/tenants/acme/orders', [401, 200, 403, 200, 403, 200]],
  ['GET', '/tenants/globex/orders', [401, 403, 200, 403, 403, 403]],
  ['GET', '/admin/users', [401, 403, 403, 200, 403, 403]],
  ['GET', '/admin/stats', [401, 403, 403, 200, 403, 403]],
  ['DELETE', '/orders/ord_2002', [401, 403, 403, 204, 403, 403]],
];

describe('the policy matrix of the demo API', () => {
  let gw: TestGateway;
  let api: Awaited<ReturnType<typeof startOrdersApi>>;
  const credentials = new Map<Who, Record<string, string>>();
  const claims = new Map<Who, Record<string, unknown>>();

  before(async () => {
    const secret = 'a-demo-token-secret-for-the-matrix-test-only';
    process.env[DEMO_SECRET_ENV] = secret;
    api = await startOrdersApi(0);
    gw = await startTestGateway(demoConfig(api.port, { logLevel: 'warn' }));
    const users: [Who, DemoUser][] = [
      ['alice', DEMO_USERS[0]!],
      ['bob', DEMO_USERS[1]!],
      ['carol', DEMO_USERS[2]!],
      ['mallory', MALLORY],
    ];
    for (const [who, user] of users) {
      const token = await signDemoToken(secret, user);
      credentials.set(who, { authorization: `Bearer ${token}` });
      claims.set(who, JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()));
    }
    const pepper = readFileSync(join(gw.dataDir, 'secrets', 'api-key-pepper'), 'utf8').trim();
    const keys = createApiKeyStore(gw.running.store, { pepper, logger: { warn() {} } });
    const { key } = await keys.create({ name: 'narrow', scopes: ['orders:read'], tenant: 'acme' });
    credentials.set('narrow-key', { 'x-api-key': key });
    credentials.set('anonymous', {});
  });

  after(async () => {
    await gw.close();
    await api.close();
  });

  for (const [method, target, expected] of MATRIX) {
    WHO.forEach((who, i) => {
      it(`${method} ${target} as ${who} → ${expected[i]}`, async () => {
        const body = method === 'POST' ? NEW_ORDER : undefined;
        const reply = await send(gw.url, target, {
          method,
          headers: { ...credentials.get(who), ...(body ? { 'content-type': 'application/json' } : {}) },
          ...(body ? { body } : {}),
        });
        assert.equal(reply.status, expected[i], reply.body);
        if (reply.status === 403) assert.equal(reply.json().code, 'authz.forbidden');
      });
    });
  }

  /** What the gateway answers, and what explain says of the same request. */
  async function bothWays(who: Who, method: string, target: string, body: string | undefined) {
    const headers = { ...credentials.get(who), ...(body ? { 'content-type': 'application/json' } : {}) };
    const reply = await send(gw.url, target, { method, headers, ...(body ? { body } : {}) });
    const gateway = gw.running.current();
    const e = await explainRequest(
      gateway.config,
      { store: gw.running.store, auth: gw.running.authServices() },
      { method, target, headers, clientIp: '127.0.0.1', ...(body ? { body } : {}) },
    );
    // The gateway's own answers are problem documents; anything else came from the upstream.
    const fromGateway = String(reply.headers['content-type']).startsWith('application/problem+json');
    const said = `${who} ${method} ${target}: gateway ${reply.status} ${reply.body.slice(0, 200)}; explain ${JSON.stringify(e)}`;
    // A rule decided on the response cannot be decided by a dry run: explain allows and says so.
    const onResponse = e.rules.some((r) => r.detail.startsWith('decided on the response'));
    if (fromGateway && onResponse && e.decision === 'allow') {
      assert.equal(reply.status, 404, said);
      assert.equal(reply.json().code, 'route.not_found', said);
    } else if (fromGateway) {
      assert.equal(e.decision, 'deny', said);
      assert.equal(e.status, reply.status, said);
      assert.equal(e.code, reply.json().code, said);
    } else {
      assert.equal(e.decision, 'allow', said);
    }
  }

  it('explain and the gateway agree on every cell of the matrix and on generated requests', async () => {
    for (const [method, target] of MATRIX) {
      for (const who of WHO) await bothWays(who, method, target, method === 'POST' ? NEW_ORDER : undefined);
    }
    const id = fc.constantFrom('1', '2', '3', '01', '%31', 'x', '1%2F2', '');
    const target = fc.oneof(
      fc.tuple(id).map(([u]) => `/users/${u}`),
      fc.tuple(id).map(([u]) => `/users/${u}/orders`),
      fc.tuple(fc.constantFrom('ord_1001', 'ord_2002', 'nope')).map(([o]) => `/orders/${o}`),
      fc.tuple(fc.constantFrom('acme', 'globex', 'ACME', 'initech')).map(([t]) => `/tenants/${t}/orders`),
      fc.constantFrom('/admin/users', '/admin/stats', '/public/catalog', '/nowhere', '/users/1/../2/orders'),
    );
    const query = fc.constantFrom('', '?userId=2', '?limit=5', '?limit=5000', '?x=1&x=2', '?_method=DELETE');
    const body = fc.constantFrom(undefined, NEW_ORDER, '{"item":"w","qty":1,"userId":"2"}', '{"item":1}');
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...WHO),
        fc.constantFrom('GET', 'POST', 'DELETE', 'PUT'),
        target,
        query,
        body,
        async (who, method, path, q, b) => bothWays(who, method, path + q, method === 'POST' ? b : undefined),
      ),
      { numRuns: 120 },
    );
  });

  it('portcullis explain prints the trail of a denied request, without calling the upstream', () => {
    const configFile = join(gw.dataDir, 'explain.yaml');
    writeFileSync(configFile, readFileSync(gw.configFile, 'utf8'));
    const args = [new URL('../cli/main.ts', import.meta.url).pathname, 'explain', '--config', configFile];
    args.push('--request', 'GET /users/1/orders', '--claims', JSON.stringify(claims.get('bob')));
    const r = spawnSync(process.execPath, ['--import', 'tsx', ...args], {
      encoding: 'utf8',
      env: { ...process.env, PORTCULLIS_DATA: gw.dataDir },
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /route +list-user-orders/);
    assert.match(
      r.stdout,
      /FAIL +any\[0\]\.owner\(path\.userId == sub\): request has "1"; principal has "2"/,
    );
    assert.match(r.stdout, /decision +DENY → 403 authz\.forbidden/);
  });
});
