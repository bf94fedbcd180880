import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openSqliteStore, type Store } from '../store/index.js';
import { createAuditLog } from './audit-log.js';
import { runAuditCommand } from './cli.js';
import { type CheckpointSigner, createCheckpointSigner, resolveAuditSigner } from './signing.js';
import {
  adminEvent,
  allMigrations,
  capturedLogger,
  requestEvent,
  testSettings,
  until,
} from './test-support/fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'portcullis-audit-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

async function audit(args: string[], env: NodeJS.ProcessEnv, signal?: AbortSignal) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runAuditCommand(args, {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    env,
    ...(signal ? { signal } : {}),
  });
  return { code, stdout: out.join('\n'), stderr: err.join('\n'), lines: out };
}

/** A database with 40 events (every fifth a denial of key_user1) and an admin event, signed by `signer`. */
async function seeded(file: string, signer: CheckpointSigner): Promise<Store> {
  const store = openSqliteStore(file, allMigrations);
  await store.migrate();
  const log = createAuditLog({
    db: store,
    settings: testSettings({ checkpoint_every: 10, batch_size: 10 }),
    signer,
    logger: capturedLogger().logger,
  });
  for (let i = 1; i <= 40; i++) {
    log.emit(
      requestEvent(
        i,
        i % 5 === 0
          ? {
              decision: 'deny',
              status: 403,
              reason: 'authz.denied',
              principal: { kind: 'jwt', id: 'key_user1', tenant: undefined },
            }
          : {},
      ),
    );
    if (i % 10 === 0) await log.flush();
  }
  log.emit(adminEvent('key.revoked', { actor: 'admin-api' }));
  await log.close();
  return store;
}

/** The embedded default: SQLite and the generated key in the data folder. */
async function defaultDataDir() {
  const dataDir = join(root, `data-${++dirs}`);
  const store = await seeded(join(dataDir, 'portcullis.db'), resolveAuditSigner(undefined, dataDir));
  return { dataDir, store, env: { PORTCULLIS_DATA: dataDir } };
}

function config(body: string): string {
  const file = join(root, `config-${++dirs}.yaml`);
  writeFileSync(
    file,
    `${body}\nupstreams:\n  app:\n    url: http://127.0.0.1:3000\nroutes:\n  - path: /a\n    methods: [GET]\n    upstream: app\n    auth: none\n`,
  );
  return file;
}

