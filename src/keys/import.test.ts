import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AuthFailure } from '../auth/types.js';
import { openStore, type Store } from '../store/index.js';
import { startTestGateway, startUpstream } from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { createApiKeyAuthenticator, IMPORTED_KEYS_CREDENTIAL, resolvePepper } from './authenticator.js';
import { runKeysCommand } from './cli.js';
import { parseImportFile } from './import.js';
import { importedKeyId } from './store.js';

const root = mkdtempSync(join(tmpdir(), 'portcullis-keys-import-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const dir = join(root, `case-${++n}`);
  mkdirSync(dir);
  return dir;
};

const PEPPER = randomBytes(32).toString('base64');
/** Keys as another gateway would have made them: Kong's 32 hex characters, Tyk's longer ones. */
const kongKey = () => randomBytes(16).toString('hex');
const tykKey = () => `eyJvcmciOiI1${randomBytes(24).toString('base64url')}`;

const line = (fields: Record<string, unknown>) => JSON.stringify(fields);

async function keys(args: string[], env: NodeJS.ProcessEnv) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runKeysCommand(args, { out: (s) => out.push(s), err: (s) => err.push(s), env });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

function writeImport(dir: string, lines: string[]): string {
  const file = join(dir, `keys-${++n}.jsonl`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/** A config on its own SQLite file and pepper, accepting imported keys (or not). */
function writeConfig(dir: string, importedKeys: boolean): string {
  const file = join(dir, 'portcullis.yaml');
  writeFileSync(
    file,
    `store:\n  url: sqlite:${join(dir, 'keys.db')}\nauth:\n  api_keys:\n    pepper: \${env:TEST_PEPPER}\n    imported_keys: ${importedKeys}\nupstreams:\n  app:\n    url: http://127.0.0.1:3000\nroutes:\n  - path: /a\n    methods: [GET]\n    upstream: app\n    authorize: any-authenticated\n`,
  );
  return file;
}

async function withStore<T>(dir: string, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore({ url: `sqlite:${join(dir, 'keys.db')}`, dataDir: dir });
  try {
    await store.migrate();
    return await fn(store);
  } finally {
    await store.close();
  }
}

function authenticator(store: Store, importedKeys = true) {
  return createApiKeyAuthenticator({
    settings: { cacheSize: 100, cacheTtlMs: 30_000, importedKeys },
    pepper: PEPPER,
    db: store,
    logger: { warn: () => {} },
  });
}

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'accepted';
  } catch (err) {
    assert.ok(err instanceof AuthFailure, String(err));
    return `${err.reason}${err.credentialId === undefined ? '' : ` ${err.credentialId}`}`;
  }
}

describe('reading an import file', () => {
  it('reads one key a line, skipping blank lines, with tenant and expiry optional', () => {
    const a = kongKey();
    const b = tykKey();
    const { entries, problems } = parseImportFile(
      `\uFEFF${line({ key: a, name: 'billing', scopes: ['orders:read', 'orders:read'], tenant: 'acme', expiry: '2099-01-31T00:00:00Z' })}\r\n\n${line({ key: b, name: 'batch', scopes: [], tenant: null, expiry: null })}\n`,
      PEPPER,
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(
      entries.map((e) => [e.line, e.id, e.name, e.scopes, e.tenant, e.expiresAt]),
      [
        [1, importedKeyId(PEPPER, a), 'billing', ['orders:read'], 'acme', Date.parse('2099-01-31T00:00:00Z')],
        [3, importedKeyId(PEPPER, b), 'batch', [], undefined, undefined],
      ],
    );
  });

  it('names each bad line and what is wrong with it, and never the key', () => {
    const keys = Array.from({ length: 12 }, kongKey);
    const text = [
      line({ key: keys[0], name: 'ok', scopes: ['a'] }),
      `{"key": "${keys[1]}", "name": "broken", scopes: []}`,
      line({ key: keys[2], name: 'typo', scopes: [], expires: '2099-01-01T00:00:00Z' }),
      line({ key: 'short-key', name: 'short', scopes: [] }),
      line({ key: `${keys[3]} with space`, name: 'space', scopes: [] }),
      line({ key: `pcl_${keys[4]}`, name: 'ours', scopes: [] }),
      line({ key: keys[5], name: 'past', scopes: [], expiry: '2001-01-01T00:00:00Z' }),
      line({ key: keys[6], name: 'no zone', scopes: [], expiry: '2099-01-01 00:00' }),
      line({ key: keys[7], name: '', scopes: [] }),
      line({ key: keys[8], name: 'bad scope', scopes: ['has space'] }),
      line({ key: keys[0], name: 'again', scopes: [] }),
      `[${JSON.stringify(keys[9])}]`,
      line({ key: keys[10], name: 'scopes as text', scopes: 'a b' }),
      line({ key: 42, name: 'number', scopes: [] }),
    ].join('\n');
    const { entries, problems } = parseImportFile(text, PEPPER);
    assert.equal(entries.length, 1);
    assert.deepEqual(
      problems.map((p) => p.line),
      [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
    );
    const byLine = new Map(problems.map((p) => [p.line, p.message]));
    assert.match(byLine.get(2)!, /^not valid JSON at column \d+$/);
    assert.match(byLine.get(3)!, /unknown field "expires"/);
    assert.match(byLine.get(4)!, /9 characters; expected 16 to 256/);
    assert.match(byLine.get(5)!, /printable ASCII without spaces/);
    assert.match(byLine.get(6)!, /starts with pcl_/);
    assert.match(byLine.get(7)!, /has passed/);
    assert.match(byLine.get(8)!, /RFC 3339/);
    assert.match(byLine.get(9)!, /the name must be/);
    assert.match(byLine.get(10)!, /scope "has space"/);
    assert.equal(byLine.get(11), 'the same key as line 1');
    assert.match(byLine.get(12)!, /expected a JSON object/);
    assert.match(byLine.get(13)!, /"scopes" to be a list/);
    assert.match(byLine.get(14)!, /"key" to be a string/);
    const all = problems.map((p) => p.message).join('\n');
    for (const k of [...keys, 'short-key']) assert.ok(!all.includes(k), 'a key was echoed');
    // Not even a piece of one: the JSON parser's own message quotes the text.
    assert.ok(!all.includes(keys[1]!.slice(0, 8)));
  });
});

describe('portcullis keys import', () => {
  it('stores only keyed hashes, and the authenticator finds imported keys by hash alone', async () => {
    const dir = fresh();
    const config = writeConfig(dir, true);
    const env = { PORTCULLIS_DATA: dir, TEST_PEPPER: PEPPER };
    const a = kongKey();
    const b = tykKey();
    const file = writeImport(dir, [
      line({ key: a, name: 'billing', scopes: ['orders:read'], tenant: 'acme' }),
      line({ key: b, name: 'batch', scopes: ['orders:write'], expiry: '2099-06-01T00:00:00Z' }),
    ]);
    const r = await keys(['import', '--file', file, '--config', config], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^LINE +ID +NAME +EXPIRES$/m);
    assert.match(r.stdout, new RegExp(`^1 +${importedKeyId(PEPPER, a)} +billing +-$`, 'm'));
    assert.match(r.stdout, new RegExp(`^2 +${importedKeyId(PEPPER, b)} +batch +2099-06-01T00:00:00Z$`, 'm'));
    assert.match(r.stderr, /Imported 2 key\(s\)/);
    assert.doesNotMatch(r.stderr, /warning/);
    for (const text of [r.stdout, r.stderr]) assert.ok(!text.includes(a) && !text.includes(b));

    await withStore(dir, async (store) => {
      const dump = JSON.stringify(await store.query('select * from api_keys'));
      assert.ok(!dump.includes(a) && !dump.includes(b), 'a key is stored in plaintext');
      // The import is audited, naming ids and names only.
      const audit = await store.query<{ action: string; target: string }>(
        "select * from audit_events where action = 'key.imported' order by target",
      );
      assert.deepEqual(
        audit.map((e) => e.target).sort(),
        [importedKeyId(PEPPER, a), importedKeyId(PEPPER, b)].sort(),
      );
      const events = JSON.stringify(await store.query('select * from audit_events'));
      assert.ok(!events.includes(a) && !events.includes(b), 'a key reached the audit log');

      const auth = authenticator(store);
      const principal = await auth.authenticate(a);
      assert.equal(principal.id, importedKeyId(PEPPER, a));
      assert.deepEqual([...principal.scopes], ['orders:read']);
      assert.equal(principal.tenant, 'acme');
      assert.equal((await auth.authenticate(b)).claims.name, 'batch');
      await auth.settle();
    });
  });

  it('imports nothing when one line is bad, and exits 2 naming the line', async () => {
    const dir = fresh();
    const config = writeConfig(dir, true);
    const env = { PORTCULLIS_DATA: dir, TEST_PEPPER: PEPPER };
    const good = kongKey();
    const file = writeImport(dir, [
      line({ key: good, name: 'fine', scopes: [] }),
      line({ key: kongKey(), name: 'fine too', scopes: [] }),
      line({ key: 'tooshort', name: 'bad', scopes: [] }),
    ]);
    const r = await keys(['import', '--file', file, '--config', config], env);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: the key has 8 characters`),
    );
    assert.match(r.stderr, /Nothing imported: 1 bad line\(s\)/);
    assert.ok(!r.stderr.includes('tooshort'));
    await withStore(dir, async (store) => {
      assert.deepEqual(await store.query('select id from api_keys'), []);
    });
  });

  it('refuses keys already imported, unless --skip-existing; a dry run stores nothing', async () => {
    const dir = fresh();
    const config = writeConfig(dir, true);
    const env = { PORTCULLIS_DATA: dir, TEST_PEPPER: PEPPER };
    const first = kongKey();
    const second = kongKey();
    const dry = await keys(
      [
        'import',
        '--dry-run',
        '--file',
        writeImport(dir, [line({ key: first, name: 'a', scopes: [] })]),
        '--config',
        config,
      ],
      env,
    );
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /1 key\(s\) can be imported \(dry run/);
    await withStore(dir, async (store) => assert.deepEqual(await store.query('select id from api_keys'), []));

    const once = await keys(
      [
        'import',
        '--file',
        writeImport(dir, [line({ key: first, name: 'a', scopes: [] })]),
        '--config',
        config,
      ],
      env,
    );
    assert.equal(once.code, 0, once.stderr);
    const overlap = writeImport(dir, [
      line({ key: second, name: 'b', scopes: [] }),
      line({ key: first, name: 'a', scopes: [] }),
    ]);
    const refused = await keys(['import', '--file', overlap, '--config', config], env);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      new RegExp(`:2: this key is already stored, as ${importedKeyId(PEPPER, first)}`),
    );
    await withStore(dir, async (store) => {
      assert.equal((await store.query('select id from api_keys')).length, 1);
    });
    const skipped = await keys(['import', '--file', overlap, '--skip-existing', '--config', config], env);
    assert.equal(skipped.code, 0, skipped.stderr);
    assert.match(skipped.stderr, /Imported 1 key\(s\).*skipped 1 already stored/);
  });

  it('warns when the config does not accept imported keys, and such a gateway refuses them as malformed', async () => {
    const dir = fresh();
    const config = writeConfig(dir, false);
    const env = { PORTCULLIS_DATA: dir, TEST_PEPPER: PEPPER };
    const key = kongKey();
    const r = await keys(
      ['import', '--file', writeImport(dir, [line({ key, name: 'a', scopes: [] })]), '--config', config],
      env,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /does not set auth\.api_keys\.imported_keys: true/);
    await withStore(dir, async (store) => {
      const off = authenticator(store, false);
      assert.equal(await reason(off.authenticate(key)), 'malformed_key');
      assert.equal(off.stats.storeLookups, 0);
      const on = authenticator(store, true);
      assert.equal(await reason(on.authenticate(key)), 'accepted');
      await on.settle();
    });
  });

  it('answers 2 without --file or with a file it cannot read', async () => {
    const env = { PORTCULLIS_DATA: fresh() };
    assert.equal((await keys(['import'], env)).code, 2);
    const missing = await keys(['import', '--file', join(root, 'nope.jsonl')], env);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read .*ENOENT/);
  });
});

describe('the authenticator with imported keys on', () => {
  it('still refuses garbage with no lookup, and counts guesses at imported keys under one shared id', async () => {
    const dir = fresh();
    await withStore(dir, async (store) => {
      const auth = authenticator(store);
      const gated: Array<string | undefined> = [];
      const gate = (id: string | undefined) => {
        gated.push(id);
      };
      for (const garbage of [
        '',
        'short',
        'x'.repeat(257),
        'has a space in it here',
        'tab\there-and-long-enough',
      ]) {
        assert.equal(await reason(auth.authenticate(garbage, gate)), 'malformed_key');
      }
      // A pcl_ key with a broken checksum is still refused by its format alone.
      assert.equal(
        await reason(auth.authenticate(`pcl_${'A'.repeat(16)}_${'B'.repeat(49)}`, gate)),
        'malformed_key',
      );
      assert.equal(auth.stats.storeLookups, 0);
      assert.deepEqual(gated, [undefined, undefined, undefined, undefined, undefined, undefined]);
      gated.length = 0;
      assert.equal(
        await reason(auth.authenticate(kongKey(), gate)),
        `key_unknown ${IMPORTED_KEYS_CREDENTIAL}`,
      );
      assert.equal(auth.stats.storeLookups, 1);
      assert.deepEqual(gated, [IMPORTED_KEYS_CREDENTIAL]);
    });
  });
});

describe('imported keys through the gateway', () => {
  it('serves imported keys, refuses a revoked one within about a second, and locks out guessing sooner', async () => {
    const upstream = await startUpstream();
    const gw = await startTestGateway({
      auth: {
        api_keys: { imported_keys: true },
        brute_force: { max_failures: 3, max_failures_per_ip: 50 },
      },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' }],
    });
    try {
      const env = { PORTCULLIS_DATA: gw.dataDir };
      const live = kongKey();
      const leaving = tykKey();
      const file = writeImport(gw.dataDir, [
        line({ key: live, name: 'billing', scopes: ['orders:read'], tenant: 'acme' }),
        line({ key: leaving, name: 'old-partner', scopes: ['orders:read'] }),
      ]);
      const imported = await keys(['import', '--file', file, '--config', gw.configFile], env);
      assert.equal(imported.code, 0, imported.stderr);
      const get = (key: string) => send(gw.url, '/orders', { headers: { 'x-api-key': key } });

      const ok = await get(live);
      assert.equal(ok.status, 200);
      const seen = upstream.requests.at(-1)!.headers;
      assert.equal(seen['x-portcullis-tenant'], 'acme');
      assert.equal(seen['x-portcullis-subject'], importedKeyId(resolvePepper(undefined, gw.dataDir), live));
      assert.equal((await get(leaving)).status, 200);

      const id = /^2 +(key_\w+)/m.exec(imported.stdout)![1]!;
      const revoked = await keys(['revoke', id, '--config', gw.configFile], env);
      assert.equal(revoked.code, 0, revoked.stderr);
      // `keys revoke` tells running gateways through the revocation feed (polled every second on SQLite).
      const started = Date.now();
      let status = 200;
      while (status === 200 && Date.now() - started < 5000) {
        status = (await get(leaving)).status;
        if (status === 200) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(status, 401);
      assert.ok(Date.now() - started < 2500, `took ${Date.now() - started} ms`);
      assert.equal((await get(live)).status, 200);

      // Garbage is refused; guesses at imported keys lock the IP out after max_failures (3), not 50.
      assert.equal((await get('nope')).status, 401);
      const guesses = [];
      for (let i = 0; i < 4; i++) guesses.push((await get(kongKey())).status);
      assert.deepEqual(guesses, [401, 401, 401, 429]);
      // A key this instance has verified still passes: others' guesses never lock its owner out.
      assert.equal((await get(live)).status, 200);
      const logs = JSON.stringify(gw.logs);
      assert.ok(!logs.includes(live) && !logs.includes(leaving), 'a key reached the logs');
    } finally {
      await gw.close();
      await upstream.close();
    }
  });
});

describe('keys restricted to routes', () => {
  it('reads "routes" from an import file and refuses an empty or non-list value by line', () => {
    const [a, b, c] = [kongKey(), kongKey(), kongKey()];
    const { entries, problems } = parseImportFile(
      [
        line({ key: a, name: 'partner', scopes: [], routes: ['list-orders', 'list-orders'] }),
        line({ key: b, name: 'nowhere', scopes: [], routes: [] }),
        line({ key: c, name: 'text', scopes: [], routes: 'list-orders' }),
      ].join('\n'),
      PEPPER,
    );
    assert.deepEqual(
      entries.map((e) => [e.name, e.routes]),
      [['partner', ['list-orders']]],
    );
    assert.deepEqual(
      problems.map((p) => p.line),
      [2, 3],
    );
    assert.match(problems[0]!.message, /at least one route/);
    assert.match(problems[1]!.message, /list of route names/);
  });

  it('serves an imported or created key only on its routes, and any key elsewhere still on every route', async () => {
    const upstream = await startUpstream();
    const gw = await startTestGateway({
      auth: { api_keys: { imported_keys: true } },
      upstreams: { app: { url: upstream.url } },
      routes: [
        {
          name: 'list-orders',
          path: '/orders',
          methods: ['GET'],
          upstream: 'app',
          authorize: 'any-authenticated',
        },
        {
          name: 'admin-users',
          path: '/users',
          methods: ['GET'],
          upstream: 'app',
          authorize: 'any-authenticated',
        },
      ],
    });
    try {
      const env = { PORTCULLIS_DATA: gw.dataDir };
      const partner = kongKey();
      const everywhere = kongKey();
      const file = writeImport(gw.dataDir, [
        line({ key: partner, name: 'partner', scopes: [], routes: ['list-orders'] }),
        line({ key: everywhere, name: 'internal', scopes: [] }),
      ]);
      const imported = await keys(['import', '--file', file, '--config', gw.configFile], env);
      assert.equal(imported.code, 0, imported.stderr);
      const created = await keys(
        [
          'create',
          '--name',
          'reports',
          '--scopes',
          'r',
          '--routes',
          'admin-users',
          '--config',
          gw.configFile,
        ],
        env,
      );
      assert.equal(created.code, 0, created.stderr);
      assert.match(created.stderr, /routes: admin-users/);
      const ours = created.stdout.trim();
      const status = async (path: string, key: string) =>
        (await send(gw.url, path, { headers: { 'x-api-key': key } })).status;

      assert.deepEqual(
        [await status('/orders', partner), await status('/users', partner)],
        [200, 401],
        'the imported key is good on list-orders only',
      );
      assert.deepEqual(
        [await status('/users', ours), await status('/orders', ours)],
        [200, 401],
        'the created key is good on admin-users only',
      );
      assert.deepEqual([await status('/orders', everywhere), await status('/users', everywhere)], [200, 200]);
      // A legitimate key on the wrong route is not a guess: it never locks its holder out.
      for (let i = 0; i < 12; i++) assert.equal(await status('/users', partner), 401);
      assert.equal(await status('/orders', partner), 200);

      const listed = await keys(['list', '--json', '--config', gw.configFile], env);
      const routes = Object.fromEntries(
        (JSON.parse(listed.stdout) as Array<{ name: string; routes: string[] | null }>).map((k) => [
          k.name,
          k.routes,
        ]),
      );
      assert.deepEqual(routes, { partner: ['list-orders'], internal: null, reports: ['admin-users'] });
    } finally {
      await gw.close();
      await upstream.close();
    }
  });
});
