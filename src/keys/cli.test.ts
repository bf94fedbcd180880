import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AuthFailure } from '../auth/types.js';
import { openStore } from '../store/index.js';
import { createApiKeyAuthenticator, resolvePepper } from './authenticator.js';
import { runKeysCommand } from './cli.js';
import { parseApiKey } from './format.js';

const root = mkdtempSync(join(tmpdir(), 'portcullis-keys-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));

let dirs = 0;
const freshDataDir = () => join(root, `data-${++dirs}`);

async function keys(args: string[], env: NodeJS.ProcessEnv) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runKeysCommand(args, { out: (s) => out.push(s), err: (s) => err.push(s), env });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

/** Authenticates `key` the way a gateway on the embedded default (the demo) would. */
async function authenticate(dataDir: string, key: string, pepper = resolvePepper(undefined, dataDir)) {
  const store = await openStore({ dataDir });
  try {
    await store.migrate();
    const auth = createApiKeyAuthenticator({
      settings: { cacheSize: 10, cacheTtlMs: 30_000 },
      pepper,
      db: store,
      logger: { warn: () => {} },
    });
    try {
      return await auth.authenticate(key);
    } catch (err) {
      if (err instanceof AuthFailure) return err.reason;
      throw err;
    } finally {
      await auth.settle();
    }
  } finally {
    await store.close();
  }
}

async function createKey(env: NodeJS.ProcessEnv, extra: string[] = []) {
  const r = await keys(
    ['create', '--name', 'reporting', '--scopes', 'orders:read,orders:write', ...extra],
    env,
  );
  assert.equal(r.code, 0, r.stderr);
  const key = r.stdout.trim();
  const parsed = parseApiKey(key);
  assert.ok(parsed, `not a key: ${key}`);
  return { key, id: parsed.id, secret: parsed.secret, ...r };
}

describe('portcullis keys', () => {
  it('create prints the key once, on stdout alone, with the warning to store it', async () => {
    const data = freshDataDir();
    const { key, id, stdout, stderr } = await createKey({ PORTCULLIS_DATA: data });
    assert.equal(stdout, key);
    assert.match(stderr, /store it now; it cannot be shown again/i);
    assert.match(
      stderr,
      new RegExp(`Created ${id} "reporting" \\(scopes: orders:read, orders:write; no expiry\\)`),
    );
    assert.ok(!stderr.includes(key));
  });

  it('makes keys that a gateway on the same data folder accepts, as the demo would', async () => {
    const data = freshDataDir();
    const { key, id } = await createKey({ PORTCULLIS_DATA: data }, ['--tenant', 'acme', '--expires', '90d']);
    const principal = await authenticate(data, key);
    assert.equal(typeof principal, 'object');
    assert.deepEqual(principal, {
      kind: 'api_key',
      id,
      scopes: ['orders:read', 'orders:write'],
      roles: [],
      claims: { name: 'reporting' },
      tenant: 'acme',
    });
  });

  it('list shows every key and never its secret', async () => {
    const env = { PORTCULLIS_DATA: freshDataDir() };
    const empty = await keys(['list'], env);
    assert.equal(empty.code, 0);
    assert.equal(empty.stdout, 'No API keys.');
    assert.ok(!existsSync(join(env.PORTCULLIS_DATA, 'secrets')), 'listing generated a pepper');
    const a = await createKey(env, ['--tenant', 'acme', '--expires', '30d']);
    const b = await createKey(env);
    const list = await keys(['list'], env);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ID +NAME +SCOPES +TENANT +ROUTES +CREATED +EXPIRES +LAST USED +STATUS$/m);
    assert.match(
      list.stdout,
      new RegExp(`^${a.id} +reporting +orders:read,orders:write +acme .* active$`, 'm'),
    );
    assert.match(list.stdout, new RegExp(`^${b.id} +reporting .* - +- +active$`, 'm'));
    const json = await keys(['list', '--json'], env);
    const rows = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(
      rows.map((r) => [r.id, r.status, r.tenant]),
      [
        [a.id, 'active', 'acme'],
        [b.id, 'active', null],
      ],
    );
    for (const text of [list.stdout, list.stderr, json.stdout, json.stderr]) {
      for (const k of [a, b]) {
        assert.ok(!text.includes(k.secret), 'a secret was listed');
        assert.ok(!text.includes(k.key), 'a key was listed');
      }
      assert.ok(!/digest/i.test(text));
    }
  });

  it('revoke stops the key and is idempotent', async () => {
    const env = { PORTCULLIS_DATA: freshDataDir() };
    const { key, id } = await createKey(env);
    const revoked = await keys(['revoke', id], env);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`Revoked ${id}`));
    assert.match(revoked.stdout, /within 30s/);
    assert.equal(await authenticate(env.PORTCULLIS_DATA, key), 'key_revoked');
    const again = await keys(['revoke', id], env);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /already revoked/);
    assert.match((await keys(['list'], env)).stdout, new RegExp(`^${id} .* revoked$`, 'm'));
  });

  it('rotate prints a new key; the old one works during the overlap, and not at all with no overlap', async () => {
    const env = { PORTCULLIS_DATA: freshDataDir() };
    const old = await createKey(env);
    const rotated = await keys(['rotate', old.id, '--overlap', '1h'], env);
    assert.equal(rotated.code, 0, rotated.stderr);
    const next = parseApiKey(rotated.stdout.trim());
    assert.ok(next);
    assert.match(rotated.stderr, /store it now; it cannot be shown again/i);
    assert.match(rotated.stderr, new RegExp(`${old.id} keeps working until `));
    assert.equal(typeof (await authenticate(env.PORTCULLIS_DATA, old.key)), 'object');
    assert.equal(typeof (await authenticate(env.PORTCULLIS_DATA, rotated.stdout.trim())), 'object');
    assert.match((await keys(['list'], env)).stdout, new RegExp(`^${old.id} .* rotating → ${next.id}$`, 'm'));

    const twice = await keys(['rotate', old.id], env);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /already replaced by/);

    const again = await keys(['rotate', next.id, '--overlap', '0s'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await authenticate(env.PORTCULLIS_DATA, rotated.stdout.trim()), 'key_expired');
    assert.equal(typeof (await authenticate(env.PORTCULLIS_DATA, again.stdout.trim())), 'object');
  });

  it('answers 1 for a key id it does not know', async () => {
    const env = { PORTCULLIS_DATA: freshDataDir() };
    for (const args of [
      ['revoke', 'key_0123456789abcdef'],
      ['rotate', 'key_0123456789abcdef'],
      ['revoke', 'nonsense'],
    ]) {
      const r = await keys(args, env);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /no API key/);
    }
  });

  it('answers 2 with the usage for bad usage', async () => {
    const env = { PORTCULLIS_DATA: freshDataDir() };
    const cases: Array<[string[], RegExp]> = [
      [[], /missing command/],
      [['destroy'], /unknown command "keys destroy"/],
      [['create', '--scopes', 'a'], /needs --name/],
      [['create', '--name', 'x'], /needs --scopes/],
      [['create', '--name', 'x', '--scopes', ' , '], /at least one scope/],
      [['create', '--name', 'x', '--scopes', 'a', '--expires', 'soon'], /--expires expects a duration/],
      [['create', '--name', 'x', '--scopes', 'a', '--expires', '0d'], /more than 0/],
      [['create', '--name', 'x', '--scopes', 'a b'], /not an OAuth scope token/],
      [['create', '--name', 'x\u0007', '--scopes', 'a'], /control characters/],
      [['create', '--name', 'x', '--scopes', 'a', '--colour', 'blue'], /Unknown option '--colour'/],
      [['create', 'extra', '--name', 'x', '--scopes', 'a'], /unexpected argument "extra"/],
      [['list', 'all'], /unexpected argument/],
      [['revoke'], /exactly one key id/],
      [['rotate', 'a', 'b'], /exactly one key id/],
      [['rotate', 'key_0123456789abcdef', '--overlap', '-1h'], /--overlap/],
    ];
    for (const [args, message] of cases) {
      const r = await keys(args, env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assert.match(r.stderr, /Usage:/, args.join(' '));
      assert.equal(r.stdout, '');
    }
    const listed = await keys(['list', '--json'], env);
    assert.deepEqual(JSON.parse(listed.stdout), [], 'no usage error created a key');
  });

  it('prints its usage for help, with exit 0', async () => {
    for (const args of [['help'], ['--help'], ['create', '--help'], ['keys', 'help']]) {
      const r = await keys(args, {});
      assert.equal(r.code, 0);
      assert.match(r.stdout, /portcullis keys create --name NAME --scopes a,b/);
    }
  });

  it('uses the store and pepper of --config, and answers 2 for an invalid config', async () => {
    const dir = freshDataDir();
    const pepper = randomBytes(32).toString('base64');
    const config = join(root, `config-${dirs}.yaml`);
    writeFileSync(
      config,
      `store:\n  url: sqlite:${join(dir, 'keys.db')}\nauth:\n  api_keys:\n    pepper: \${env:TEST_PEPPER}\n    cache_ttl: 5s\nupstreams:\n  app:\n    url: http://127.0.0.1:3000\nroutes:\n  - path: /a\n    methods: [GET]\n    upstream: app\n    authorize: any-authenticated\n`,
    );
    const env = { PORTCULLIS_DATA: join(dir, 'unused'), TEST_PEPPER: pepper };
    const { key, id } = await createKey(env, ['--config', config]);
    const store = await openStore({ url: `sqlite:${join(dir, 'keys.db')}`, dataDir: dir });
    try {
      const rows = await store.query<{ id: string }>('select id from api_keys');
      assert.deepEqual(
        rows.map((r) => r.id),
        [id],
      );
      const auth = createApiKeyAuthenticator({
        settings: { cacheSize: 1, cacheTtlMs: 1 },
        pepper,
        db: store,
        logger: { warn: () => {} },
      });
      assert.equal((await auth.authenticate(key)).id, id);
      await auth.settle();
    } finally {
      await store.close();
    }
    const revoked = await keys(['revoke', id, '--config', config], env);
    assert.match(revoked.stdout, /within 5s/);

    const missing = await keys(['list', '--config', config], { PORTCULLIS_DATA: dir });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /TEST_PEPPER is not set/);
    const viaEnv = await keys(['list'], { ...env, PORTCULLIS_CONFIG: config });
    assert.match(viaEnv.stdout, new RegExp(`^${id} .* revoked$`, 'm'));
  });

  it('warns when the config does not set up api_keys, since the gateway would not accept the key', async () => {
    const dir = freshDataDir();
    const config = join(root, `config-${dirs}.yaml`);
    writeFileSync(
      config,
      'upstreams:\n  app:\n    url: http://127.0.0.1:3000\nroutes:\n  - path: /a\n    methods: [GET]\n    upstream: app\n    auth: none\n',
    );
    const r = await createKey({ PORTCULLIS_DATA: dir }, ['--config', config]);
    assert.match(r.stderr, /does not configure auth\.api_keys/);
  });
});
