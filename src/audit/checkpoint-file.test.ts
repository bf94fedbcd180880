/**
 * The checkpoint file kept outside the store, through the real writer and
 * the real `portcullis audit verify`, on a SQLite file and on PostgreSQL:
 * a tail deleted with its checkpoints, and a database rolled back to an
 * older copy, both verify clean from the database alone and must fail here.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openPostgresStore, openSqliteStore, type Store } from '../store/index.js';
import { postgresSkipMessage, requirePostgres } from '../test-support/postgres.js';
import { createAuditLog } from './audit-log.js';
import { checkpointFilePath, readCheckpointFile } from './checkpoint-file.js';
import { runAuditCommand } from './cli.js';
import { checkpointLine } from './jsonl.js';
import { createCheckpointSigner, resolveAuditSigner } from './signing.js';
import { createAuditRepository } from './store.js';
import {
  adminEvent,
  allMigrations,
  capturedLogger,
  requestEvent,
  testSettings,
} from './test-support/fixtures.js';
import { verifyAuditLog } from './verify.js';

const root = mkdtempSync(join(tmpdir(), 'portcullis-audit-cpfile-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

/** One database as the gateway and the CLI see it: a data folder, a store, and the CLI's arguments for it. */
interface Site {
  dataDir: string;
  open(): Store;
  /** `--config` arguments, when the store is not the embedded default. */
  args: string[];
  /** Replaces the whole database by the copy `snapshot()` took. */
  snapshot(store: Store): Promise<void>;
  restore(store: Store): Promise<void>;
  cleanup(): Promise<void>;
}

const pg = await requirePostgres();

const backends: { name: string; skip: string | false; site(): Promise<Site> }[] = [
  {
    name: 'SQLite',
    skip: false,
    async site() {
      const dataDir = join(root, `data-${++dirs}`);
      mkdirSync(dataDir, { recursive: true });
      const file = join(dataDir, 'portcullis.db');
      const copy = join(root, `copy-${dirs}.db`);
      return {
        dataDir,
        open: () => openSqliteStore(file, allMigrations),
        args: [],
        // A real file copy, as restoring a backup does (VACUUM INTO: consistent despite the WAL).
        snapshot: async (store) => {
          await store.execute(`vacuum into '${copy}'`);
        },
        restore: async (store) => {
          await store.close();
          for (const suffix of ['-wal', '-shm']) rmSync(file + suffix, { force: true });
          copyFileSync(copy, file);
        },
        cleanup: async () => {},
      };
    },
  },
  {
    name: 'PostgreSQL',
    skip: pg ? false : postgresSkipMessage(),
    async site() {
      const target = await requirePostgres();
      if (!target) throw new Error(postgresSkipMessage());
      const dataDir = join(root, `data-${++dirs}`);
      mkdirSync(dataDir, { recursive: true });
      // The CLI reaches the private schema through the URL, as an operator's search_path would.
      const url = `${target.url}?options=${encodeURIComponent(`-c search_path=${target.schema}`)}`;
      const config = join(root, `config-${dirs}.yaml`);
      writeFileSync(
        config,
        `store:\n  url: ${url}\nupstreams:\n  app:\n    url: http://127.0.0.1:3000\nroutes:\n  - path: /a\n    methods: [GET]\n    upstream: app\n    auth: none\n`,
      );
      const tables = ['audit_events', 'audit_checkpoints'];
      return {
        dataDir,
        open: () => openPostgresStore(target.url, allMigrations, { schema: target.schema, poolSize: 2 }),
        args: ['--config', config],
        // A copy of the audit tables, put back in place: what a restored backup leaves.
        snapshot: async (store) => {
          for (const t of tables) await store.execute(`create table ${t}_copy as select * from ${t}`);
        },
        restore: async (store) => {
          await store.transaction(async (tx) => {
            for (const t of tables) {
              await tx.execute(`delete from ${t}`);
              await tx.execute(`insert into ${t} select * from ${t}_copy`);
            }
          });
          await store.close();
        },
        cleanup: () => target.drop(),
      };
    },
  },
];

/** Writes `count` request events from `from` (and an admin event) as the gateway does, then shuts down. */
async function write(store: Store, dataDir: string, from: number, count: number) {
  await store.migrate();
  const log = createAuditLog({
    db: store,
    settings: testSettings({ checkpoint_every: 10, batch_size: 10 }),
    signer: resolveAuditSigner(undefined, dataDir),
    logger: capturedLogger().logger,
  });
  for (let i = from; i < from + count; i++) {
    log.emit(requestEvent(i));
    if (i % 10 === 0) await log.flush();
  }
  // Not a multiple of checkpoint_every: the last checkpoint is the one signed at shutdown.
  log.emit(adminEvent('key.revoked'));
  await log.close();
  return log.stats;
}

