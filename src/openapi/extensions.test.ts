/**
 * The API document's `x-portcullis-…` extensions apply wherever an
 * operation matches a route: routes made from the document and routes the
 * config lists alike. Where both set something the config wins and `check`
 * lists the override; an extension that would be ignored fails the check.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { ConfigError, type LoadedConfig, loadConfig } from '../config/load.js';
import { startTestGateway, startUpstream, type TestUpstream } from '../test-support/gateway.js';
import { send } from '../test-support/http.js';

const ok = { '200': { description: 'ok', content: { 'application/json': { schema: { type: 'object' } } } } };

/** A document with two operations on /notes and one on /notes/{id}; `extra` is merged into paths. */
function document(extra: Record<string, Record<string, unknown>> = {}): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {
    '/notes': {
      get: {
        operationId: 'listNotes',
        'x-portcullis-responses': { redact: ['token'] },
        responses: ok,
      },
      post: {
        operationId: 'createNote',
        'x-portcullis-rate-limits': [{ key: ['ip'], rate: '2/m' }],
        requestBody: {
          content: { 'application/json': { schema: { type: 'object', additionalProperties: true } } },
        },
        responses: ok,
      },
    },
    '/notes/{id}': {
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      'x-portcullis-responses': { redact: ['token'], redact_patterns: ['card'] },
      get: { operationId: 'getNote', responses: ok },
    },
  };
  for (const [path, item] of Object.entries(extra)) paths[path] = { ...paths[path], ...item };
  return { openapi: '3.1.0', info: { title: 't', version: '1' }, paths };
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function write(config: Record<string, unknown>, doc: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-ext-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'openapi.yaml'), stringify(doc));
  const file = join(dir, 'portcullis.yaml');
  writeFileSync(
    file,
    stringify({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { enabled: false },
      upstreams: { api: { url: 'http://127.0.0.1:1' } },
      api: { document: './openapi.yaml' },
      ...config,
    }),
  );
  return file;
}

const route = (path: string, methods: string[], extra: Record<string, unknown> = {}) => ({
  path,
  methods,
  upstream: 'api',
  auth: 'none',
  // Inspection's 10ms CPU budget can be passed by a cold first request on a shared test machine.
  inspection: { timeout: '500ms' },
  ...extra,
});

async function load(config: Record<string, unknown>, doc = document()): Promise<LoadedConfig> {
  const file = write(config, doc);
  return loadConfig(file, { env: { PORTCULLIS_DATA: join(file, '..') } });
}

