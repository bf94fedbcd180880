import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, type ConfigIssue, loadConfig } from './load.js';
import { ConfigSchema } from './schema.js';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function write(text: string): string {
  const file = join(dir, `config-${n++}.yaml`);
  writeFileSync(file, text);
  return file;
}

async function issuesOf(text: string, env: NodeJS.ProcessEnv = {}): Promise<readonly ConfigIssue[]> {
  const file = write(text);
  try {
    await loadConfig(file, { env });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    for (const issue of err.issues) assert.equal(issue.file, file);
    return err.issues;
  }
  assert.fail('the config was accepted');
}

const VALID = `upstreams:
  app:
    url: http://127.0.0.1:3000
routes:
  - path: /items/{id}
    methods: [GET]
    upstream: app
    auth: none
`;

describe('loading the config', () => {
  it('accepts a minimal config and fills in the documented defaults', async () => {
    const { config } = await loadConfig(write(VALID), { env: {} });
    assert.equal(config.listen.port, 8080);
    assert.equal(config.listen.headersTimeoutMs, 10_000);
    assert.equal(config.admin.host, '127.0.0.1');
    assert.equal(config.routes[0]!.bodyLimit, 1024 * 1024);
    assert.deepEqual(config.routes[0]!.methods, ['GET', 'HEAD']);
    assert.equal(config.routes[0]!.routerPath, '/items/:id');
    assert.ok(Object.isFrozen(config.routes[0]));
  });

  it('reports three different mistakes at once, each with its path and line', async () => {
    const issues = await issuesOf(`listen:
  port: eighty
upstreams:
  app:
    url: http://127.0.0.1:3000
    conections: 10
routes:
  - path: /items
    methods: [GET]
    upstream: app
    body_limit: 1 megabyte
`);
    assert.equal(issues.length, 3, JSON.stringify(issues));
    const byPath = new Map(issues.map((i) => [i.path, i]));
    assert.equal(byPath.get('listen.port')?.line, 2);
    assert.match(byPath.get('listen.port')!.message, /expected integer, got "eighty"/);
    assert.equal(byPath.get('upstreams.app.conections')?.line, 6);
    assert.match(byPath.get('upstreams.app.conections')!.message, /unknown key "conections".*connections/);
    assert.equal(byPath.get('routes[0].body_limit')?.line, 11);
    assert.match(
      byPath.get('routes[0].body_limit')!.message,
      /expected a size such as 64kb or 1mb, or "none"/,
    );
  });

  it('names a missing required key', async () => {
    const issues = await issuesOf(
      'upstreams:\n  app:\n    url: http://a:1\nroutes:\n  - path: /x\n    upstream: app\n',
    );
    assert.equal(issues[0]!.path, 'routes[0]');
    assert.match(issues[0]!.message, /missing required key "methods"/);
    assert.equal(issues[0]!.line, 5);
  });

  it('reports invalid YAML with its line', async () => {
    const issues = await issuesOf('upstreams:\n  app: [unclosed\nroutes: []\n');
    assert.match(issues[0]!.message, /not valid YAML/);
    assert.ok(issues[0]!.line !== undefined);
  });

  it('rejects a duplicate key instead of silently keeping the last one', async () => {
    const issues = await issuesOf(`${VALID}upstreams:\n  other:\n    url: http://127.0.0.1:1\n`);
    assert.match(issues[0]!.message, /not valid YAML.*[Dd]uplicate|unique/);
  });

  it('rejects a route that names an upstream that does not exist', async () => {
    const issues = await issuesOf(VALID.replace('upstream: app', 'upstream: ap'));
    assert.equal(issues[0]!.path, 'routes[0].upstream');
    assert.equal(issues[0]!.line, 7);
    assert.match(issues[0]!.message, /expected one of the upstreams \(app\), got "ap"/);
  });

  it('rejects a path template with a partial parameter or dot segments', async () => {
    assert.match(
      (await issuesOf(VALID.replace('/items/{id}', '/items/x{id}')))[0]!.message,
      /whole \{param\}/,
    );
    assert.match(
      (await issuesOf(VALID.replace('/items/{id}', '/items/../{id}')))[0]!.message,
      /dot segments/,
    );
  });

  it('rejects the same method and path routed twice', async () => {
    const issues = await issuesOf(
      `${VALID}  - path: /items/{other}\n    methods: [GET]\n    upstream: app\n    auth: none\n`,
    );
    assert.match(issues[0]!.message, /already routed by routes\[0\]/);
  });

  it('rejects CORS with a wildcard origin and credentials', async () => {
    const issues = await issuesOf(`${VALID}    cors:\n      origins: ["*"]\n      credentials: true\n`);
    assert.equal(issues[0]!.path, 'routes[0].cors.origins');
    assert.match(issues[0]!.message, /credentials/);
  });

  it('rejects a trusted proxy that is not an address or CIDR block', async () => {
    const issues = await issuesOf(`listen:\n  trusted_proxies: [10.0.0.0/33]\n${VALID}`);
    assert.equal(issues[0]!.path, 'listen.trusted_proxies[0]');
  });

  describe('secrets by reference', () => {
    it('resolves ${env:NAME} and never leaves the reference as a literal', async () => {
      const text = VALID.replace('routes:', 'store:\n  url: ${env:PC_DB}\nroutes:');
      const { config } = await loadConfig(write(text), { env: { PC_DB: 'postgres://u:p@db/x' } });
      assert.equal(config.store.url, 'postgres://u:p@db/x');
    });

    it('fails to start when the environment variable is not set', async () => {
      const issues = await issuesOf(VALID.replace('routes:', 'store:\n  url: ${env:PC_UNSET}\nroutes:'));
      assert.equal(issues[0]!.path, 'store.url');
      assert.match(issues[0]!.message, /environment variable PC_UNSET is not set/);
    });

    it('fails to start when the secret file cannot be read', async () => {
      const issues = await issuesOf(
        VALID.replace('routes:', 'store:\n  url: ${file:./missing-secret}\nroutes:'),
      );
      assert.match(issues[0]!.message, /cannot read secret file .*missing-secret \(ENOENT\)/);
    });

    it('warns about a secret file every user can read', async () => {
      const secret = join(dir, 'db-url');
      writeFileSync(secret, 'postgres://u:hunter2@db/x\n');
      chmodSync(secret, 0o644);
      const { config, warnings } = await loadConfig(
        write(VALID.replace('routes:', `store:\n  url: \${file:${secret}}\nroutes:`)),
        { env: {} },
      );
      assert.equal(config.store.url, 'postgres://u:hunter2@db/x');
      assert.match(warnings[0]!.message, /readable by every user/);
      assert.doesNotMatch(JSON.stringify(warnings), /hunter2/);
    });

    it('rejects a literal database password', async () => {
      const issues = await issuesOf(
        VALID.replace('routes:', 'store:\n  url: postgres://u:hunter2@db/x\nroutes:'),
      );
      assert.match(issues[0]!.message, /password by reference/);
      assert.doesNotMatch(JSON.stringify(issues), /hunter2/);
    });
  });

  describe('security warnings', () => {
    it('warns about plain HTTP to an upstream on another network', async () => {
      const { warnings } = await loadConfig(
        write(`listen:\n  host: 127.0.0.1\n${VALID.replace('127.0.0.1:3000', 'api.example.com')}`),
        {
          env: {},
        },
      );
      assert.equal(warnings[0]!.path, 'upstreams.app.url');
      assert.match(warnings[0]!.message, /plain HTTP/);
    });

    it('warns about a route without a body limit', async () => {
      const { warnings } = await loadConfig(
        write(`listen:\n  host: 127.0.0.1\n${VALID}    body_limit: none\n`),
        {
          env: {},
        },
      );
      assert.match(warnings[0]!.message, /no body limit/);
    });

    it('warns about an admin listener reachable from other machines', async () => {
      const { warnings } = await loadConfig(write(`admin:\n  host: 0.0.0.0\n${VALID}`), { env: {} });
      assert.equal(warnings[0]!.path, 'admin.host');
    });

    it('warns about plain HTTP on a public address', async () => {
      const { warnings } = await loadConfig(write(VALID), { env: {} });
      assert.equal(warnings[0]!.path, 'listen.host');
      assert.match(warnings[0]!.message, /serves plain HTTP/);
    });

    it('has no warnings for the safe minimal config on loopback', async () => {
      assert.deepEqual(
        (await loadConfig(write(`listen:\n  host: 127.0.0.1\n${VALID}`), { env: {} })).warnings,
        [],
      );
    });
  });

  it('lets PORTCULLIS_PORT override the port and PORTCULLIS_DATA the data folder', async () => {
    const { config } = await loadConfig(write(VALID), {
      env: { PORTCULLIS_PORT: '9999', PORTCULLIS_DATA: '/tmp/pc' },
    });
    assert.equal(config.listen.port, 9999);
    assert.equal(config.store.dataDir, '/tmp/pc');
  });
});

