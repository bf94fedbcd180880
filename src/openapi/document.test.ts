import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ApiDocumentError, type LoadedApiDocument, loadApiDocument } from './document.js';
import { documentFolder, largeDocument } from './test-support/fixtures.js';
import type { ApiDocumentIssue, CompiledOperation } from './types.js';

const folder = documentFolder();
after(() => folder.remove());

const DEMO = new URL('../../demo/openapi.yaml', import.meta.url).pathname;

function op(doc: LoadedApiDocument, id: string): CompiledOperation {
  const found = doc.operations.find((o) => o.id === id);
  assert.ok(found, `operation ${id}`);
  return found;
}

async function issuesOf(doc: unknown, name = 'doc.yaml'): Promise<readonly ApiDocumentIssue[]> {
  const file = folder.write(name, doc);
  try {
    await loadApiDocument(file);
  } catch (err) {
    assert.ok(err instanceof ApiDocumentError, String(err));
    return err.issues;
  }
  assert.fail('the document was accepted');
}

const base = (paths: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  openapi: '3.1.0',
  info: { title: 't', version: '1' },
  paths,
  ...extra,
});
const ok = { '200': { description: 'ok' } };

describe('loading an API document', () => {
  it('compiles every operation of the demo document (OpenAPI 3.1)', async () => {
    const doc = await loadApiDocument(DEMO);
    assert.equal(doc.version, '3.1');
    assert.deepEqual(
      doc.operations.map((o) => `${o.method} ${o.path}`),
      [
        'GET /health',
        'GET /public/catalog',
        'GET /users/{userId}',
        'GET /users/{userId}/orders',
        'POST /users/{userId}/orders',
        'GET /orders/{orderId}',
        'DELETE /orders/{orderId}',
        'GET /tenants/{tenantId}/orders',
        'GET /admin/users',
        'GET /admin/stats',
        'GET /echo',
        'POST /echo',
      ],
    );
    const create = op(doc, 'createUserOrder');
    assert.equal(create.source.pointer, '/paths/~1users~1{userId}~1orders/post');
    assert.deepEqual(create.extensions.validation, { transforms: ['trim'] });
    assert.equal(create.extensions.upstream, 'orders');
    assert.deepEqual(
      create.security?.map((alt) => alt.map((s) => `${s.scheme.type}:${s.scopes.join(',')}`)),
      [['oauth2:orders:write'], ['apiKey:orders:write']],
    );
    assert.deepEqual(op(doc, 'getHealth').security, []);
  });

  it('rejects a readOnly property in a request body (mass assignment) and accepts the body without it', async () => {
    const doc = await loadApiDocument(DEMO);
    const check = op(doc, 'echoPost').body!.media.find((m) => m.kind === 'json')!.check!;
    assert.deepEqual(check({ message: 'hi', echo_id: 'e_1' }), [
      { location: '/body/echo_id', rule: 'readOnly' },
    ]);
    assert.deepEqual(check({ message: 'hi' }), []);
  });

  it('does not require a readOnly property in requests that the response requires', async () => {
    const doc = await loadApiDocument(DEMO);
    const create = op(doc, 'createUserOrder');
    const body = create.body!.media[0]!.check!;
    assert.deepEqual(body({ item: 'widget', qty: 1 }), []);
    const response = create.responses!.find((r) => r.status === '201')!.media[0]!.check!;
    assert.deepEqual(
      response({ item: 'widget', qty: 1 })
        .map((p) => p.location)
        .sort(),
      ['/created_at', '/id', '/owner', '/status', '/tenant'],
    );
  });

  it('loads OpenAPI 3.0 with $refs across files, nullable and boolean exclusive bounds', async () => {
    folder.write('shared.yaml', {
      Price: { type: 'number', minimum: 0, exclusiveMinimum: true, nullable: true },
      Item: {
        type: 'object',
        required: ['id', 'price'],
        properties: { id: { type: 'string', readOnly: true }, price: { $ref: '#/Price' } },
      },
    });
    const file = folder.write('v30.yaml', {
      openapi: '3.0.3',
      info: { title: 't', version: '1' },
      paths: {
        '/items': {
          post: {
            operationId: 'createItem',
            requestBody: {
              required: true,
              content: { 'application/json': { schema: { $ref: './shared.yaml#/Item' } } },
            },
            responses: ok,
          },
        },
      },
    });
    const doc = await loadApiDocument(file);
    assert.equal(doc.version, '3.0');
    const check = op(doc, 'createItem').body!.media[0]!.check!;
    assert.deepEqual(check({ price: 5 }), []);
    assert.deepEqual(check({ price: null }), [], 'nullable');
    assert.deepEqual(check({ price: 0 }), [{ location: '/body/price', rule: 'exclusiveMinimum' }]);
    assert.deepEqual(check({ price: 1, id: 'x' }), [{ location: '/body/id', rule: 'readOnly' }]);
  });

  it('loads a generated document of 1,000 operations', async () => {
    const file = folder.write('large.json', largeDocument(1000));
    const doc = await loadApiDocument(file);
    assert.equal(doc.operations.length, 1000);
    const create = op(doc, 'createResource7').body!.media[0]!.check!;
    assert.deepEqual(create({ name: 'x', quantity: 3 }), []);
    assert.deepEqual(create({ id: 'a', name: 'x' }), [{ location: '/body/id', rule: 'readOnly' }]);
  });

  it('keeps working after the config loader deep-freezes the operations', async () => {
    const doc = await loadApiDocument(DEMO);
    const freeze = (v: unknown): void => {
      if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
        Object.freeze(v);
        for (const x of Object.values(v)) freeze(x);
      }
    };
    freeze(doc);
    const user = op(doc, 'getUser').responses!.find((r) => r.status === '200')!.media[0]!;
    const value = { id: '1', username: 'alice', password_hash: 'x' };
    assert.equal(user.project!(value), true);
    assert.deepEqual(value, { id: '1', username: 'alice' });
    assert.deepEqual(op(doc, 'listUserOrders').parameters.query.check!({ limit: 500 }), [
      { location: '/query/limit', rule: 'maximum' },
    ]);
  });
});

