import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';
import { type RunningOrdersApi, startOrdersApi } from './orders-api.js';

const JSON_TYPE = 'application/json; charset=utf-8';
const SECRET_FIELDS = new Set(['password_hash']);
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

interface Reply {
  status: number;
  contentType: string | null;
  body: unknown;
}

interface CallOptions {
  json?: unknown;
  raw?: string;
  headers?: Record<string, string>;
}

async function call(
  api: RunningOrdersApi,
  method: string,
  path: string,
  opts: CallOptions = {},
): Promise<Reply> {
  const payload = opts.raw ?? (opts.json === undefined ? undefined : JSON.stringify(opts.json));
  const res = await fetch(`http://127.0.0.1:${api.port}${path}`, {
    method,
    headers: { ...(payload === undefined ? {} : { 'content-type': 'application/json' }), ...opts.headers },
    body: payload,
  });
  const text = await res.text();
  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    body: text === '' ? undefined : JSON.parse(text),
  };
}

/** Sends `path` byte for byte, since fetch would resolve dot segments before sending. */
function rawGet(api: RunningOrdersApi, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: api.port, path }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
}

describe('the demo orders API', () => {
  let api: RunningOrdersApi;
  before(async () => {
    api = await startOrdersApi(0);
  });
  after(() => api.close());

  it('binds an ephemeral port when started on port 0', () => {
    assert.ok(api.port > 0);
  });

  it('reports itself healthy as UTF-8 JSON', async () => {
    const res = await call(api, 'GET', '/health');
    assert.equal(res.status, 200);
    assert.equal(res.contentType, JSON_TYPE);
    assert.deepEqual(res.body, { status: 'ok' });
  });

  it('lists the public catalog of products', async () => {
    const res = await call(api, 'GET', '/public/catalog');
    assert.equal(res.status, 200);
    assert.deepEqual(
      (res.body as { sku: string }[]).map((p) => p.sku),
      ['widget', 'gadget', 'gizmo'],
    );
  });

  it('returns a user with the internal fields that the gateway must filter out', async () => {
    const res = await call(api, 'GET', '/users/1');
    assert.equal(res.status, 200);
    const user = res.body as Record<string, unknown>;
    assert.equal(user['username'], 'alice');
    assert.equal(user['tenant'], 'acme');
    assert.equal(user['role'], 'user');
    assert.match(String(user['password_hash']), /^scrypt\$/);
    assert.equal(typeof user['internal_notes'], 'string');
  });

  it('answers a missing user with a JSON 404', async () => {
    const res = await call(api, 'GET', '/users/99');
    assert.equal(res.status, 404);
    assert.equal(res.contentType, JSON_TYPE);
    assert.deepEqual(res.body, { error: 'not_found', message: 'user not found' });
  });

  it("lists a user's orders, filtered by status and capped by limit", async () => {
    const all = await call(api, 'GET', '/users/1/orders');
    assert.deepEqual(
      (all.body as { id: string }[]).map((o) => o.id),
      ['ord_1001', 'ord_1002', 'ord_1003'],
    );
    const paid = await call(api, 'GET', '/users/1/orders?status=paid');
    assert.deepEqual(
      (paid.body as { id: string }[]).map((o) => o.id),
      ['ord_1001'],
    );
    const first = await call(api, 'GET', '/users/1/orders?limit=1');
    assert.equal((first.body as unknown[]).length, 1);
  });

  it('rejects a limit outside 1 to 100 or an unknown status with 400', async () => {
    for (const query of ['limit=0', 'limit=101', 'limit=abc', 'status=lost']) {
      const res = await call(api, 'GET', `/users/1/orders?${query}`);
      assert.equal(res.status, 400, query);
      assert.equal((res.body as { error: string }).error, 'invalid_query');
    }
  });

  it("creates a pending order owned by the user in the user's tenant, ignoring server-set fields", async () => {
    const res = await call(api, 'POST', '/users/2/orders', {
      json: { item: 'gadget', qty: 4, note: 'gift wrap', status: 'paid', owner: '1' },
    });
    assert.equal(res.status, 201);
    const order = res.body as Record<string, unknown>;
    assert.match(String(order['id']), /^ord_[0-9a-f]{16}$/);
    assert.deepEqual(
      { ...order, id: undefined, created_at: undefined },
      {
        id: undefined,
        created_at: undefined,
        owner: '2',
        tenant: 'globex',
        item: 'gadget',
        qty: 4,
        note: 'gift wrap',
        status: 'pending',
      },
    );
    const fetched = await call(api, 'GET', `/orders/${order['id']}`);
    assert.deepEqual(fetched.body, order);
  });

  it('rejects an order with an unknown item or a qty outside 1 to 100 with 400', async () => {
    for (const json of [
      { item: 'nothing', qty: 1 },
      { item: 'widget', qty: 0 },
      { item: 'widget', qty: 1.5 },
      [],
    ]) {
      const res = await call(api, 'POST', '/users/1/orders', { json });
      assert.equal(res.status, 400, JSON.stringify(json));
      assert.equal((res.body as { error: string }).error, 'invalid_body');
    }
  });

  it('answers malformed JSON with a JSON 400', async () => {
    const res = await call(api, 'POST', '/users/1/orders', { raw: '{"item": "widget",' });
    assert.equal(res.status, 400);
    assert.equal(res.contentType, JSON_TYPE);
    assert.equal((res.body as { error: string }).error, 'bad_json');
  });

  it('returns an order with its owner and tenant', async () => {
    const res = await call(api, 'GET', '/orders/ord_2001');
    assert.equal(res.status, 200);
    assert.deepEqual(
      { ...(res.body as object), created_at: undefined },
      {
        id: 'ord_2001',
        owner: '2',
        tenant: 'globex',
        item: 'gizmo',
        qty: 3,
        status: 'pending',
        created_at: undefined,
      },
    );
  });

  it('deletes an order with 204, after which it is gone', async () => {
    const res = await call(api, 'DELETE', '/orders/ord_1003');
    assert.equal(res.status, 204);
    assert.equal(res.body, undefined);
    assert.equal((await call(api, 'GET', '/orders/ord_1003')).status, 404);
    assert.equal((await call(api, 'DELETE', '/orders/ord_1003')).status, 404);
  });

  it('lists every user, across tenants, for admins', async () => {
    const res = await call(api, 'GET', '/admin/users');
    assert.equal(res.status, 200);
    const users = res.body as { id: string; username: string; role: string; tenant: string }[];
    assert.deepEqual(
      users.map((u) => [u.id, u.username, u.role, u.tenant]),
      [
        ['1', 'alice', 'user', 'acme'],
        ['2', 'bob', 'user', 'globex'],
        ['3', 'carol', 'admin', 'acme'],
      ],
    );
  });

  it('counts users, tenants and orders by status', async () => {
    const api2 = await startOrdersApi(0);
    try {
      const res = await call(api2, 'GET', '/admin/stats');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, {
        users: 3,
        orders: 6,
        tenants: 2,
        orders_by_status: { pending: 2, paid: 2, shipped: 1, cancelled: 1 },
      });
    } finally {
      await api2.close();
    }
  });

  it('echoes the method, the exact request target, the headers and the subject it received', async () => {
    const res = await call(api, 'GET', '/echo?b=2&a=%2e%2E&a=1', {
      headers: { 'x-portcullis-subject': 'user:1', 'x-custom': 'yes' },
    });
    assert.equal(res.status, 200);
    const echo = res.body as {
      method: string;
      path: string;
      headers: Record<string, string>;
      subject: string;
    };
    assert.equal(echo.method, 'GET');
    assert.equal(echo.path, '/echo?b=2&a=%2e%2E&a=1');
    assert.equal(echo.headers['x-custom'], 'yes');
    assert.equal(echo.subject, 'user:1');
    assert.equal((res.body as { body: unknown }).body, null);
  });

  it('echoes a JSON body parsed and any other body as text', async () => {
    const json = await call(api, 'POST', '/echo', { json: { message: 'hi', tags: ['a'] } });
    assert.deepEqual((json.body as { body: unknown }).body, { message: 'hi', tags: ['a'] });
    assert.equal((json.body as { subject: unknown }).subject, null);
    const text = await call(api, 'POST', '/echo', {
      raw: 'plain',
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal((text.body as { body: unknown }).body, 'plain');
    const bad = await call(api, 'POST', '/echo', { raw: '{nope' });
    assert.equal(bad.status, 400);
  });

  it('answers an unknown route with a JSON 404 and a known path with a wrong method with 405', async () => {
    const unknown = await call(api, 'GET', '/nope');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.contentType, JSON_TYPE);
    assert.deepEqual(unknown.body, { error: 'no_route', message: 'no such route' });
    const wrongMethod = await call(api, 'PUT', '/health');
    assert.equal(wrongMethod.status, 405);
    assert.equal((wrongMethod.body as { error: string }).error, 'method_not_allowed');
  });

  // Documents a deliberate weakness: the gateway, not the upstream, must stop `/public/..` bypasses.
  it('resolves dot segments itself, as many real upstreams do', async () => {
    assert.equal(await rawGet(api, '/public/../admin/users'), 200);
    assert.equal(await rawGet(api, '/public/%2e%2e/admin/stats'), 200);
  });
});

