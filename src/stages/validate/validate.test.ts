import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type RunningOrdersApi, startOrdersApi } from '../../demo/orders-api.js';
import { loadApiDocument } from '../../openapi/document.js';
import { InputError, type ProblemItem } from '../../openapi/errors.js';
import { type ApiRoute, configRoute, toRouteSettings } from '../../openapi/route-settings.js';
import { type ApiGateway, startApiGateway } from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';
import { captureLogger, type FakeRequest, fakeContext, fakeDeps } from '../../test-support/stage.js';
import { validateStage } from './index.js';
import { coerce } from './params.js';

const DEMO = new URL('../../../demo/openapi.yaml', import.meta.url).pathname;
const JSON_TYPE = { 'content-type': 'application/json' };

let routes: ApiRoute[];
before(async () => {
  routes = toRouteSettings(await loadApiDocument(DEMO), { upstream: 'orders' }, { authMethods: [] });
});

function routeOf(name: string): ApiRoute {
  const r = routes.find((x) => x.name === name);
  assert.ok(r, name);
  return r;
}

/** Runs the validate stage of route `name` on a request; the problems it answers with, or [] when it passes. */
async function problems(
  name: string,
  request: FakeRequest,
  route = routeOf(name),
): Promise<readonly ProblemItem[] | 'passed'> {
  const stage = validateStage.create(route, fakeDeps());
  assert.ok(stage);
  try {
    await stage.handle(fakeContext(route, { method: route.methods[0], ...request }));
    return 'passed';
  } catch (err) {
    assert.ok(err instanceof InputError, String(err));
    return err.errors;
  }
}

async function code(name: string, request: FakeRequest): Promise<string> {
  const route = routeOf(name);
  const stage = validateStage.create(route, fakeDeps())!;
  try {
    await stage.handle(fakeContext(route, { method: route.methods[0], ...request }));
    return 'passed';
  } catch (err) {
    return (err as InputError).code;
  }
}

const json = (value: unknown): FakeRequest => ({ headers: JSON_TYPE, body: JSON.stringify(value) });

