/**
 * `portcullis check --owasp`: the report on the bundled demo, and on a
 * config that closes every gap, opened one at a time — each finding appears
 * with its gap and disappears when the gap is closed. Then the command
 * itself: the table, JSON and SARIF 2.1.0 (checked structurally, as GitHub
 * code scanning reads it) and the exit code CI gates on.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { loadConfig } from '../config/load.js';
import { issueCertificate } from '../tls/dev-cert.js';
import { formatSarifReport } from './format.js';
import { type Finding, type OwaspReport, owaspReport } from './report.js';
import { OWASP_IDS } from './rules.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const DEMO = join(ROOT, 'demo/portcullis.yaml');
const SECRET = 'owasp-report-test-secret-of-32-bytes!';
const ENV = { ...process.env, PORTCULLIS_DEMO_TOKEN_SECRET: SECRET, PC_OWASP_SECRET: SECRET };

const dir = mkdtempSync(join(tmpdir(), 'owasp-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// biome-ignore lint/suspicious/noExplicitAny: fixtures (config and document) are edited in depth by each case
type Json = Record<string, any>;
const json = (schema: unknown) => ({ content: { 'application/json': { schema } } });
const Item = { type: 'object', properties: { id: { type: 'string' } } };

/** A document describing every route of {@link baseConfig}. */
function baseDocument(): Json {
  return {
    openapi: '3.1.0',
    info: { title: 'owasp', version: '1' },
    paths: {
      '/users/{id}': {
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        get: { operationId: 'getUser', responses: { '200': { description: 'one', ...json(Item) } } },
      },
      '/admin/stats': {
        get: { operationId: 'stats', responses: { '200': { description: 'stats', ...json(Item) } } },
      },
      '/checkout': {
        post: {
          operationId: 'checkout',
          requestBody: json(Item),
          responses: { '201': { description: 'created', ...json(Item) } },
        },
      },
      '/webhooks': {
        post: {
          operationId: 'createWebhook',
          requestBody: json({
            type: 'object',
            properties: {
              callback: {
                type: 'string',
                format: 'uri',
                'x-portcullis-url': { schemes: ['https'], deny_private: true },
              },
            },
          }),
          responses: { '201': { description: 'created', ...json(Item) } },
        },
      },
    },
  };
}

const limited = { rate_limits: [{ key: ['principal'], rate: '10/s' }] };

/** A config with every gap the report knows closed (TLS on, limits, rules, schemas). */
function baseConfig(): Json {
  return {
    mode: 'development',
    listen: { host: '127.0.0.1', port: 0, tls: { certificates: [{ cert: './tls.crt', key: './tls.key' }] } },
    auth: {
      jwt: {
        providers: [
          {
            name: 't',
            issuer: 'urn:owasp',
            audience: ['api'],
            algorithms: ['HS256'],
            hmac_secret: '${env:PC_OWASP_SECRET}',
            roles_claim: 'roles',
          },
        ],
      },
    },
    api: { document: './openapi.yaml', upstream: 'app' },
    upstreams: { app: { url: 'https://api.example.com' } },
    routes: [
      {
        name: 'user',
        path: '/users/{id}',
        methods: ['GET'],
        upstream: 'app',
        authorize: { owner: { param: 'path.id' } },
        ...limited,
      },
      {
        name: 'stats',
        path: '/admin/stats',
        methods: ['GET'],
        upstream: 'app',
        authorize: { roles: ['admin'] },
        ...limited,
      },
      {
        name: 'checkout',
        path: '/checkout',
        methods: ['POST'],
        upstream: 'app',
        body_limit: '16kb',
        authorize: 'any-authenticated',
        ...limited,
      },
      {
        name: 'webhooks',
        path: '/webhooks',
        methods: ['POST'],
        upstream: 'app',
        authorize: 'any-authenticated',
        ...limited,
      },
    ],
  };
}

before(async () => {
  const leaf = await issueCertificate({
    commonName: 'localhost',
    dns: ['localhost'],
    usage: 'server',
    days: 2,
  });
  writeFileSync(join(dir, 'tls.crt'), leaf.cert);
  writeFileSync(join(dir, 'tls.key'), leaf.key, { mode: 0o600 });
});

