import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { loadApiDocument } from './document.js';
import { authFromSecurity, documentRoutes, matchOperations } from './routes.js';
import { ApiSchema, RouteApiProperties } from './schema.js';
import { compileRouteApi, REDACTED, RouteApiError } from './settings.js';
import type { SecurityRequirement } from './types.js';

const DEMO = new URL('../../demo/openapi.yaml', import.meta.url).pathname;
const route = { template: '/items/{id}', methods: ['GET', 'HEAD', 'POST'] };

function issues(raw: Record<string, unknown>): string[] {
  try {
    compileRouteApi(raw, route);
  } catch (err) {
    assert.ok(err instanceof RouteApiError);
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
  assert.fail('accepted');
}

describe('the config fragment', () => {
  it('validates with defaults as part of a route and of the top-level api section', () => {
    const ajv = new Ajv({ useDefaults: true, strict: true });
    ajv.addKeyword({ keyword: 'expected', schemaType: 'string' });
    const check = ajv.compile(Type.Object({ api: ApiSchema, route: Type.Object(RouteApiProperties) }));
    const value: Record<string, Record<string, unknown>> = {
      api: {
        document: './openapi.yaml',
        upstream: 'orders',
        operations: { getUser: { body_limit: '16kb' } },
      },
      route: { validation: {}, inspection: { exclude: ['/body/description', 'query.q'] }, responses: {} },
    };
    assert.equal(check(value), true, JSON.stringify(check.errors));
    assert.equal(value.api!.base_path, '');
    assert.equal((value.route!.validation as { mode: string }).mode, 'enforce');
    assert.equal((value.route!.inspection as { mode: string }).mode, 'block');
    assert.equal((value.route!.responses as { max_bytes: string }).max_bytes, '8mb');
    assert.equal(check({ api: { document: 'x', base_path: '/v1/' }, route: {} }), false, 'a trailing slash');
    assert.equal(
      check({ api: { document: 'x' }, route: { inspection: { exclude: ['body.x'] } } }),
      false,
      'a location',
    );
  });
});

describe('compiling a route’s validation, inspection and responses', () => {
  it('applies the defaults', () => {
    const s = compileRouteApi({}, route);
    assert.equal(s.validation.mode, 'enforce');
    assert.equal(s.validation.unknownQuery, 'reject');
    assert.deepEqual(s.validation.jsonLimits, { maxDepth: 32, maxKeys: 1000, maxString: 65536 });
    assert.equal(s.inspection.mode, 'block');
    assert.equal(s.inspection.categories.length, 6);
    assert.equal(s.inspection.timeoutMicros, 10_000);
    assert.equal(s.responses.mode, 'filter');
    assert.equal(s.responses.maxBytes, 8 * 1024 * 1024);
    assert.deepEqual(s.operations, {});
  });

  it('compiles exclusions in both spellings, header names lower-cased', () => {
    const s = compileRouteApi(
      {
        inspection: {
          exclude: ['query.q', '/body/items/*/note', { location: '/header/X-Notes', categories: ['xss'] }],
        },
      } as never,
      route,
    );
    assert.deepEqual(s.inspection.exclusions, [
      { segments: ['query', 'q'], categories: undefined },
      { segments: ['body', 'items', '*', 'note'], categories: undefined },
      { segments: ['header', 'x-notes'], categories: ['xss'] },
    ]);
  });

  it('reports wrong values with their path', () => {
    assert.deepEqual(issues({ validation: { mode: 'strict' } }), [
      'validation.mode: expected one of "enforce", "shadow", "off"',
    ]);
    assert.match(
      issues({ responses: { redact_patterns: [{ name: 'x', regex: '(' }] } })[0]!,
      /^responses\.redact_patterns\[0\]\.regex: not a valid/,
    );
  });

  it('compiles inline schemas for a route without a document', () => {
    const s = compileRouteApi(
      {
        validation: {
          request_schema: {
            path: { type: 'object', properties: { id: { type: 'integer', minimum: 1 } } },
            query: { type: 'object', properties: { tags: { type: 'array', items: { type: 'string' } } } },
            body: {
              type: 'object',
              additionalProperties: false,
              required: ['name'],
              properties: { name: { type: 'string' } },
            },
          },
        },
        responses: { schemas: { '200': { type: 'object', properties: { name: { type: 'string' } } } } },
      } as never,
      route,
    );
    const get = s.operations.GET!;
    assert.equal(s.operations.HEAD, get);
    assert.deepEqual(get.parameters.path.check!({ id: 0 }), [{ location: '/path/id', rule: 'minimum' }]);
    assert.equal(get.parameters.query.params[0]!.shape, 'array');
    assert.deepEqual(s.operations.POST!.body!.media[0]!.check!({ name: 'a', role: 'admin' }), [
      { location: '/body/role', rule: 'additionalProperties' },
    ]);
    const value = { name: 'a', secret: 'x' };
    assert.equal(get.responses![0]!.media[0]!.project!(value), true);
    assert.deepEqual(value, { name: 'a' });
  });

  it('reports an inline schema that cannot be compiled', () => {
    const found = issues({ validation: { request_schema: { body: { type: 'strin' } } } });
    assert.match(found[0]!, /^validation\.request_schema\.body/);
  });
});

describe('redacting sensitive patterns', () => {
  const redact = (patterns: unknown[], text: string) =>
    compileRouteApi({ responses: { redact_patterns: patterns } } as never, route).responses.redactText!(text);

  it('redacts a Luhn-valid card number and leaves other long numbers alone', () => {
    assert.equal(redact(['card'], 'card 4111 1111 1111 1111 ok'), `card ${REDACTED} ok`);
    assert.equal(redact(['card'], 'order 4111111111111112'), 'order 4111111111111112');
  });

  it('redacts social security numbers, JWTs, IBANs, AWS keys, private keys and bearer tokens', () => {
    assert.equal(redact(['ssn'], 'ssn 123-45-6789'), `ssn ${REDACTED}`);
    assert.equal(redact(['ssn'], 'tel 000-12-3456'), 'tel 000-12-3456');
    assert.equal(redact(['jwt'], 't=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_-x'), `t=${REDACTED}`);
    assert.equal(redact(['iban'], 'iban DE89 3704 0044 0532 0130 00.'), `iban ${REDACTED}.`);
    assert.equal(redact(['iban'], 'DE00 1234 5678 9012 3456 78'), 'DE00 1234 5678 9012 3456 78');
    assert.equal(redact(['aws_key'], 'AKIAIOSFODNN7EXAMPLE'), REDACTED);
    assert.equal(
      redact(['private_key'], 'k=-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----'),
      `k=${REDACTED}`,
    );
    assert.equal(redact(['bearer'], 'Authorization: Bearer abc.def-123'), `Authorization: ${REDACTED}`);
  });

  it('redacts custom patterns', () => {
    assert.equal(redact([{ name: 'emp', regex: 'EMP-\\d{6}' }], 'id EMP-123456'), `id ${REDACTED}`);
  });
});

describe('operations as routes', () => {
  const sec = (...alternatives: [string, string, string?][][]): SecurityRequirement[] =>
    alternatives.map((alt) =>
      alt.map(([name, type, extra]) => ({
        scheme: {
          name,
          type,
          scheme: type === 'http' ? extra : undefined,
          in: type === 'apiKey' ? extra : undefined,
          paramName: 'k',
        },
        scopes: [],
      })),
    );

  it('derives auth from security: none when anonymous is allowed, else the methods that enforce the schemes', () => {
    assert.deepEqual(authFromSecurity(undefined, ['jwt']), { auth: undefined, apiKeyInQuery: false });
    assert.deepEqual(authFromSecurity([], ['jwt']), { auth: 'none', apiKeyInQuery: false });
    assert.deepEqual(authFromSecurity(sec([['o', 'oauth2']], []), ['jwt']), {
      auth: 'none',
      apiKeyInQuery: false,
    });
    assert.deepEqual(
      authFromSecurity(sec([['o', 'oauth2']], [['k', 'apiKey', 'header']]), [
        'jwt',
        'introspection',
        'api_key',
      ]),
      {
        auth: ['jwt', 'introspection', 'api_key'],
        apiKeyInQuery: false,
      },
    );
    assert.deepEqual(authFromSecurity(sec([['k', 'apiKey', 'query']]), ['api_key']), {
      auth: ['api_key'],
      apiKeyInQuery: true,
    });
    assert.deepEqual(authFromSecurity(sec([['m', 'mutualTLS']]), []), {
      auth: ['mtls'],
      apiKeyInQuery: false,
    });
    assert.match(
      (authFromSecurity(sec([['b', 'http', 'basic']]), []) as { error: string }).error,
      /cannot be enforced/,
    );
    assert.match(
      (authFromSecurity(sec([['c', 'apiKey', 'cookie']]), []) as { error: string }).error,
      /cookie/,
    );
  });

  it('turns each operation into a route; config options override extensions, which override security', async () => {
    const doc = await loadApiDocument(DEMO);
    const { routes, issues: found } = documentRoutes(
      doc,
      {
        document: DEMO,
        base_path: '/v1',
        upstream: 'fallback',
        operations: {
          getUser: { auth: 'none', body_limit: '1kb' },
          createUserOrder: { validation: { mode: 'shadow' } },
        },
      },
      { authMethods: ['jwt', 'api_key'] },
    );
    assert.deepEqual(found, []);
    const byName = Object.fromEntries(routes.map((r) => [r.raw.name, r]));
    assert.deepEqual(byName.getUser!.raw, {
      name: 'getUser',
      path: '/v1/users/{userId}',
      methods: ['GET'],
      upstream: 'orders',
      auth: 'none',
      body_limit: '1kb',
    });
    assert.deepEqual(byName.getUser!.origins.upstream, {
      kind: 'document',
      file: doc.file,
      pointer: '/paths/~1users~1{userId}/get',
    });
    assert.deepEqual(byName.getUser!.origins.auth, { kind: 'config', path: 'api.operations.getUser.auth' });
    assert.deepEqual(byName.createUserOrder!.raw.auth, ['jwt', 'api_key']);
    assert.deepEqual(byName.createUserOrder!.raw.authorize, {
      any: [{ scopes: ['orders:write'] }, { roles: ['orders:write'] }],
    });
    assert.equal(byName.echoGet!.raw.authorize, 'any-authenticated');
    assert.deepEqual(
      byName.listUsers!.raw.authorize,
      { any: [{ scopes: ['admin'] }, { roles: ['admin'] }] },
      'the extension',
    );
    assert.equal(byName.getUser!.raw.authorize, undefined, 'a public operation');
    assert.deepEqual(byName.createUserOrder!.raw.validation, { mode: 'shadow' });
    assert.deepEqual(byName.createUserOrder!.raw.rate_limits, [{ key: ['principal'], rate: '30/m' }]);
    assert.equal(byName.getHealth!.raw.auth, 'none');
  });

  it('reports operations named in the config that the document lacks, and paths overridden', async () => {
    const doc = await loadApiDocument(DEMO);
    const { issues: found } = documentRoutes(
      doc,
      { document: DEMO, base_path: '', operations: { getUsr: {}, getUser: { path: '/x' } } },
      { authMethods: [] },
    );
    assert.deepEqual(
      found.map((i) => i.pointer),
      ['api.operations.getUsr', 'api.operations.getUser.path'],
    );
  });

  it('finds the operations that describe a route listed in the config, by method', async () => {
    const doc = await loadApiDocument(DEMO);
    const ops = matchOperations(doc, '/users/{userId}/orders', ['GET', 'HEAD', 'POST']);
    assert.deepEqual(Object.keys(ops).sort(), ['GET', 'POST']);
    assert.deepEqual(matchOperations(doc, '/admin/*', ['GET']), {});
    const s = compileRouteApi(
      {},
      { template: '/users/{userId}/orders', methods: ['GET', 'HEAD', 'POST'] },
      ops,
    );
    assert.equal(s.operations.HEAD, ops.GET);
  });
});