describe('validating parameters', () => {
  it('rejects a path parameter that breaks its pattern, and accepts one that keeps it', async () => {
    assert.deepEqual(await problems('getUser', { params: { userId: '1 OR 1=1' } }), [
      { location: '/path/userId', rule: 'pattern' },
    ]);
    assert.equal(await problems('getUser', { params: { userId: '42' } }), 'passed');
  });

  it('checks query types, bounds and enums, typing text as the schema says', async () => {
    assert.deepEqual(
      await problems('listUserOrders', { params: { userId: '1' }, query: 'limit=500&status=lost' }),
      [
        { location: '/query/limit', rule: 'maximum' },
        { location: '/query/status', rule: 'enum' },
      ],
    );
    assert.deepEqual(await problems('listUserOrders', { params: { userId: '1' }, query: 'limit=ten' }), [
      { location: '/query/limit', rule: 'type' },
    ]);
    assert.equal(
      await problems('listUserOrders', { params: { userId: '1' }, query: 'limit=10&status=paid' }),
      'passed',
    );
  });

  it('rejects query parameters the operation does not declare, and allows them where the route says so', async () => {
    assert.deepEqual(
      await problems('listUserOrders', { params: { userId: '1' }, query: 'limit=5&debug=true' }),
      [{ location: '/query/debug', rule: 'unknown' }],
    );
    const open = toRouteSettings(
      await loadApiDocument(DEMO),
      { upstream: 'orders', operations: { listUserOrders: { validation: { unknown_query: 'allow' } } } },
      { authMethods: [] },
    ).find((r) => r.name === 'listUserOrders')!;
    assert.equal(
      await problems('listUserOrders', { params: { userId: '1' }, query: 'limit=5&debug=true' }, open),
      'passed',
    );
  });

  it('rejects prototype-polluting query names even where unknown parameters are allowed', async () => {
    const open = toRouteSettings(
      await loadApiDocument(DEMO),
      { upstream: 'orders', operations: { echoGet: { validation: { unknown_query: 'allow' } } } },
      { authMethods: [] },
    ).find((r) => r.name === 'echoGet')!;
    assert.deepEqual(await problems('echoGet', { query: 'a[__proto__][admin]=1' }, open), [
      { location: '/query/a[__proto__][admin]', rule: 'forbidden_key' },
    ]);
    assert.equal(await problems('echoGet', { query: 'a[proto]=1' }, open), 'passed');
    const deep = configRoute(
      {
        path: '/search',
        methods: ['GET'],
        upstream: 'api',
        validation: {
          request_schema: {
            query: {
              type: 'object',
              properties: { filter: { type: 'object', properties: { status: { type: 'string' } } } },
            },
          },
        } as never,
      },
      0,
    );
    assert.equal(await problems('', { query: 'filter[status]=paid' }, deep), 'passed');
    assert.deepEqual(await problems('', { query: 'filter[__proto__]=x' }, deep), [
      { location: '/query/filter[__proto__]', rule: 'forbidden_key' },
    ]);
  });

  it('reads a repeated parameter as a list where the schema says array, and refuses repetition elsewhere', async () => {
    assert.equal(await problems('echoGet', { query: 'tag=a&tag=b&page=2' }), 'passed');
    assert.deepEqual(await problems('echoGet', { query: 'tag=a&tag=b&tag=c&tag=d&tag=e&tag=f' }), [
      { location: '/query/tag', rule: 'maxItems' },
    ]);
    assert.deepEqual(await problems('echoGet', { query: 'tag=BAD!' }), [
      { location: '/query/tag/0', rule: 'pattern' },
    ]);
    assert.deepEqual(await problems('echoGet', { query: 'page=1&page=2' }), [
      { location: '/query/page', rule: 'duplicate' },
    ]);
  });

  it('reads deepObject parameters, typing each property', async () => {
    assert.equal(await problems('echoGet', { query: 'filter[status]=paid&filter[min_qty]=2' }), 'passed');
    assert.deepEqual(await problems('echoGet', { query: 'filter[min_qty]=0&filter[owner]=2' }), [
      { location: '/query/filter/owner', rule: 'additionalProperties' },
      { location: '/query/filter/min_qty', rule: 'minimum' },
    ]);
    assert.deepEqual(await problems('echoGet', { query: 'filter[constructor]=x' }), [
      { location: '/query/filter[constructor]', rule: 'forbidden_key' },
      { location: '/query/filter/constructor', rule: 'additionalProperties' },
    ]);
  });

  it('reads a percent-encoded UTF-8 query value (a malformed one never reaches it: the normalise stage answers 400)', async () => {
    assert.equal(await problems('echoGet', { query: 'q=%E0%A4%A8' }), 'passed');
  });

  it('checks declared headers and cookies', async () => {
    assert.deepEqual(await problems('echoGet', { headers: { 'x-client-version': '1.2' } }), [
      { location: '/header/x-client-version', rule: 'pattern' },
    ]);
    assert.equal(await problems('echoGet', { headers: { 'x-client-version': '1.2.3' } }), 'passed');
    assert.deepEqual(await problems('echoGet', { headers: { cookie: 'theme=blue; other=1' } }), [
      { location: '/cookie/theme', rule: 'enum' },
    ]);
    assert.equal(await problems('echoGet', { headers: { cookie: 'theme=dark; other=1' } }), 'passed');
  });

  it('checks a cookie as upstreams read it too: percent-decoded and unquoted (express), unescaped (Python)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-cookie-'));
    const file = join(dir, 'openapi.yaml');
    writeFileSync(
      file,
      `openapi: 3.1.0
info: { title: prefs, version: '1' }
paths:
  /prefs:
    get:
      operationId: prefs
      parameters:
        - name: label
          in: cookie
          schema: { type: string, pattern: '^[^<>]{1,40}$' }
      responses: { '200': { description: ok } }
`,
    );
    const [route] = toRouteSettings(await loadApiDocument(file), { upstream: 'orders' }, { authMethods: [] });
    rmSync(dir, { recursive: true });
    assert.ok(route);
    const cookie = async (value: string) =>
      problems('prefs', { headers: { cookie: `label=${value}` } }, route);
    const refused = [{ location: '/cookie/label', rule: 'pattern' }];
    // Each passes the pattern as sent; express reads the first two as <b>, Python the third.
    assert.deepEqual(await cookie('%3Cb%3E'), refused);
    assert.deepEqual(await cookie('"%3Cb%3E"'), refused);
    assert.deepEqual(await cookie('"\\074b\\076"'), refused);
    assert.deepEqual(await cookie('<b>'), refused, 'reported once, not once per reading');
    for (const ok of ['blue', '%C3%A9t%C3%A9', '"quoted"', '100%', '"a\\"b"'])
      assert.equal(await cookie(ok), 'passed', ok);
  });
});