let seq = 0;
/** Writes the config (and document) as YAML, loads it as `portcullis check` does, and reports. */
async function reportFor(config: Json, doc: Json = baseDocument()): Promise<OwaspReport & { file: string }> {
  const n = ++seq;
  writeFileSync(join(dir, `openapi-${n}.yaml`), stringify(doc));
  if (config.api) config.api.document = `./openapi-${n}.yaml`;
  const file = join(dir, `portcullis-${n}.yaml`);
  writeFileSync(file, stringify(config));
  const { config: loaded } = await loadConfig(file, { env: ENV });
  return { ...(await owaspReport(loaded)), file };
}

const of = (report: OwaspReport, rule: string, route?: string): Finding[] =>
  report.findings.filter((f) => f.rule === rule && (route === undefined || f.route === route));
const coverage = (report: OwaspReport, route: string) =>
  report.routes.find((r) => r.name === route)!.coverage;
const route = (config: Json, name: string) => config.routes.find((r: Json) => r.name === name);

describe('the OWASP report on a config with every gap closed', () => {
  it('has no finding, and says what each route covers', async () => {
    const report = await reportFor(baseConfig());
    assert.deepEqual(report.findings, []);
    assert.equal(coverage(report, 'user').API1, 'covered');
    assert.equal(coverage(report, 'stats').API5, 'covered');
    assert.equal(coverage(report, 'checkout').API6, 'covered');
    assert.equal(coverage(report, 'webhooks').API7, 'covered');
    for (const r of report.routes) {
      for (const id of ['API2', 'API3', 'API4', 'API8', 'API9', 'API10'] as const) {
        assert.equal(r.coverage[id], 'covered', `${r.name} ${id}`);
      }
    }
  });
});