async function issues(config: Record<string, unknown>, doc = document()): Promise<string[]> {
  try {
    await load(config, doc);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
  return [];
}

/** `portcullis check --config file`, as a user runs it. */
function check(file: string) {
  return spawnSync(
    process.execPath,
    ['--import', 'tsx', new URL('../cli/main.ts', import.meta.url).pathname, 'check', '--config', file],
    { encoding: 'utf8', env: { ...process.env, PORTCULLIS_DATA: join(file, '..') }, timeout: 30_000 },
  );
}

const ROUTES = [
  route('/notes', ['GET'], { name: 'list' }),
  route('/notes', ['POST'], { name: 'create' }),
  route('/notes/{id}', ['GET'], { name: 'get' }),
];

describe('extensions on the routes the config lists', () => {
  it('apply to the route an operation describes: redaction, patterns, rate limits', async () => {
    const { config, overrides } = await load({ routes: ROUTES });
    const byName = Object.fromEntries(config.routes.map((r) => [r.name, r]));
    assert.deepEqual(byName.list!.responses.redactKeys, ['token']);
    assert.equal(byName.get!.responses.redactText?.('4111 1111 1111 1111'), '[redacted]');
    assert.equal(byName.create!.rateLimits?.limits[0]?.count, 2);
    assert.deepEqual(overrides, []);
  });

  it('merge key by key inside a settings section; the config’s keys win and are listed as overrides', async () => {
    const { config, overrides } = await load({
      routes: [
        route('/notes/{id}', ['GET'], { name: 'get', responses: { redact: ['password'], max_bytes: '2kb' } }),
        ROUTES[0],
        ROUTES[1],
      ],
    });
    const r = config.routes[0]!;
    assert.deepEqual(r.responses.redactKeys, ['password']);
    assert.equal(r.responses.maxBytes, 2048);
    assert.ok(r.responses.redactText, 'the document’s redact_patterns still apply');
    assert.equal(overrides.length, 1);
    assert.equal(overrides[0]!.path, 'routes[0].responses.redact');
    assert.match(overrides[0]!.message, /overrides x-portcullis-responses \(redact\) of getNote/);
    assert.ok(overrides[0]!.line !== undefined);
  });

  it('an equal value is no override', async () => {
    const { overrides } = await load({
      routes: [route('/notes/{id}', ['GET'], { responses: { redact: ['token'] } }), ROUTES[0], ROUTES[1]],
    });
    assert.deepEqual(overrides, []);
  });

  it('a route covering operations that disagree on an extension is refused', async () => {
    const found = await issues({ routes: [route('/notes', ['GET', 'POST']), ROUTES[2]] });
    assert.equal(found.length, 2, found.join('\n'));
    assert.match(found.join('\n'), /would apply x-portcullis-responses \(redact\) to createNote too/);
    assert.match(found.join('\n'), /split the route by method/);
  });

  it('an extension on an operation no route matches fails the check (and is a warning at start)', async () => {
    const { unroutedExtensions, warnings } = await load({ routes: [ROUTES[0], ROUTES[1]] });
    const found = unroutedExtensions.map((i) => `${i.path}: ${i.message}`);
    assert.equal(found.length, 1, found.join('\n'));
    assert.match(
      found[0]!,
      /^#\/paths\/~1notes~1\{id\}\/x-portcullis-responses: ignored: no route .*\(getNote\)/,
    );
    assert.ok(warnings.some((w) => w.message === unroutedExtensions[0]!.message));
    const r = check(write({ routes: [ROUTES[0], ROUTES[1]] }, document()));
    assert.equal(r.status, 2, r.stdout);
    assert.match(r.stderr, /1 error\(s\) in .*x-portcullis-responses: ignored: no route/s);
  });

  it('an unknown extension name fails the check, on listed and on generated routes', async () => {
    const doc = document({ '/notes': { 'x-portcullis-redact': ['token'] } });
    const listed = await issues({ routes: ROUTES }, doc);
    assert.equal(listed.length, 1, listed.join('\n'));
    assert.match(listed[0]!, /^#\/paths\/~1notes\/x-portcullis-redact: unknown extension/);
    const generated = await issues(
      { api: { document: './openapi.yaml', upstream: 'api' } },
      { ...doc, security: [] },
    );
    assert.equal(generated.length, 1, generated.join('\n'));
    assert.match(generated[0]!, /unknown extension/);
  });

  it('an invalid extension value is reported where the document sets it', async () => {
    const doc = document({ '/notes/{id}': { 'x-portcullis-responses': { redact_patterns: ['nope'] } } });
    const found = await issues({ routes: ROUTES }, doc);
    assert.ok(
      found.some((f) => f.startsWith('#/paths/~1notes~1{id}/x-portcullis-responses')),
      found.join('\n'),
    );
  });

  it('api.operations with routes listed would be ignored: refused', async () => {
    const found = await issues({
      api: { document: './openapi.yaml', operations: { getNote: { body_limit: '1kb' } } },
      routes: ROUTES,
    });
    assert.deepEqual(found, [
      'api.operations.getNote: ignored: api.operations.getNote applies to routes made from the document, and the config lists its own routes; set it on the route',
    ]);
  });

  it('api.operations overriding an extension of a generated route is listed too', async () => {
    const { overrides } = await load(
      {
        api: {
          document: './openapi.yaml',
          upstream: 'api',
          operations: { getNote: { responses: { redact: ['secret'] } } },
        },
      },
      { ...document(), security: [] },
    );
    assert.deepEqual(
      overrides.map((o) => o.path),
      ['api.operations.getNote.responses'],
    );
  });

  it('portcullis check lists each override', () => {
    const file = write(
      { routes: [ROUTES[0], ROUTES[1], route('/notes/{id}', ['GET'], { responses: { redact: ['x'] } })] },
      document(),
    );
    const r = check(file);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /^override: .*portcullis\.yaml:\d+:\d+: routes\[2\]\.responses\.redact: overrides/m,
    );
    assert.match(r.stdout, /valid, 1 override\(s\) of the API document/);
  });
});

describe('extensions on listed routes, through a gateway', () => {
  let upstream: TestUpstream;
  before(async () => {
    upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: 'abc', card: '4111 1111 1111 1111' }));
      return true;
    });
  });
  after(() => upstream.close());

  it('redacts what the document says on a route the config lists', async () => {
    const file = write({ upstreams: { api: { url: upstream.url } }, routes: ROUTES }, document());
    const gw = await startTestGateway({
      ...parse(readFileSync(file, 'utf8')),
      api: { document: join(file, '..', 'openapi.yaml') },
      log: { level: 'warn' },
    });
    try {
      const r = await send(gw.url, '/notes/7');
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(r.json(), { token: '[redacted]', card: '[redacted]' });
    } finally {
      await gw.close();
    }
  });
});