describe('validating bodies', () => {
  const order = (body: unknown) => problems('createUserOrder', { params: { userId: '1' }, ...json(body) });

  it('rejects properties the schema does not declare (mass assignment of status) and accepts the declared ones', async () => {
    assert.deepEqual(await order({ item: 'widget', qty: 2, status: 'paid' }), [
      { location: '/body/status', rule: 'additionalProperties' },
    ]);
    assert.equal(await order({ item: 'widget', qty: 2, note: 'front desk' }), 'passed');
  });

  it('rejects readOnly properties in a request (OWASP API3:2023) and accepts the request without them', async () => {
    assert.deepEqual(await problems('echoPost', json({ message: 'hi', echo_id: 'e_1' })), [
      { location: '/body/echo_id', rule: 'readOnly' },
    ]);
    assert.equal(await problems('echoPost', json({ message: 'hi' })), 'passed');
  });

  it('lists every failing location with its rule', async () => {
    assert.deepEqual(await order({ item: 'Widget!', qty: '2', note: 'x'.repeat(501) }), [
      { location: '/body/item', rule: 'pattern' },
      { location: '/body/qty', rule: 'type' },
      { location: '/body/note', rule: 'maxLength' },
    ]);
    assert.deepEqual(await order({}), [
      { location: '/body/item', rule: 'required' },
      { location: '/body/qty', rule: 'required' },
    ]);
    assert.deepEqual(
      await problems('echoPost', json({ contact: 'not-an-email', sent_at: 'yesterday', count: 1001 })),
      [
        { location: '/body/count', rule: 'maximum' },
        { location: '/body/sent_at', rule: 'format' },
        { location: '/body/contact', rule: 'format' },
      ],
    );
  });

  it('accepts only the declared media types (415 otherwise)', async () => {
    assert.equal(
      await code('echoPost', { headers: { 'content-type': 'text/plain' }, body: 'hi' }),
      'input.unsupported_media_type',
    );
    assert.equal(await code('echoPost', { body: '{}' }), 'input.unsupported_media_type');
    assert.equal(
      await code('echoPost', {
        headers: { 'content-type': 'application/json; charset=iso-8859-1' },
        body: '{}',
      }),
      'input.unsupported_media_type',
    );
    assert.equal(
      await code('getUser', { params: { userId: '1' }, headers: JSON_TYPE, body: '{}' }),
      'input.unsupported_media_type',
    );
    assert.equal(
      await code('echoPost', { headers: { 'content-type': 'Application/JSON; charset=UTF-8' }, body: '{}' }),
      'passed',
    );
  });

  it('requires a required body', async () => {
    assert.deepEqual(await problems('createUserOrder', { params: { userId: '1' } }), [
      { location: '/body', rule: 'required' },
    ]);
  });

  it('refuses duplicate keys, prototype keys, deep nesting and invalid UTF-8 in JSON', async () => {
    const raw = (body: string | Buffer) => problems('echoPost', { headers: JSON_TYPE, body });
    assert.deepEqual(await raw('{"message":"a","message":"b"}'), [
      { location: '/body/message', rule: 'duplicate_key' },
    ]);
    assert.deepEqual(await raw('{"__proto__":{"admin":true}}'), [
      { location: '/body/__proto__', rule: 'forbidden_key' },
    ]);
    assert.deepEqual(await raw(`{"tags":${'['.repeat(40)}${']'.repeat(40)}}`), [
      {
        location: '/body/tags/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0',
        rule: 'max_depth',
      },
    ]);
    assert.deepEqual(await raw(Buffer.from([0x7b, 0x7d, 0xff])), [{ location: '/body', rule: 'encoding' }]);
    assert.deepEqual(await raw('{"message": }'), [{ location: '/body', rule: 'json' }]);
  });

  it('validates form bodies, typing fields by their schema', async () => {
    const form = (body: string) =>
      problems('echoPost', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    assert.equal(await form('message=hello&count=3&tags=a&tags=b'), 'passed');
    assert.deepEqual(await form('message=hello&count=many'), [{ location: '/body/count', rule: 'type' }]);
    assert.deepEqual(await form('count=1'), [{ location: '/body/message', rule: 'required' }]);
    assert.deepEqual(await form('message=a&message=b'), [{ location: '/body/message', rule: 'duplicate' }]);
    assert.deepEqual(await form('message=a&role=admin'), [
      { location: '/body/role', rule: 'additionalProperties' },
    ]);
    assert.deepEqual(await form('message=a&__proto__=x'), [
      { location: '/body/__proto__', rule: 'forbidden_key' },
    ]);
  });

  it('validates multipart bodies, files included', async () => {
    const boundary = 'b0undary';
    const part = (name: string, value: string, file = false) =>
      `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${file ? '; filename="a.bin"\r\nContent-Type: application/octet-stream' : ''}\r\n\r\n${value}\r\n`;
    const multipart = (...parts: string[]) =>
      problems('echoPost', {
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
        body: `${parts.join('')}--${boundary}--\r\n`,
      });
    assert.equal(await multipart(part('message', 'hi'), part('attachment', '\u0000\u0001', true)), 'passed');
    assert.deepEqual(await multipart(part('message', 'hi')), [
      { location: '/body/attachment', rule: 'required' },
    ]);
    assert.deepEqual(
      await multipart(part('message', 'hi'), part('attachment', 'x', true), part('extra', 'x')),
      [{ location: '/body/extra', rule: 'additionalProperties' }],
    );
    assert.deepEqual(
      await problems('echoPost', {
        headers: { 'content-type': 'multipart/form-data; boundary=x' },
        body: 'garbage',
      }),
      [{ location: '/body', rule: 'multipart' }],
    );
  });

  it('validates inline schemas on a route without a document', async () => {
    const route = configRoute(
      {
        path: '/notes/{id}',
        methods: ['PUT'],
        upstream: 'api',
        validation: {
          request_schema: {
            path: { type: 'object', properties: { id: { type: 'integer', minimum: 1 } } },
            body: {
              type: 'object',
              additionalProperties: false,
              properties: { text: { type: 'string', maxLength: 5 } },
            },
          },
        } as never,
      },
      0,
    );
    assert.deepEqual(
      await problems('', { method: 'PUT', params: { id: '0' }, ...json({ text: 'toolong' }) }, route),
      [{ location: '/path/id', rule: 'minimum' }],
    );
    assert.deepEqual(
      await problems('', { method: 'PUT', params: { id: '3' }, ...json({ text: 'toolong' }) }, route),
      [{ location: '/body/text', rule: 'maxLength' }],
    );
    assert.equal(
      await problems('', { method: 'PUT', params: { id: '3' }, ...json({ text: 'ok' }) }, route),
      'passed',
    );
  });

  it('in shadow mode, lets an invalid request through and records what would have been refused', async () => {
    const shadow = toRouteSettings(
      await loadApiDocument(DEMO),
      { upstream: 'orders', operations: { echoPost: { validation: { mode: 'shadow' } } } },
      { authMethods: [] },
    ).find((r) => r.name === 'echoPost')!;
    const { logger, lines: logs } = captureLogger();
    const ctx = fakeContext(shadow, { method: 'POST', ...json({ message: 'hi', role: 'admin' }) });
    await validateStage.create(shadow, fakeDeps(logger))!.handle(ctx);
    assert.deepEqual(ctx.shadowDenials, ['validate:input.invalid']);
    assert.equal(logs.at(-1)!.problems, '/body/role additionalProperties');
  });
});

describe('the validate stage in a gateway', () => {
  let api: RunningOrdersApi;
  let gw: ApiGateway;
  before(async () => {
    api = await startOrdersApi(0);
    gw = await startApiGateway({ upstream: `http://127.0.0.1:${api.port}`, document: DEMO });
  });
  after(async () => {
    await gw.close();
    await api.close();
  });

  it('answers 400 problem+json without echoing the submitted value', async () => {
    const secret = 'Sup3rSecretValue';
    const r = await send(gw.url, `/users/${secret}`);
    assert.equal(r.status, 400);
    assert.equal(r.headers['content-type'], 'application/problem+json');
    assert.equal(r.json().code, 'input.invalid');
    assert.ok(!r.body.includes(secret));
    const body = await send(gw.url, '/users/1/orders', {
      method: 'POST',
      headers: JSON_TYPE,
      body: JSON.stringify({ item: 'widget', qty: 2, status: secret }),
    });
    assert.equal(body.status, 400);
    assert.ok(!body.body.includes(secret));
  });

  it('lists the failing locations and rules in the problem', async () => {
    const r = await send(gw.url, '/users/1/orders?limit=500');
    assert.deepEqual(r.json().errors, [{ location: '/query/limit', rule: 'maximum' }]);
  });

  it('sends the upstream exactly the bytes that were validated', async () => {
    const text = '{ "message" : "spaced\\u0041",\n "count": 1 }';
    const r = await send(gw.url, '/echo', { method: 'POST', headers: JSON_TYPE, body: text });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json<{ body: unknown }>().body, { message: 'spacedA', count: 1 });
  });

  it('applies configured transforms after validation and sends the transformed body (chunked request)', async () => {
    const r = await send(gw.url, '/echo', {
      method: 'POST',
      headers: { ...JSON_TYPE, 'transfer-encoding': 'chunked' },
      body: JSON.stringify({ message: 'Cafe\u0301\u202E \u0007bell' }),
    });
    assert.equal(r.status, 200);
    assert.equal(r.json<{ body: { message: string } }>().body.message, 'Caf\u00e9 bell');
  });

  it('sends the transformed body with a matching Content-Length', async () => {
    const r = await send(gw.url, '/users/1/orders', {
      method: 'POST',
      headers: JSON_TYPE,
      body: JSON.stringify({ item: 'widget', qty: 1, note: '   front desk   ' }),
    });
    assert.equal(r.status, 201);
    assert.equal(r.json().note, 'front desk');
  });

  it('lets a valid request reach the upstream', async () => {
    const r = await send(gw.url, '/users/1/orders', {
      method: 'POST',
      headers: JSON_TYPE,
      body: JSON.stringify({ item: 'widget', qty: 1, note: 'front desk' }),
    });
    assert.equal(r.status, 201);
    const list = await send(gw.url, '/users/1/orders?limit=2&status=paid');
    assert.equal(list.status, 200);
  });
});

