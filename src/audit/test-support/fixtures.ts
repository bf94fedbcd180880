/** Test fixtures of the audit log: fresh stores on each backend, events, keys, a captured logger. */
import { generateKeyPairSync } from 'node:crypto';
import { Writable } from 'node:stream';
import type { AdminEvent, RequestEvent } from '../../events/types.js';
import { createLogger, type Logger } from '../../log.js';
import { auditMigration } from '../../store/migrations/005-audit.js';
import { migrations } from '../../store/migrations/index.js';
import type { Db, Migration } from '../../store/types.js';
import { storeBackends } from '../../test-support/stores.js';
import { compileAudit, type RawAudit } from '../schema.js';
import { type CheckpointSigner, createCheckpointSigner } from '../signing.js';

/** Every migration this build ships, with the audit one (registered by the integrator later). */
export const allMigrations: Migration[] = migrations.some((m) => m.version === auditMigration.version)
  ? migrations
  : [...migrations, auditMigration].sort((a, b) => a.version - b.version);

export type { StoreBackend as Backend, StoreFixture as Fixture } from '../../test-support/stores.js';

/** SQLite in a temp folder, and the test PostgreSQL in a private schema (skipped when absent, unless CI=true). */
export const backends = storeBackends(allMigrations, 'portcullis-audit-');

/** A fresh Ed25519 signer. */
export function testSigner(): CheckpointSigner {
  return createCheckpointSigner(generateKeyPairSync('ed25519').privateKey);
}

const BASE_TIME = Date.parse('2030-01-01T00:00:00.000Z');

/** A request event, the i-th of a run (distinct id, time and trace id). */
export function requestEvent(i: number, overrides: Partial<RequestEvent> = {}): RequestEvent {
  return {
    type: 'request',
    time: new Date(BASE_TIME + i * 1000).toISOString(),
    requestId: `req_test_${i}`,
    traceId: i.toString(16).padStart(32, '0'),
    clientIp: '203.0.113.7',
    method: 'GET',
    path: `/orders/${i}`,
    route: 'orders-read',
    principal: { kind: 'api_key', id: `key_user${i % 3}`, tenant: 'acme' },
    decision: 'allow',
    reason: 'ok',
    detail: undefined,
    status: 200,
    latencyMs: 1.25 + i / 1000,
    upstreamMs: 0.75,
    stage: undefined,
    shadowDenials: [],
    ...overrides,
  };
}

/** An administrative event. */
export function adminEvent(action: string, overrides: Partial<AdminEvent> = {}): AdminEvent {
  return {
    type: 'admin',
    time: new Date(BASE_TIME).toISOString(),
    action,
    actor: 'cli',
    target: 'key_0123456789abcdef',
    detail: { name: 'reporting' },
    ...overrides,
  };
}

/** Audit settings for tests: defaults with quick timers, and the overrides. */
export function testSettings(raw: Partial<RawAudit> = {}) {
  return compileAudit({ flush_interval: '20ms', checkpoint_interval: '1h', ...raw });
}

/** A pino logger whose lines are kept, raw and parsed. */
export function capturedLogger(): { logger: Logger; lines: string[]; parsed(): Record<string, unknown>[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(line);
      cb();
    },
  });
  return {
    logger: createLogger({ level: 'info' }, sink),
    lines,
    parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** A Db that waits `delayMs()` before each transaction: a slow store. */
export function slowDb(db: Db, delayMs: () => number): Db {
  const wait = () => new Promise((r) => setTimeout(r, delayMs()));
  return {
    dialect: db.dialect,
    query: (sql, params) => db.query(sql, params),
    execute: (sql, params) => db.execute(sql, params),
    async transaction(fn) {
      await wait();
      return db.transaction(fn);
    },
  };
}

/** Polls `check` every 10 ms until it is true, for at most `ms`. */
export async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