describe('portcullis audit', () => {
  it('verify says the log is intact, with its checkpoints, and exits 0', async () => {
    const { store, env } = await defaultDataDir();
    await store.close();
    const r = await audit(['verify'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /41 events \(seq 1\.\.41\)/);
    assert.match(r.stdout, /OK: the chain is intact; \d+ checkpoint\(s\) verified, the last at seq 41\./);
  });

  it('verify names the first tampered seq and exits 1', async () => {
    const { store, env } = await defaultDataDir();
    await store.execute(`update audit_events set decision = 'allow', status = 200 where seq = 15`);
    await store.execute('delete from audit_events where seq = 33');
    await store.close();
    const r = await audit(['verify'], env);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /TAMPERED: \d+ problem\(s\); the first at seq 15 \(edited\)\./);
    assert.match(r.stdout, /seq 33 +deleted/);
    const json = await audit(['verify', '--json'], env);
    assert.equal(json.code, 1);
    const result = JSON.parse(json.stdout) as { ok: boolean; problems: { seq: number; kind: string }[] };
    assert.equal(result.ok, false);
    assert.deepEqual(result.problems.map((p) => [p.seq, p.kind]).slice(0, 1), [[15, 'edited']]);
  });

  it('tail shows the latest events, oldest first, as text or JSON', async () => {
    const { store, env } = await defaultDataDir();
    await store.close();
    const r = await audit(['tail', '-n', '3'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.lines.length, 3);
    assert.match(
      r.lines[0]!,
      /#39 allow 200 ok GET \/orders\/39 route="orders-read" principal=api_key:key_user0@acme ip=203\.0\.113\.7 req=req_test_39/,
    );
    assert.match(
      r.lines[2]!,
      /#41 admin key\.revoked actor=admin-api target=key_0123456789abcdef \{"name":"reporting"\}/,
    );
    const json = await audit(['tail', '-n', '2', '--json'], env);
    assert.deepEqual(
      json.lines.map((l) => (JSON.parse(l) as { seq: number }).seq),
      [40, 41],
    );
  });

  it('tail --follow prints events as they are written until stopped', async () => {
    const { store, env, dataDir } = await defaultDataDir();
    const controller = new AbortController();
    const out: string[] = [];
    const running = runAuditCommand(['tail', '-n', '1', '--follow'], {
      out: (s) => out.push(s),
      err: () => {},
      env,
      signal: controller.signal,
    });
    await until(() => out.length === 1);
    const log = createAuditLog({
      db: store,
      settings: testSettings(),
      signer: resolveAuditSigner(undefined, dataDir),
      logger: capturedLogger().logger,
    });
    log.emit(requestEvent(100));
    await log.close();
    await until(() => out.length === 2, 5000);
    controller.abort();
    assert.equal(await running, 0);
    assert.match(out[1]!, /#42 allow .* req=req_test_100/);
    await store.close();
  });

  it('search filters by principal, decision and time, and prints JSON lines with --json', async () => {
    const { store, env } = await defaultDataDir();
    await store.close();
    const r = await audit(
      [
        'search',
        '--principal',
        'key_user1',
        '--decision',
        'deny',
        '--since',
        '2030-01-01T00:00:20Z',
        '--json',
      ],
      env,
    );
    assert.equal(r.code, 0, r.stderr);
    const seqs = r.lines.map((l) => (JSON.parse(l) as { seq: number }).seq);
    assert.deepEqual(seqs, [20, 25, 30, 35, 40]);
    const admin = await audit(['search', '--principal', 'admin-api'], env);
    assert.match(admin.stdout, /admin key\.revoked/);
    const none = await audit(['search', '--ip', '198.51.100.1'], env);
    assert.equal(none.code, 0);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /No matching audit events/);
  });

  it('uses the store and signing key of --config, and --public-key for a retired key', async () => {
    const pem = (k: ReturnType<typeof generateKeyPairSync>['privateKey']) =>
      k.export({ type: 'pkcs8', format: 'pem' }) as string;
    const retired = generateKeyPairSync('ed25519');
    const current = generateKeyPairSync('ed25519');
    const db = join(root, `configured-${++dirs}.db`);
    const store = await seeded(db, createCheckpointSigner(retired.privateKey));
    await store.close();
    const keyFile = join(root, `current-${dirs}.pem`);
    writeFileSync(keyFile, pem(current.privateKey), { mode: 0o600 });
    const retiredFile = join(root, `retired-${dirs}.pub.pem`);
    writeFileSync(retiredFile, retired.publicKey.export({ type: 'spki', format: 'pem' }));
    const file = config(
      `store:\n  url: sqlite:${db}\naudit:\n  signing_key: \${file:${keyFile}}\n  flush_interval: 100ms`,
    );
    const env = { PORTCULLIS_DATA: join(root, 'unused') };
    const without = await audit(['verify', '--config', file], env);
    assert.equal(without.code, 1);
    assert.match(without.stdout, /not among the verification keys/);
    const withRetired = await audit(['verify', '--config', file, '--public-key', retiredFile], env);
    assert.equal(withRetired.code, 0, withRetired.stdout);
  });

  it('reports a config error with exit 2, and a store without an audit log with exit 1', async () => {
    const bad = config('audit:\n  overflow: wait');
    const r = await audit(['verify', '--config', bad], {});
    assert.equal(r.code, 2);
    assert.match(r.stderr, /overflow/);
    const empty = join(root, `empty-${++dirs}`);
    const none = await audit(['tail'], { PORTCULLIS_DATA: empty });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /has no audit log yet/);
  });

  it('exits 2 with the usage on bad arguments', async () => {
    const env = { PORTCULLIS_DATA: join(root, 'unused') };
    for (const args of [
      [],
      ['frobnicate'],
      ['search', '--decision', 'maybe'],
      ['search', '--since', 'yesterday'],
      ['tail', '-n', '0'],
      ['verify', 'extra'],
      ['verify', '--public-key', join(root, 'missing.pem')],
    ]) {
      const r = await audit(args, env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
    const help = await audit(['--help'], env);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /portcullis audit verify/);
  });
});