describe('each gap is reported, and the finding goes when the gap is closed', () => {
  /** Rule, severity, route, how to open the gap, the finding's message, and the rules it opens as well. */
  const gaps: [string, string, string | undefined, (c: Json, d: Json) => void, RegExp, string[]?][] = [
    [
      'API1',
      'high',
      'user',
      (c) => {
        route(c, 'user').authorize = { scopes: ['users:read'] };
      },
      /path parameter \{id\} and no ownership rule/,
    ],
    [
      'API2',
      'high',
      'webhooks',
      (c) => {
        route(c, 'webhooks').auth = 'none';
        delete route(c, 'webhooks').authorize;
      },
      /public route \(auth: none\) that changes data \(POST\)/,
    ],
    [
      'API2',
      'high',
      undefined,
      (c) => {
        c.auth.brute_force = { enabled: false };
      },
      /brute-force protection is off/,
    ],
    [
      'API3',
      'medium',
      'user',
      (c) => {
        route(c, 'user').responses = { mode: 'off' };
      },
      /response filtering is off/,
    ],
    [
      'API4',
      'medium',
      'user',
      (c) => {
        delete route(c, 'user').rate_limits;
      },
      /no rate limit/,
    ],
    [
      'API4',
      'high',
      'checkout',
      (c) => {
        route(c, 'checkout').body_limit = 'none';
      },
      /no body limit/,
    ],
    [
      'API5',
      'high',
      'stats',
      (c) => {
        route(c, 'stats').authorize = 'any-authenticated';
      },
      /administrative path without a role rule/,
    ],
    [
      'API6',
      'low',
      'checkout',
      (c) => {
        delete route(c, 'checkout').rate_limits;
      },
      /looks like a business flow/,
      ['API4'], // no limit at all
    ],
    [
      'API7',
      'high',
      'webhooks',
      (_c, d) => {
        delete d.paths['/webhooks'].post.requestBody.content['application/json'].schema.properties.callback[
          'x-portcullis-url'
        ];
      },
      /URL-valued input body\.callback without x-portcullis-url/,
    ],
    [
      'API8',
      'medium',
      undefined,
      (c) => {
        delete c.listen.tls;
      },
      /the public listener serves plain HTTP/,
    ],
    [
      'API8',
      'medium',
      'user',
      (c) => {
        route(c, 'user').inspection = { mode: 'off' };
      },
      /injection inspection is off/,
    ],
    [
      'API8',
      'low',
      'user',
      (c) => {
        route(c, 'user').cors = { origins: ['*'] };
      },
      /CORS allows any origin/,
    ],
    [
      'API9',
      'medium',
      'extra',
      (c) => {
        c.routes.push({
          name: 'extra',
          path: '/extra',
          methods: ['GET'],
          upstream: 'app',
          authorize: 'any-authenticated',
          ...limited,
        });
      },
      /GET \/extra is not in the API description/,
      ['API3'], // not described: no response schema either
    ],
    [
      'API9',
      'low',
      undefined,
      (_c, d) => {
        d.paths['/legacy'] = { get: { operationId: 'legacy', responses: { '200': { description: 'ok' } } } };
      },
      /GET \/legacy is in the API description but no route serves it/,
    ],
    [
      'API10',
      'medium',
      undefined,
      (c) => {
        c.upstreams.app.url = 'http://api.example.com';
      },
      /upstream app is reached over plain HTTP/,
    ],
    [
      'API10',
      'high',
      undefined,
      (c) => {
        c.upstreams.app.tls = { verify: false };
      },
      /TLS certificate verification is off/,
    ],
  ];

  for (const [rule, severity, name, open, message, also = []] of gaps) {
    it(`${rule} (${severity}): ${message.source.replace(/\\/g, '')}`, async () => {
      const config = baseConfig();
      const doc = baseDocument();
      open(config, doc);
      const report = await reportFor(config, doc);
      const found = of(report, rule).filter((f) => message.test(f.message));
      assert.equal(found.length, 1, JSON.stringify(report.findings, null, 2));
      assert.equal(found[0]!.severity, severity);
      assert.equal(found[0]!.route, name);
      assert.equal(found[0]!.hint, rule === 'API6');
      // Nothing else is open: the finding is the gap's own.
      assert.deepEqual(
        report.findings.filter((f) => f.rule !== rule && !also.includes(f.rule)),
        [],
      );
      if (name !== undefined) assert.equal(coverage(report, name)[rule as 'API1'], 'open');
      // Closed again: gone.
      const closed = await reportFor(baseConfig());
      assert.deepEqual(of(closed, rule), []);
    });
  }

  it('locates a route finding at the route’s line in the config', async () => {
    const config = baseConfig();
    delete route(config, 'checkout').rate_limits;
    const report = await reportFor(config);
    const [f] = of(report, 'API6');
    assert.equal(f!.file, report.file);
    assert.equal(f!.path, 'routes[2]');
    assert.match(stringify(config).split('\n')[f!.line! - 1]!, /name: checkout/);
  });

  it('accepts an enum as a constraint on a URL, and finds URL inputs by name and in query parameters', async () => {
    const doc = baseDocument();
    const cb = doc.paths['/webhooks'].post.requestBody.content['application/json'].schema.properties;
    cb.return_url = { type: 'string' };
    cb.links = { type: 'array', items: { type: 'string', format: 'uri' } };
    cb.mode = { type: 'string', format: 'uri', enum: ['https://a.example/'] };
    doc.paths['/webhooks'].post.parameters = [{ name: 'target', in: 'query', schema: { type: 'string' } }];
    const [f] = of(await reportFor(baseConfig(), doc), 'API7');
    assert.match(f!.message, /inputs query\.target, body\.return_url, body\.links\[\] without/);
    assert.doesNotMatch(f!.message, /mode/);
  });

  it('locates a finding on a route made from the API document at the operation in the document', async () => {
    const config = baseConfig();
    delete config.routes;
    const doc = { ...baseDocument(), 'x-portcullis-authorize': 'any-authenticated' };
    const report = await reportFor(config, doc);
    const [f] = of(report, 'API1', 'getUser');
    assert.equal(f!.file, report.document);
    assert.equal(f!.path, '/paths/~1users~1{id}/get');
    const docText = stringify(doc).split('\n');
    const item = docText.findIndex((l) => /\/users\/\{id\}:/.test(l));
    const get = docText.findIndex((l, i) => i > item && /^\s+get:/.test(l));
    assert.equal(f!.line, get + 1);
  });

  it('finds URL inputs in a route’s inline request schema', async () => {
    const config = baseConfig();
    const url: Json = { type: 'string', format: 'uri' };
    config.routes.push({
      name: 'inline',
      path: '/inline',
      methods: ['POST'],
      upstream: 'app',
      authorize: 'any-authenticated',
      validation: { request_schema: { body: { type: 'object', properties: { url } } } },
      ...limited,
    });
    const [f] = of(await reportFor(config), 'API7');
    assert.match(f!.message, /^inline: URL-valued input body\.url without x-portcullis-url/);
    url['x-portcullis-url'] = { allow_hosts: ['hooks.example.com'] };
    const closed = await reportFor(config);
    assert.deepEqual(of(closed, 'API7'), []);
    assert.equal(coverage(closed, 'inline').API7, 'covered');
  });

  it('gives an admin path served without authentication as API5 high', async () => {
    const config = baseConfig();
    route(config, 'stats').auth = 'none';
    delete route(config, 'stats').authorize;
    const [f] = of(await reportFor(config), 'API5');
    assert.equal(f!.severity, 'high');
    assert.match(f!.message, /without authentication/);
  });
});