describe('the example config', () => {
  const examplePath = new URL('../../portcullis.example.yaml', import.meta.url);

  it('is valid', async () => {
    await loadConfig(examplePath.pathname, {
      env: {
        PORTCULLIS_EXAMPLE_DB: 'postgres://localhost/x',
        PORTCULLIS_EXAMPLE_INTROSPECTION_SECRET: 's',
        PORTCULLIS_EXAMPLE_PEPPER: 'p',
        PORTCULLIS_EXAMPLE_MASTER_KEY: 'k',
        PORTCULLIS_EXAMPLE_WEBHOOK: 'https://hooks.example.com/T000/B000/XXXX',
      },
    });
  });

  it('documents every key of the schema', async () => {
    const text = readFileSync(examplePath, 'utf8');
    const missing: string[] = [];
    const walk = (schema: Record<string, unknown>, at: string) => {
      const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
      for (const [key, sub] of Object.entries(props)) {
        if (key === '$schema') continue;
        if (!new RegExp(`^\\s*#?\\s*-?\\s*${key}:`, 'm').test(text)) missing.push(`${at}${key}`);
        walk(sub, `${at}${key}.`);
        const items = sub.items as Record<string, unknown> | undefined;
        if (items) walk(items, `${at}${key}[].`);
        const pattern = sub.patternProperties as Record<string, Record<string, unknown>> | undefined;
        for (const p of Object.values(pattern ?? {})) walk(p, `${at}${key}.*.`);
      }
    };
    walk(ConfigSchema as unknown as Record<string, unknown>, '');
    assert.deepEqual(missing, []);
  });
});
