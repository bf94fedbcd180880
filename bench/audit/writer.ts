/**
 * Audit log micro-benchmark: the cost of `emit` on the request path, the
 * writer's throughput, and the highest sustained rate with no dropped event,
 * on SQLite (a file in a temp folder) and on PostgreSQL when reachable.
 * Prints figures; asserts nothing.
 *
 *   node --import tsx bench/audit/writer.ts
 *   BENCH_AUDIT_SECONDS=10 BENCH_AUDIT_BACKENDS=sqlite node --import tsx bench/audit/writer.ts
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { createAuditLog } from '../../src/audit/audit-log.js';
import { compileAudit } from '../../src/audit/schema.js';
import { type CheckpointSigner, createCheckpointSigner } from '../../src/audit/signing.js';
import type { RequestEvent } from '../../src/events/types.js';
import { createLogger } from '../../src/log.js';
import { migrations, openPostgresStore, openSqliteStore, type Store } from '../../src/store/index.js';
import { auditMigration } from '../../src/store/migrations/005-audit.js';

const SECONDS = Number(process.env.BENCH_AUDIT_SECONDS ?? 5);
const DRAIN_EVENTS = Number(process.env.BENCH_AUDIT_EVENTS ?? 100_000);
const BACKENDS = (process.env.BENCH_AUDIT_BACKENDS ?? 'sqlite,postgres').split(',');
const PG_URL = process.env.PORTCULLIS_TEST_PG_URL || 'postgres://postgres@127.0.0.1:5432/test';

const all = migrations.some((m) => m.version === auditMigration.version)
  ? migrations
  : [...migrations, auditMigration].sort((a, b) => a.version - b.version);
const logger = createLogger(
  { level: 'warn' },
  new Writable({
    write(_c, _e, cb) {
      cb();
    },
  }),
);
const signer: CheckpointSigner = createCheckpointSigner(generateKeyPairSync('ed25519').privateKey);
const settings = compileAudit({});

function event(i: number): RequestEvent {
  return {
    type: 'request',
    time: new Date().toISOString(),
    requestId: `req_${i.toString(16).padStart(12, '0')}-bench`,
    traceId: randomBytes(16).toString('hex'),
    clientIp: '203.0.113.7',
    method: 'GET',
    path: `/orders/${i % 1000}`,
    route: 'orders-read',
    principal: { kind: 'api_key', id: `key_${(i % 50).toString().padStart(16, '0')}`, tenant: 'acme' },
    decision: i % 10 === 0 ? 'deny' : 'allow',
    reason: i % 10 === 0 ? 'authz.denied' : 'ok',
    detail: i % 10 === 0 ? 'rule orders-owner: principal does not own the object' : undefined,
    status: i % 10 === 0 ? 403 : 200,
    latencyMs: 1.234,
    upstreamMs: 0.8,
    stage: i % 10 === 0 ? 'authorize' : undefined,
    shadowDenials: [],
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Backend {
  name: string;
  open(): Promise<{ store: Store; cleanup(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'sqlite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-audit-'));
      const store = openSqliteStore(join(dir, 'portcullis.db'), all);
      await store.migrate();
      return {
        store,
        async cleanup() {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'postgres',
    async open() {
      const schema = `pc_bench_${randomBytes(4).toString('hex')}`;
      const store = openPostgresStore(PG_URL, all, { schema, poolSize: 4 });
      await store.migrate();
      return {
        store,
        async cleanup() {
          await store.close();
          const client = new pg.Client({ connectionString: PG_URL });
          await client.connect();
          await client.query(`drop schema if exists ${schema} cascade`);
          await client.end();
        },
      };
    },
  },
];

/** ns per emit: a tight loop of emits into a queue large enough to hold them (no writer turn in between). */
async function emitCost(store: Store, allowRate: number): Promise<number> {
  const n = 50_000;
  const audit = createAuditLog({
    db: store,
    settings: { ...settings, maxQueue: n * 2, batchSize: n * 2, sampleSuccess: allowRate },
    signer,
    logger,
  });
  const events = Array.from({ length: n }, (_, i) => event(i));
  for (let i = 0; i < 5000; i++) audit.emit(events[i]!); // warm-up
  const start = process.hrtime.bigint();
  for (let i = 5000; i < n; i++) audit.emit(events[i]!);
  const ns = Number(process.hrtime.bigint() - start) / (n - 5000);
  await audit.close();
  return ns;
}