describe('the OWASP report on the demo', () => {
  let report: OwaspReport;
  before(async () => {
    const { config } = await loadConfig(DEMO, { env: ENV });
    report = await owaspReport(config);
  });

  it('covers object ownership on every route with a path id, and roles on admin paths', () => {
    for (const name of ['user', 'list-user-orders', 'create-user-order', 'read-order', 'tenant-orders']) {
      assert.equal(coverage(report, name).API1, 'covered', name);
    }
    assert.equal(coverage(report, 'admin-users').API5, 'covered');
    assert.equal(coverage(report, 'admin-stats').API5, 'covered');
    assert.deepEqual(of(report, 'API1'), []);
    assert.deepEqual(of(report, 'API5'), []);
  });

  it('reports the public catch-all that accepts POST, and its missing description', () => {
    const [auth] = of(report, 'API2', 'echo-any').filter((f) => f.severity === 'high');
    assert.match(auth!.message, /public route .* changes data/);
    assert.equal(of(report, 'API9', 'echo-any').length, 1);
    assert.equal(of(report, 'API3', 'echo-any').length, 1);
  });

  it('reports the routes without rate limits, and not the one with them', () => {
    assert.equal(of(report, 'API4', 'create-user-order').length, 0);
    assert.equal(of(report, 'API4', 'user').length, 1);
  });

  it('reports plain HTTP on the listener (the demo command adds TLS) and to the loopback upstream', () => {
    assert.match(of(report, 'API8').find((f) => f.route === undefined)!.message, /plain HTTP/);
    const [up] = of(report, 'API10');
    assert.equal(up!.severity, 'low');
    assert.match(up!.message, /loopback/);
  });

  it('finds every described operation served (no stale endpoint)', () => {
    assert.deepEqual(
      of(report, 'API9').filter((f) => f.route === undefined),
      [],
    );
  });
});