describe('a broken or unsupported document is a start-up error naming the file, the pointer and the problem', () => {
  const cases: [string, unknown, string, RegExp][] = [
    [
      'a schema with an unknown type',
      base({
        '/a': { get: { parameters: [{ name: 'q', in: 'query', schema: { type: 'strin' } }], responses: ok } },
      }),
      '/paths/~1a/get/parameters/0/schema/type',
      /expected one of/,
    ],
    [
      'a response without a description',
      base({ '/a': { get: { responses: { '200': { descripton: 'x' } } } } }),
      '/paths/~1a/get/responses/200',
      /missing required key "description"/,
    ],
    [
      'a $ref to nothing',
      base({ '/a': { get: { responses: { '200': { $ref: '#/components/responses/Nope' } } } } }),
      '/paths/~1a/get/responses/200/$ref',
      /Nope/,
    ],
    [
      'a $ref to a missing file',
      base({ '/a': { get: { responses: { '200': { $ref: './missing.yaml#/R' } } } } }),
      '/paths/~1a/get/responses/200/$ref',
      /cannot read the referenced file/,
    ],
    [
      'a Swagger 2.0 document',
      { swagger: '2.0', info: { title: 't', version: '1' }, paths: {} },
      '/swagger',
      /unsupported/,
    ],
    [
      'OpenAPI 3.2',
      { openapi: '3.2.0', info: { title: 't', version: '1' }, paths: {} },
      '/openapi',
      /unsupported/,
    ],
    [
      'a path template with a partial segment',
      base({
        '/files/{name}.json': {
          get: {
            parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
            responses: ok,
          },
        },
      }),
      '/paths/~1files~1{name}.json',
      /whole \{param\}/,
    ],
    ['a TRACE operation', base({ '/a': { trace: { responses: ok } } }), '/paths/~1a/trace', /TRACE/],
    [
      'a parameter described by content',
      base({
        '/a': {
          get: {
            parameters: [
              { name: 'f', in: 'query', content: { 'application/json': { schema: { type: 'object' } } } },
            ],
            responses: ok,
          },
        },
      }),
      '/paths/~1a/get/parameters/0/content',
      /unsupported/,
    ],
    [
      'a matrix-style path parameter',
      base({
        '/a/{x}': {
          get: {
            parameters: [
              { name: 'x', in: 'path', required: true, style: 'matrix', schema: { type: 'string' } },
            ],
            responses: ok,
          },
        },
      }),
      '/paths/~1a~1{x}/get/parameters/0',
      /style matrix/,
    ],
    [
      'an undeclared path parameter',
      base({ '/a/{x}': { get: { responses: ok } } }),
      '/paths/~1a~1{x}/get',
      /\{x\} .* not declared/,
    ],
    [
      'a security requirement naming no scheme',
      base({ '/a': { get: { security: [{ nope: [] }], responses: ok } } }),
      '/paths/~1a/get/security/0/nope',
      /not defined/,
    ],
    [
      'two operations with one operationId',
      base({
        '/a': { get: { operationId: 'x', responses: ok } },
        '/b': { get: { operationId: 'x', responses: ok } },
      }),
      '/paths/~1b/get/operationId',
      /also used/,
    ],
    [
      'an invalid regular expression',
      base({
        '/a': {
          get: {
            parameters: [{ name: 'q', in: 'query', schema: { type: 'string', pattern: '[' } }],
            responses: ok,
          },
        },
      }),
      '/paths/~1a/get/parameters/0/schema',
      /cannot be compiled/,
    ],
    [
      'another JSON Schema dialect',
      base({}, { jsonSchemaDialect: 'http://json-schema.org/draft-04/schema#' }),
      '/jsonSchemaDialect',
      /dialect/,
    ],
  ];
  for (const [what, doc, pointer, message] of cases) {
    it(`reports ${what}`, async () => {
      const issues = await issuesOf(doc);
      const found = issues.find((i) => i.pointer === pointer);
      assert.ok(found, `no issue at ${pointer}: ${JSON.stringify(issues)}`);
      assert.match(found.message, message);
      assert.match(found.file, /doc\.yaml$/);
    });
  }

  it('reports YAML that does not parse, with its line', async () => {
    const issues = await issuesOf('openapi: 3.1.0\ninfo: {title: t\n  version: 1\n');
    assert.equal(issues.length, 1);
    assert.match(issues[0]!.message, /\(3:\d+\)/);
  });

  it('refuses references to URLs instead of fetching them at start-up', async () => {
    const issues = await issuesOf(
      base({ '/a': { get: { responses: { '200': { $ref: 'http://127.0.0.1:9/r.yaml' } } } } }),
    );
    assert.match(issues[0]!.message, /URLs are not followed/);
  });

  it('names a missing document', async () => {
    await assert.rejects(loadApiDocument(`${folder.dir}/nothing-here.yaml`), (err: unknown) => {
      assert.ok(err instanceof ApiDocumentError);
      assert.match(err.issues[0]!.file, /nothing-here\.yaml$/);
      return true;
    });
  });
});