type Json = Record<string, unknown>;

describe('demo/openapi.yaml', () => {
  const doc = parse(readFileSync(new URL('../../demo/openapi.yaml', import.meta.url), 'utf8'), {
    uniqueKeys: true,
  }) as Json;
  const paths = doc['paths'] as Record<string, Json>;
  const operations = Object.entries(paths).flatMap(([path, item]) =>
    METHODS.filter((m) => m in item).map((method) => ({ path, method, item, op: item[method] as Json })),
  );
  const deref = (node: Json): Json => {
    const ref = node['$ref'];
    if (typeof ref !== 'string') return node;
    return ref
      .slice(2)
      .split('/')
      .reduce((n: Json, key) => n[key.replaceAll('~1', '/').replaceAll('~0', '~')] as Json, doc);
  };

  it('is an OpenAPI 3.1 document with a unique operationId on each of the 12 operations', () => {
    assert.match(String(doc['openapi']), /^3\.1\./);
    const ids = operations.map((o) => o.op['operationId']);
    assert.equal(operations.length, 12);
    assert.equal(new Set(ids).size, ids.length);
    assert.ok(ids.every((id) => typeof id === 'string'));
  });

  it('requires OAuth2 or an API key everywhere except the health check and the public catalog', () => {
    for (const { path, method, op } of operations) {
      const security = op['security'] as Json[];
      const expected = path === '/health' || path === '/public/catalog' ? [] : ['oauth2', 'apiKey'];
      assert.deepEqual(security.flatMap(Object.keys), expected, `${method} ${path}`);
    }
  });

  it('never declares the internal user fields; internal notes only for admins to read', () => {
    const text = JSON.stringify(doc);
    for (const field of SECRET_FIELDS) assert.doesNotMatch(text, new RegExp(`"${field}"`));
    const schemas = (doc['components'] as Json)['schemas'] as Json;
    const notes = ((schemas['User'] as Json)['properties'] as Json)['internal_notes'] as Json;
    assert.deepEqual(notes['x-portcullis-read'], ['admin']);
    const priority = ((schemas['NewOrder'] as Json)['properties'] as Json)['priority'] as Json;
    assert.deepEqual(priority['x-portcullis-write'], ['admin']);
  });

  it('describes only operations the server has, whose responses match the declared schemas', async () => {
    const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
    addFormats.default(ajv);
    ajv.addKeyword('openapi').addKeyword('info').addKeyword('paths').addKeyword('components');
    ajv.addKeyword('jsonSchemaDialect').addKeyword('tags');
    ajv.addKeyword('x-portcullis-read').addKeyword('x-portcullis-write');
    ajv.addSchema(doc, 'openapi.json');
    // A fresh server, so the DELETE below cannot affect the other tests.
    const api = await startOrdersApi(0);
    try {
      for (const { path, method, item, op } of operations) {
        const name = `${method.toUpperCase()} ${path}`;
        const params = [...((item['parameters'] as Json[]) ?? []), ...((op['parameters'] as Json[]) ?? [])];
        const url = params
          .map(deref)
          .filter((p) => p['in'] === 'path')
          .reduce((u, p) => u.replace(`{${p['name']}}`, String(p['example'])), path);
        assert.ok(!/[{}]/.test(url), `${name}: every path parameter has an example`);
        const requestBody = op['requestBody'] as Json | undefined;
        const json = requestBody ? (requestBody['content'] as Json)['application/json'] : undefined;
        const res = await call(api, method.toUpperCase(), url, {
          json: (json as Json | undefined)?.['example'],
        });

        assert.notDeepEqual((res.body as Json | undefined)?.['error'], 'no_route', `${name}: route exists`);
        const responses = op['responses'] as Record<string, Json>;
        const success = Object.keys(responses).filter((code) => code.startsWith('2'));
        assert.deepEqual([String(res.status)], success, `${name}: the declared success status`);

        const content = deref(responses[String(res.status)]!)['content'] as Json | undefined;
        if (!content) {
          assert.equal(res.body, undefined, `${name}: no body`);
          continue;
        }
        const pointer = [
          'paths',
          path,
          method,
          'responses',
          String(res.status),
          'content',
          'application/json',
        ];
        const fragment = pointer.map((s) =>
          encodeURIComponent(s.replaceAll('~', '~0').replaceAll('/', '~1')),
        );
        const validate = ajv.compile({ $ref: `openapi.json#/${fragment.join('/')}/schema` });
        validate(res.body);
        const unexpected = (validate.errors ?? []).filter(
          (e) => !(e.keyword === 'additionalProperties' && SECRET_FIELDS.has(e.params['additionalProperty'])),
        );
        assert.deepEqual(
          unexpected,
          [],
          `${name}: the body matches its schema, apart from the internal fields`,
        );
      }
    } finally {
      await api.close();
    }
  });
});