function cli(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    encoding: 'utf8',
    cwd: ROOT,
    env: { ...ENV, PORTCULLIS_DATA: dir },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('portcullis check --owasp', () => {
  it('prints the table for people and exits 3 on the demo’s high finding', () => {
    const r = cli(['check', '--owasp', '--config', 'demo/portcullis.yaml']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stdout, /^OWASP API Security Top 10 \(2023\) for demo\/portcullis\.yaml/);
    assert.match(r.stdout, /ROUTE\s+METHODS\s+PATH\s+API1\s+API2/);
    assert.match(r.stdout, /high\s+API2\s+demo\/portcullis\.yaml:\d+\s+echo-any: public route/);
    assert.match(r.stderr, /finding\(s\) at or above high/);
  });

  it('exits 0 when nothing reaches --fail-on, and refuses a bad flag value with 2', async () => {
    const { file } = await reportFor(baseConfig());
    assert.equal(cli(['check', '--owasp', '--fail-on', 'low', '--config', file]).code, 0);
    const config = baseConfig();
    delete route(config, 'user').rate_limits; // medium
    const gap = (await reportFor(config)).file;
    assert.equal(cli(['check', '--owasp', '--config', gap]).code, 0);
    assert.equal(cli(['check', '--owasp', '--fail-on', 'medium', '--config', gap]).code, 3);
    const bad = cli(['check', '--owasp', '--fail-on', 'critical', '--config', gap]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--fail-on expects one of low, medium, high/);
    assert.equal(cli(['check', '--owasp', '--format', 'xml', '--config', gap]).code, 2);
  });

  it('prints JSON with the routes, their coverage and the findings', () => {
    const r = cli(['check', '--owasp', '--format', 'json', '--config', 'demo/portcullis.yaml']);
    const report = JSON.parse(r.stdout) as Json;
    assert.equal(report.routes.length, 12);
    assert.deepEqual(Object.keys(report.routes[0].coverage), [...OWASP_IDS]);
    assert.equal(report.summary.high, report.findings.filter((f: Json) => f.severity === 'high').length);
  });

  it('prints SARIF 2.1.0 that code scanning reads', () => {
    const r = cli(['check', '--owasp', '--format', 'sarif', '--config', 'demo/portcullis.yaml']);
    assert.equal(r.code, 3);
    assertSarif(JSON.parse(r.stdout), 'demo/portcullis.yaml');
  });
});

/** The structure SARIF 2.1.0 requires and GitHub code scanning reads. */
function assertSarif(sarif: Json, configUri: string): void {
  assert.equal(sarif.version, '2.1.0');
  assert.match(sarif.$schema, /sarif-2\.1\.0/);
  assert.equal(sarif.runs.length, 1);
  const run = sarif.runs[0];
  const driver = run.tool.driver;
  assert.equal(driver.name, 'portcullis');
  assert.deepEqual(
    driver.rules.map((r: Json) => r.id),
    [...OWASP_IDS],
  );
  for (const rule of driver.rules) {
    assert.equal(typeof rule.shortDescription.text, 'string');
    assert.equal(typeof rule.fullDescription.text, 'string');
    assert.match(rule.helpUri, /^https:\/\/owasp\.org\/API-Security\/editions\/2023\//);
    assert.match(rule.properties['security-severity'], /^\d+\.\d$/);
  }
  assert.ok(run.results.length > 0);
  for (const result of run.results) {
    assert.ok(OWASP_IDS.includes(result.ruleId), result.ruleId);
    assert.equal(driver.rules[result.ruleIndex].id, result.ruleId);
    assert.ok(['error', 'warning', 'note'].includes(result.level), result.level);
    assert.equal(typeof result.message.text, 'string');
    assert.ok(result.message.text.length > 0);
    const loc = result.locations[0].physicalLocation;
    assert.equal(loc.artifactLocation.uri.startsWith('/'), false, 'a URI, not an absolute path');
    if (loc.region !== undefined)
      assert.ok(Number.isInteger(loc.region.startLine) && loc.region.startLine >= 1);
  }
  const onConfig = run.results.filter(
    (r: Json) => r.locations[0].physicalLocation.artifactLocation.uri === configUri,
  );
  assert.ok(onConfig.length > 0);
  assert.ok(onConfig.every((r: Json) => r.locations[0].physicalLocation.region?.startLine >= 1));
}

describe('SARIF output', () => {
  it('maps severities to levels, hints to notes, and files outside the folder to file: URIs', async () => {
    const config = baseConfig();
    delete route(config, 'checkout').rate_limits;
    config.auth.brute_force = { enabled: false };
    const report = await reportFor(config);
    const sarif = JSON.parse(formatSarifReport(report, '0.1.0', ROOT)) as Json;
    const results = sarif.runs[0].results as Json[];
    const level = (rule: string) => results.filter((r) => r.ruleId === rule).map((r) => r.level);
    assert.deepEqual(level('API6'), ['note']);
    assert.ok(level('API2').includes('error'));
    assert.ok(level('API4').includes('warning'));
    assert.match(results[0]!.locations[0].physicalLocation.artifactLocation.uri, /^file:\/\//);
  });
});