async function verify(site: Site) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runAuditCommand(['verify', ...site.args], {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    env: { PORTCULLIS_DATA: site.dataDir },
  });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

/** What verify says from the database alone, without the checkpoint file. */
async function verifyDbOnly(site: Site) {
  const store = site.open();
  try {
    const signer = resolveAuditSigner(undefined, site.dataDir);
    return await verifyAuditLog(createAuditRepository(store), { publicKeys: [signer.publicKey] });
  } finally {
    await store.close();
  }
}

for (const backend of backends) {
  describe(`the audit checkpoint file (${backend.name})`, { skip: backend.skip }, () => {
    it('is written at each checkpoint and at shutdown (mode 0600), and verify of an untouched log passes', async () => {
      const site = await backend.site();
      try {
        const store = site.open();
        await write(store, site.dataDir, 1, 30);
        await store.close();
        const file = checkpointFilePath(site.dataDir);
        const kept = await readCheckpointFile(file);
        assert.equal(kept?.seq, 31, 'the checkpoint signed at shutdown');
        assert.equal(statSync(file).mode & 0o777, 0o600);
        const r = await verify(site);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(
          r.stdout,
          /Checkpoint kept in .*audit-checkpoint\.json: seq 31, signed .*, in the chain\./,
        );
        assert.match(r.stdout, /The newest checkpoint was signed \S+ \(\d+[smhd].* ago\)\./);
        assert.match(r.stdout, /OK: the chain is intact/);
      } finally {
        await site.cleanup();
      }
    });

    it('verify fails when the newest events are deleted together with their checkpoints', async () => {
      const site = await backend.site();
      try {
        const store = site.open();
        await write(store, site.dataDir, 1, 30);
        await store.execute('delete from audit_events where seq > 20');
        await store.execute('delete from audit_checkpoints where seq > 20');
        await store.close();
        // The database alone cannot tell: what is left is a valid, signed chain.
        assert.equal((await verifyDbOnly(site)).ok, true);
        const r = await verify(site);
        assert.equal(r.code, 1, r.stdout);
        assert.match(r.stdout, /TAMPERED: .*the first at seq 31 \(truncated\)/);
        assert.match(
          r.stdout,
          /seq 31 +truncated +the checkpoint in .*audit-checkpoint\.json \(seq 31, hash [0-9a-f]{64}, signed .*\): the database has no event at seq 31 \(its last is seq 20\)/,
        );
      } finally {
        await site.cleanup();
      }
    });

    it('verify fails on a database rolled back to an older copy, also after the gateway wrote on past it', async () => {
      const site = await backend.site();
      try {
        let store = site.open();
        await write(store, site.dataDir, 1, 20);
        await site.snapshot(store);
        await write(store, site.dataDir, 21, 20);
        const lost = await readCheckpointFile(checkpointFilePath(site.dataDir));
        assert.equal(lost?.seq, 42);
        await site.restore(store);
        assert.equal((await verifyDbOnly(site)).ok, true);
        const rolledBack = await verify(site);
        assert.equal(rolledBack.code, 1, rolledBack.stdout);
        assert.match(rolledBack.stdout, /seq 42 +truncated .*no event at seq 42 \(its last is seq 21\)/);

        // The gateway restarts on the old copy and writes past seq 42: the file must not be replaced.
        store = site.open();
        const stats = await write(store, site.dataDir, 100, 30);
        await store.close();
        assert.ok(stats.checkpointFileFailures > 0);
        assert.deepEqual(await readCheckpointFile(checkpointFilePath(site.dataDir)), lost);
        assert.equal((await verifyDbOnly(site)).ok, true);
        const r = await verify(site);
        assert.equal(r.code, 1, r.stdout);
        assert.match(r.stdout, new RegExp(`seq 42 +edited .*has hash [0-9a-f]{64}, not ${lost!.hash}`));
      } finally {
        await site.cleanup();
      }
    });

    it('verify fails on a checkpoint file whose signature does not verify', async () => {
      const site = await backend.site();
      try {
        const store = site.open();
        await write(store, site.dataDir, 1, 30);
        await store.close();
        const file = checkpointFilePath(site.dataDir);
        const real = (await readCheckpointFile(file))!;
        // Signed by another key under the real key's id: claims a seq the chain has, with a hash it lacks.
        const forger = createCheckpointSigner(generateKeyPairSync('ed25519').privateKey);
        const forged = {
          ...forger.sign('checkpoint', 20, 'a'.repeat(64), real.created_at),
          key_id: real.key_id,
        };
        writeFileSync(file, checkpointLine(forged));
        const r = await verify(site);
        assert.equal(r.code, 1, r.stdout);
        assert.match(
          r.stdout,
          /seq 20 +checkpoint +the checkpoint in .* has a signature that does not verify/,
        );
        writeFileSync(file, '{"type":"checkpoint"');
        const torn = await verify(site);
        assert.equal(torn.code, 1, torn.stdout);
        assert.match(torn.stdout, /FAILED: the checkpoint file .*not JSON/);
      } finally {
        await site.cleanup();
      }
    });
  });
}

