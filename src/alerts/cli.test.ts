import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { AdminEvent } from '../events/types.js';
import { migrations, openStore } from '../store/index.js';
import { createBlocklist } from './blocklist.js';
import { runAlertsCommand, runBlocksCommand, withAlertsMigration } from './cli.js';
import { type AlertRecord, createAlertStore, createBlockStore, newId } from './store.js';

const root = mkdtempSync(join(tmpdir(), 'portcullis-alerts-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));

let dirs = 0;
const freshEnv = () => ({ PORTCULLIS_DATA: join(root, `data-${++dirs}`) });

async function run(
  command: typeof runAlertsCommand,
  args: string[],
  env: NodeJS.ProcessEnv,
  events: AdminEvent[] = [],
) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await command(args, {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    env,
    onEvent: (e) => {
      events.push(e);
    },
  });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

/** Opens the store the CLI uses for `env`, as a running gateway on the same data folder would. */
async function withStore<T>(
  env: { PORTCULLIS_DATA: string },
  fn: (store: Awaited<ReturnType<typeof openStore>>) => Promise<T>,
) {
  const store = await openStore({
    dataDir: env.PORTCULLIS_DATA,
    migrations: withAlertsMigration(migrations),
  });
  try {
    await store.migrate();
    return await fn(store);
  } finally {
    await store.close();
  }
}

function alert(overrides: Partial<AlertRecord>): AlertRecord {
  const t = Date.now();
  return {
    id: newId('alr'),
    detector: 'auth_failures',
    severity: 'warning',
    subject: { kind: 'ip', id: '192.0.2.66' },
    summary: '20 failed authentications from IP 192.0.2.66 within 1m.',
    evidence: { failures: 20 },
    firstSeen: t,
    lastSeen: t,
    count: 3,
    delivery: { slack: 'delivered' },
    ...overrides,
  };
}

describe('portcullis alerts', () => {
  it('lists the stored alerts of the last 24h, most recent first, as a table or JSON', async () => {
    const env = freshEnv();
    const empty = await run(runAlertsCommand, ['list'], env);
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout, 'No alerts in the last 24h.');
    const recent = alert({ detector: 'rate_spike', severity: 'critical', lastSeen: Date.now() - 60_000 });
    const older = alert({ lastSeen: Date.now() - 3_600_000 * 2 });
    const stale = alert({ lastSeen: Date.now() - 3_600_000 * 48, subject: { kind: 'ip', id: '10.9.9.9' } });
    await withStore(env, async (store) => {
      const alerts = createAlertStore(store);
      for (const a of [recent, older, stale]) await alerts.insert(a, a.id);
    });
    const list = await run(runAlertsCommand, ['alerts', 'list'], env);
    assert.equal(list.code, 0, list.stderr);
    const lines = list.stdout.split('\n');
    assert.match(lines[0]!, /^ID +LAST SEEN +SEVERITY +DETECTOR +SUBJECT +COUNT +DELIVERY +SUMMARY$/);
    assert.match(
      lines[1]!,
      new RegExp(`^${recent.id} .* critical +rate_spike +ip:192\\.0\\.2\\.66 +3 +slack:delivered +20 failed`),
    );
    assert.match(lines[2]!, new RegExp(`^${older.id} `));
    assert.equal(lines.length, 3, 'the 48-hour-old alert is left out');
    const json = await run(runAlertsCommand, ['list', '--since', '1h', '--json'], env);
    const rows = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(
      rows.map((r) => [r.id, r.detector, r.count]),
      [[recent.id, 'rate_spike', 3]],
    );
  });

  it('exits 2 with the usage on bad arguments', async () => {
    const env = freshEnv();
    for (const args of [
      [],
      ['show'],
      ['list', '--since', 'yesterday'],
      ['list', '--limit', '0'],
      ['list', 'x'],
    ]) {
      const r = await run(runAlertsCommand, args, env);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /Usage:\n {2}portcullis alerts list/);
    }
  });
});