describe('refusing parameter and body numbers a double cannot hold exactly', () => {
  it('types exact numbers however they are spelled', () => {
    assert.equal(coerce('100', ['integer']), 100);
    assert.equal(coerce('100.0', ['integer']), 100);
    assert.equal(coerce('1e2', ['integer']), 100);
    assert.equal(coerce('1E+2', ['number']), 100);
    assert.equal(coerce('0.1', ['number']), 0.1);
    assert.equal(coerce('-0', ['number']), -0);
    assert.equal(coerce('9007199254740992', ['integer']), 9007199254740992);
    assert.equal(coerce('0.30000000000000004', ['number']), 0.30000000000000004);
  });

  it('leaves a number that a double would round, overflow or flush to zero as text, for the schema to reject', () => {
    for (const text of ['100.0000000000000001', '9007199254740993', '1e400', '-1e400', '1e-400']) {
      assert.equal(coerce(text, ['integer']), text, text);
      assert.equal(coerce(text, ['number', 'null']), text, text);
      assert.equal(coerce(text, ['string', 'number']), text, text);
    }
  });

  it('rejects an inexact query or deepObject number that its rounded value would pass', async () => {
    // 100.0000000000000001 rounds to 100: an integer within maximum 100.
    assert.deepEqual(
      await problems('listUserOrders', { params: { userId: '1' }, query: 'limit=100.0000000000000001' }),
      [{ location: '/query/limit', rule: 'type' }],
    );
    assert.equal(await problems('listUserOrders', { params: { userId: '1' }, query: 'limit=1e2' }), 'passed');
    assert.equal(
      await problems('listUserOrders', { params: { userId: '1' }, query: 'limit=100.0' }),
      'passed',
    );
    assert.deepEqual(await problems('echoGet', { query: 'filter[min_qty]=1.0000000000000001' }), [
      { location: '/query/filter/min_qty', rule: 'type' },
    ]);
    assert.deepEqual(await problems('echoGet', { query: 'page=1e400' }), [
      { location: '/query/page', rule: 'type' },
    ]);
  });

  it('rejects an inexact header number', async () => {
    const route = configRoute(
      {
        path: '/items',
        methods: ['GET'],
        upstream: 'api',
        validation: {
          request_schema: {
            headers: {
              type: 'object',
              properties: { 'x-count': { type: 'integer', maximum: 9007199254740992 } },
            },
          },
        } as never,
      },
      0,
    );
    assert.deepEqual(await problems('', { headers: { 'x-count': '9007199254740993' } }, route), [
      { location: '/header/x-count', rule: 'type' },
    ]);
    assert.equal(await problems('', { headers: { 'x-count': '9007199254740992' } }, route), 'passed');
  });

  it('refuses an inexact body number with number_precision at its pointer, before the schema sees a rounded value', async () => {
    const raw = (body: string) =>
      problems('createUserOrder', { params: { userId: '1' }, headers: JSON_TYPE, body });
    assert.deepEqual(await raw('{"item":"widget","qty":100.0000000000000001}'), [
      { location: '/body/qty', rule: 'number_precision' },
    ]);
    assert.deepEqual(await raw('{"item":"widget","qty":1e400}'), [
      { location: '/body/qty', rule: 'number_precision' },
    ]);
    assert.equal(await raw('{"item":"widget","qty":1e2}'), 'passed');
    assert.equal(await raw('{"item":"widget","qty":100.0}'), 'passed');
  });
});