describe('the audit checkpoint file, when absent or unwritable', () => {
  it('verify notes a missing file without failing', async () => {
    const dataDir = join(root, `data-${++dirs}`);
    const store = openSqliteStore(join(dataDir, 'portcullis.db'), allMigrations);
    await write(store, dataDir, 1, 5);
    await store.close();
    rmSync(checkpointFilePath(dataDir));
    const out: string[] = [];
    const code = await runAuditCommand(['verify'], {
      out: (s) => out.push(s),
      err: () => {},
      env: { PORTCULLIS_DATA: dataDir },
    });
    assert.equal(code, 0, out.join('\n'));
    assert.match(out.join('\n'), /Note: no checkpoint file at .* yet/);
  });

  it('verify also checks the newest checkpoint line of the JSON lines file', async () => {
    const dataDir = join(root, `data-${++dirs}`);
    const db = join(dataDir, 'audit.db');
    const jsonl = join(dataDir, 'audit.jsonl');
    const store = openSqliteStore(db, allMigrations);
    await store.migrate();
    const log = createAuditLog({
      db: store,
      settings: testSettings({ checkpoint_every: 10, batch_size: 10, jsonl: { path: jsonl } }),
      signer: resolveAuditSigner(undefined, dataDir),
      logger: capturedLogger().logger,
    });
    for (let i = 1; i <= 25; i++) log.emit(requestEvent(i));
    await log.close();
    // The tail, its checkpoints, and the checkpoint file all deleted: the JSON lines file still tells.
    await store.execute('delete from audit_events where seq > 10');
    await store.execute('delete from audit_checkpoints where seq > 10');
    await store.close();
    rmSync(checkpointFilePath(dataDir));
    const config = join(root, `config-${++dirs}.yaml`);
    writeFileSync(
      config,
      `store:\n  url: sqlite:${db}\naudit:\n  jsonl:\n    path: ${jsonl}\nupstreams:\n  app:\n    url: http://127.0.0.1:3000\nroutes:\n  - path: /a\n    methods: [GET]\n    upstream: app\n    auth: none\n`,
    );
    const out: string[] = [];
    const code = await runAuditCommand(['verify', '--config', config], {
      out: (s) => out.push(s),
      err: (s) => out.push(s),
      env: { PORTCULLIS_DATA: dataDir },
    });
    assert.equal(code, 1, out.join('\n'));
    assert.match(out.join('\n'), /seq 25 +truncated +the checkpoint in .*audit\.jsonl .*no event at seq 25/);
  });

  it('a write failure is logged and counted, and the events are still written', async () => {
    const dataDir = join(root, `data-${++dirs}`);
    mkdirSync(dataDir, { recursive: true });
    // A regular file where the folder should be: mkdir fails with ENOTDIR.
    writeFileSync(join(dataDir, 'not-a-folder'), '');
    const store = openSqliteStore(join(dataDir, 'portcullis.db'), allMigrations);
    await store.migrate();
    const logged = capturedLogger();
    const log = createAuditLog({
      db: store,
      settings: testSettings({ checkpoint_every: 5, batch_size: 5 }),
      signer: resolveAuditSigner(undefined, dataDir),
      checkpointFile: join(dataDir, 'not-a-folder', 'audit-checkpoint.json'),
      logger: logged.logger,
    });
    for (let i = 1; i <= 10; i++) log.emit(requestEvent(i));
    await log.close();
    assert.equal(log.stats.written, 10);
    assert.ok(log.stats.checkpoints >= 2);
    assert.equal(log.stats.checkpointFileFailures, log.stats.checkpoints);
    assert.ok(logged.parsed().some((l) => l.msg === 'the audit checkpoint file could not be written'));
    await store.close();
    assert.equal(readFileSync(join(dataDir, 'not-a-folder'), 'utf8'), '');
  });
});