describe('portcullis blocks', () => {
  it('adds a block that a running gateway applies after its refresh, lists it, and lifts it', async () => {
    const env = freshEnv();
    const events: AdminEvent[] = [];
    const added = await run(runBlocksCommand, ['add', '--ip', '203.0.113.7', '--for', '1h'], env, events);
    assert.equal(added.code, 0, added.stderr);
    const id = /as (blk_[0-9a-f]{16})\./.exec(added.stdout)?.[1];
    assert.ok(id, added.stdout);
    assert.match(added.stdout, /^Blocked ip 203\.0\.113\.7 until .* \(429\) as blk_/);

    await withStore(env, async (store) => {
      const gateway = createBlocklist({
        store: createBlockStore(store),
        settings: { refreshMs: 5000, maxEntries: 100 },
      });
      await gateway.refresh();
      assert.equal(gateway.isBlocked('ip', '203.0.113.7')?.id, id);
    });

    const list = await run(runBlocksCommand, ['list'], env);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ID +KIND +SUBJECT +STATUS +CREATED +EXPIRES +BY +STATE +REASON$/m);
    assert.match(
      list.stdout,
      new RegExp(`^${id} +ip +203\\.0\\.113\\.7 +429 .* cli +active +added with portcullis blocks add$`, 'm'),
    );

    const lifted = await run(runBlocksCommand, ['lift', id], env, events);
    assert.equal(lifted.code, 0, lifted.stderr);
    assert.equal(lifted.stdout, `Lifted ${id} (ip 203.0.113.7).`);
    assert.equal((await run(runBlocksCommand, ['list'], env)).stdout, 'No active blocks.');
    const all = JSON.parse((await run(runBlocksCommand, ['list', '--all', '--json'], env)).stdout) as Array<
      Record<string, unknown>
    >;
    assert.deepEqual(
      all.map((b) => [b.id, b.state, b.liftedBy]),
      [[id, 'lifted', 'cli']],
    );
    assert.deepEqual(
      events.map((e) => [e.action, e.actor, e.target]),
      [
        ['block.added', 'cli', 'ip:203.0.113.7'],
        ['block.lifted', 'cli', 'ip:203.0.113.7'],
      ],
    );
    const again = await run(runBlocksCommand, ['lift', id], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /is not active \(lifted\); nothing to lift/);
  });

  it('lifts by key or principal, with 403 blocks and a reason', async () => {
    const env = freshEnv();
    const key = await run(
      runBlocksCommand,
      ['add', '--key', 'key_abc123', '--for', '30m', '--status', '403', '--reason', 'leaked in a repo'],
      env,
    );
    assert.equal(key.code, 0, key.stderr);
    assert.match(key.stdout, /\(403\)/);
    await run(runBlocksCommand, ['add', '--principal', 'user-7', '--for', '30m'], env);
    assert.equal((await run(runBlocksCommand, ['lift', '--key', 'key_abc123'], env)).code, 0);
    assert.equal((await run(runBlocksCommand, ['lift', '--principal', 'user-7'], env)).code, 0);
    const none = await run(runBlocksCommand, ['lift', '--ip', '192.0.2.1'], env);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no active block for --ip 192\.0\.2\.1/);
    assert.equal((await run(runBlocksCommand, ['lift', 'blk_0000000000000000'], env)).code, 1);
  });

  it('uses the store of --config FILE', async () => {
    const dir = join(root, `config-${++dirs}`);
    const env = freshEnv();
    const db = join(dir, 'elsewhere.db');
    const file = join(root, `portcullis-${dirs}.yaml`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      file,
      `store:\n  url: sqlite:${db}\nupstreams:\n  app:\n    url: http://127.0.0.1:3000\nroutes:\n  - path: /x\n    methods: [GET]\n    upstream: app\n    auth: none\n`,
    );
    assert.equal(
      (await run(runBlocksCommand, ['add', '--ip', '192.0.2.9', '--for', '1h', '--config', file], env)).code,
      0,
    );
    assert.match((await run(runBlocksCommand, ['list', '--config', file], env)).stdout, /192\.0\.2\.9/);
    assert.equal(
      (await run(runBlocksCommand, ['list'], env)).stdout,
      'No active blocks.',
      'not in the default store',
    );
    const broken = join(root, 'broken.yaml');
    writeFileSync(broken, 'routes: 3\n');
    const bad = await run(runBlocksCommand, ['list', '--config', broken], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /error\(s\) in the config/);
  });

  it('exits 2 with the usage on bad arguments', async () => {
    const env = freshEnv();
    for (const args of [
      [],
      ['add', '--ip', '192.0.2.1'],
      ['add', '--for', '1h'],
      ['add', '--ip', '192.0.2.1', '--key', 'key_x', '--for', '1h'],
      ['add', '--ip', 'not-an-ip', '--for', '1h'],
      ['add', '--key', 'pcl_secret', '--for', '1h'],
      ['add', '--ip', '192.0.2.1', '--for', '400d'],
      ['add', '--ip', '192.0.2.1', '--for', '1h', '--status', '500'],
      ['lift'],
      ['lift', 'blk_1', '--ip', '192.0.2.1'],
      ['unblock'],
    ]) {
      const r = await run(runBlocksCommand, args, env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /Usage:\n {2}portcullis blocks list/);
    }
  });
});