/** Events/s the writer drains from a full queue, and its CPU time per event. */
async function drainRate(store: Store): Promise<{ perSecond: number; cpuUsPerEvent: number }> {
  const audit = createAuditLog({
    db: store,
    settings: { ...settings, maxQueue: DRAIN_EVENTS },
    signer,
    logger,
  });
  for (let i = 0; i < DRAIN_EVENTS; i++) audit.emit(event(i));
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  await audit.flush();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  await audit.close();
  return { perSecond: DRAIN_EVENTS / seconds, cpuUsPerEvent: (used.user + used.system) / DRAIN_EVENTS };
}

/** Emits `rate` events/s for SECONDS seconds in 10 ms ticks; reports drops and the largest queue seen. */
async function sustain(
  store: Store,
  rate: number,
): Promise<{ dropped: number; peak: number; written: number }> {
  const audit = createAuditLog({ db: store, settings, signer, logger });
  const perTick = rate / 100;
  let owed = 0;
  let i = 0;
  let peak = 0;
  const start = Date.now();
  while (Date.now() - start < SECONDS * 1000) {
    const due = ((Date.now() - start) / 10) * perTick;
    for (; owed < due; owed++) audit.emit(event(i++));
    peak = Math.max(peak, audit.stats.queued);
    await sleep(10);
  }
  await audit.close();
  if (process.env.BENCH_AUDIT_DEBUG) process.stderr.write(`${JSON.stringify(audit.stats)}\n`);
  return { dropped: audit.stats.dropped, peak, written: audit.stats.written };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function run(backend: Backend): Promise<void> {
  let opened: Awaited<ReturnType<Backend['open']>>;
  try {
    opened = await backend.open();
  } catch (err) {
    process.stderr.write(`${backend.name}: skipped (${(err as Error).message})\n`);
    return;
  }
  const { store } = opened;
  try {
    const emitNs = await emitCost(store, 1);
    const sampledNs = await emitCost(store, 0);
    const drain = await drainRate(store);
    process.stdout.write(
      `${backend.name}: emit ${emitNs.toFixed(0)} ns/event (sampled out: ${sampledNs.toFixed(0)} ns); ` +
        `writer drains ${fmt(drain.perSecond)} events/s using ${drain.cpuUsPerEvent.toFixed(1)} µs CPU/event ` +
        `(batch ${settings.batchSize}, queue ${fmt(DRAIN_EVENTS)})\n`,
    );
    // Step up from half the drain rate until a run drops events or ends with the queue over 10 batches.
    let best = 0;
    for (
      let rate = Math.max(1000, Math.floor(drain.perSecond / 2 / 1000) * 1000), steps = 0;
      steps < 8;
      steps++
    ) {
      const r = await sustain(store, rate);
      const ok = r.dropped === 0 && r.peak <= settings.batchSize * 10;
      process.stdout.write(
        `${backend.name}:   ${fmt(rate)} events/s for ${SECONDS}s: dropped ${r.dropped}, peak queue ${fmt(r.peak)}${ok ? '' : ' (falling behind)'}\n`,
      );
      if (!ok) break;
      best = rate;
      rate = Math.round(rate * 1.25);
    }
    process.stdout.write(
      `${backend.name}: highest sustained rate with no drop and a bounded queue: ${fmt(best)} events/s\n`,
    );
  } finally {
    await opened.cleanup();
  }
}

process.stdout.write(
  `node ${process.version}, flush_interval ${settings.flushIntervalMs} ms, batch_size ${settings.batchSize}, max_queue ${fmt(settings.maxQueue)}\n`,
);
for (const backend of backends) if (BACKENDS.includes(backend.name)) await run(backend);
