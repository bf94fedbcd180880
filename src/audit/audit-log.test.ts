import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { SecurityEvent } from '../events/types.js';
import type { Db } from '../store/types.js';
import { type AuditLog, createAuditLog, recordAdminEvent } from './audit-log.js';
import type { RawAudit } from './schema.js';
import {
  adminEvent,
  backends,
  capturedLogger,
  type Fixture,
  requestEvent,
  slowDb,
  testSettings,
  testSigner,
  until,
} from './test-support/fixtures.js';
import { verifyAuditLog } from './verify.js';

const sqlite = backends[0]!;
const fixtures: Fixture[] = [];
after(async () => {
  for (const f of fixtures) await f.cleanup();
});

async function fresh(backend = sqlite): Promise<Fixture> {
  const f = await backend.fresh();
  fixtures.push(f);
  return f;
}

function open(
  db: Db,
  raw: Partial<RawAudit> = {},
  extra: { onDrop?: (n: number, total: number) => void } = {},
) {
  const signer = testSigner();
  const log = capturedLogger();
  const audit = createAuditLog({
    db,
    settings: testSettings(raw),
    signer,
    logger: log.logger,
    ...(extra.onDrop ? { onDrop: extra.onDrop } : {}),
  });
  return { audit, signer, log };
}

/** Emits `count` events in bursts of `burst`, yielding to the event loop between bursts, as request traffic does. */
async function emitUnderLoad(
  audit: AuditLog,
  count: number,
  burst: number,
  make: (i: number) => SecurityEvent,
) {
  for (let i = 0; i < count; i += burst) {
    for (let j = i; j < Math.min(i + burst, count); j++) audit.emit(make(j));
    await new Promise((r) => setImmediate(r));
  }
}

for (const backend of backends) {
  describe(`the audit log on ${backend.name}`, { skip: backend.skip }, () => {
    it('writes every event emitted under load once close() returns, in one verifiable chain', async () => {
      const f = await fresh(backend);
      const { audit, signer } = open(f.store, { batch_size: 500, checkpoint_every: 2000 });
      const count = 6000;
      await emitUnderLoad(audit, count, 200, (i) => requestEvent(i));
      await audit.close();
      assert.deepEqual(audit.stats, {
        queued: 0,
        written: count,
        dropped: 0,
        sampledOut: 0,
        writeFailures: 0,
        checkpoints: audit.stats.checkpoints,
        aggregated: 0,
        aggregates: 0,
        backPressure: 0,
        checkpointFileFailures: 0,
      });
      const ids = await f.store.query<{ request_id: string }>('select request_id from audit_events');
      const seen = new Set(ids.map((r) => r.request_id));
      for (let i = 0; i < count; i++)
        assert.ok(seen.has(`req_test_${i}`), `req_test_${i} has no audit event`);
      const result = await verifyAuditLog(audit.repository, { publicKeys: [signer.publicKey] });
      assert.deepEqual(result.problems, []);
      assert.equal(result.events, count);
      assert.equal(result.unsigned, 0, 'close() signs the head');
    });

    it('stores each field in its own column, and finds events by principal, actor and time', async () => {
      const f = await fresh(backend);
      const { audit } = open(f.store);
      for (let i = 0; i < 6; i++) audit.emit(requestEvent(i, { detail: `detail ${i}`, status: 200 + i }));
      audit.emit(adminEvent('key.created', { actor: 'key_user1' }));
      await audit.close();
      const [row] = await f.store.query<Record<string, unknown>>(
        'select * from audit_events where seq = $1',
        [5],
      );
      const record = (await audit.repository.get(5))!;
      assert.deepEqual(
        {
          time: row?.time,
          request_id: row?.request_id,
          trace_id: row?.trace_id,
          principal_id: row?.principal_id,
          tenant: row?.tenant,
          path: row?.path,
          detail: row?.detail,
          status: Number(row?.status),
          data: row?.data,
          prev_hash: row?.prev_hash,
          hash: row?.hash,
        },
        {
          time: '2030-01-01T00:00:04.000Z',
          request_id: 'req_test_4',
          trace_id: (4).toString(16).padStart(32, '0'),
          principal_id: 'key_user1',
          tenant: 'acme',
          path: '/orders/4',
          detail: 'detail 4',
          status: 204,
          data: '{"upstream_ms":0.75}',
          prev_hash: (await audit.repository.get(4))?.hash,
          hash: record.hash,
        },
      );
      const byPrincipal = await audit.repository.search({ principal: 'key_user1' }, 10);
      assert.deepEqual(
        byPrincipal.map((r) => r.request_id ?? r.action),
        ['req_test_1', 'req_test_4', 'key.created'],
      );
      const byTime = await audit.repository.search(
        { since: '2030-01-01T00:00:02.000Z', until: '2030-01-01T00:00:04.000Z' },
        10,
      );
      assert.deepEqual(
        byTime.map((r) => r.request_id),
        ['req_test_2', 'req_test_3'],
      );
    });

    it('keeps the time index on audit events and no longer maintains the unused per-principal one', async () => {
      const f = await fresh(backend);
      const indexes =
        f.store.dialect === 'sqlite'
          ? await f.store.query<{ name: string }>(
              "select name from sqlite_master where type = 'index' and tbl_name = 'audit_events' and name like 'audit_events_%'",
            )
          : await f.store.query<{ name: string }>(
              "select indexname as name from pg_indexes where schemaname = current_schema() and tablename = 'audit_events' and indexname like 'audit_events_%' and indexname <> 'audit_events_pkey'",
            );
      assert.deepEqual(
        indexes.map((i) => i.name),
        ['audit_events_time'],
      );
    });
  });
}

describe('the audit log', () => {
  it('under overflow drop, applies back-pressure at max_queue, and drops (counting, logging, reporting) only beyond twice it', async () => {
    const f = await fresh();
    const reported: number[] = [];
    let delay = 1000;
    const { audit, log } = open(
      slowDb(f.store, () => delay),
      { max_queue: 20, batch_size: 5, overflow: 'drop' },
      { onDrop: (n) => reported.push(n) },
    );
    for (let i = 0; i < 20; i++) audit.emit(requestEvent(i));
    assert.equal(audit.isFull(), true, 'priority events are never dropped: new requests are refused');
    await audit.ready();
    assert.match(audit.degraded() ?? '', /queue is full/);
    for (let i = 20; i < 60; i++) audit.emit(requestEvent(i));
    assert.equal(audit.stats.queued, 40, 'never more than twice max_queue');
    delay = 0;
    await until(() => !audit.isFull());
    await audit.close();
    const { written, dropped } = audit.stats;
    assert.equal(dropped, 20);
    assert.equal(written, 40);
    assert.equal(
      reported.reduce((a, b) => a + b, 0),
      dropped,
    );
    assert.ok(log.parsed().some((l) => l.msg === 'audit events dropped: the queue was full'));
    const [{ n }] = (await f.store.query<{ n: number }>('select count(*) as n from audit_events')) as [
      { n: number },
    ];
    assert.equal(Number(n), written);
  });

  it('under overflow block, reports full at max_queue and still keeps the events of requests in flight', async () => {
    const f = await fresh();
    let delay = 1000;
    const { audit } = open(
      slowDb(f.store, () => delay),
      { max_queue: 20, batch_size: 5, overflow: 'block' },
    );
    for (let i = 0; i < 19; i++) audit.emit(requestEvent(i));
    assert.equal(audit.isFull(), false);
    audit.emit(requestEvent(19));
    assert.equal(audit.isFull(), true);
    await assert.rejects(audit.ready(), /queue is full/);
    for (let i = 20; i < 30; i++) audit.emit(requestEvent(i));
    assert.equal(audit.stats.dropped, 0, 'events of requests already admitted are kept beyond max_queue');
    for (let i = 30; i < 60; i++) audit.emit(requestEvent(i));
    assert.equal(audit.stats.queued, 40, 'never more than twice max_queue');
    assert.equal(audit.stats.dropped, 20);
    delay = 0;
    await until(() => !audit.isFull());
    await audit.close();
    assert.equal(audit.stats.written, 40);
  });

  it('samples allowed requests at the rate, and always keeps denials, errors and shadow denials', async () => {
    const f = await fresh();
    const { audit } = open(f.store, { sample_success: 0, sample_routes: { 'orders-read': 0.25 } });
    const events: SecurityEvent[] = [];
    for (let i = 0; i < 400; i++) events.push(requestEvent(i));
    for (let i = 400; i < 450; i++)
      events.push(requestEvent(i, { decision: 'deny', status: 403, reason: 'authz.denied' }));
    for (let i = 450; i < 460; i++) events.push(requestEvent(i, { decision: 'error', status: 502 }));
    for (let i = 460; i < 470; i++) events.push(requestEvent(i, { shadowDenials: ['authorize'] }));
    for (let i = 470; i < 570; i++) events.push(requestEvent(i, { route: 'health' }));
    for (const e of events) audit.emit(e);
    await audit.close();
    const rows = await f.store.query<{ request_id: string; decision: string }>(
      'select request_id, decision from audit_events',
    );
    const kept = new Set(rows.map((r) => r.request_id));
    const always = events.filter(
      (e) => e.type === 'request' && (e.decision !== 'allow' || e.shadowDenials.length > 0),
    );
    for (const e of always) assert.ok(kept.has((e as { requestId: string }).requestId));
    const other = events.filter((e) => e.type === 'request' && e.route === 'health');
    for (const e of other) assert.ok(!kept.has((e as { requestId: string }).requestId));
    const sampled = rows.filter((r) => r.decision === 'allow').length - 10;
    assert.ok(sampled > 60 && sampled < 140, `${sampled} of 400 kept at a rate of 0.25`);
    assert.equal(audit.stats.sampledOut, 570 - rows.length);
  });

  it('keeps writing after a scheduled write finds the queue already flushed', async () => {
    const f = await fresh();
    const { audit } = open(f.store, { batch_size: 5 });
    for (let i = 0; i < 5; i++) audit.emit(requestEvent(i));
    await audit.flush();
    await new Promise((r) => setImmediate(r));
    for (let i = 5; i < 8; i++) audit.emit(requestEvent(i));
    await until(() => audit.stats.written === 8, 3000);
    await audit.close();
  });

  it('signs a checkpoint every checkpoint_every events, and the head at close', async () => {
    const f = await fresh();
    const { audit, signer } = open(f.store, { checkpoint_every: 100, batch_size: 50 });
    await emitUnderLoad(audit, 250, 50, (i) => requestEvent(i));
    await audit.close();
    const checkpoints = await audit.repository.checkpoints();
    assert.ok(checkpoints.length >= 3, `${checkpoints.length} checkpoints`);
    assert.equal(checkpoints.at(-1)!.seq, 250);
    const result = await verifyAuditLog(audit.repository, { publicKeys: [signer.publicKey] });
    assert.deepEqual(result.problems, []);
    assert.equal(result.checkpointsVerified, checkpoints.length);
  });

  it('rejects flush() and readiness while the store refuses writes, keeps the events, and writes them once it recovers', async () => {
    const f = await fresh();
    let failing = true;
    const flaky: Db = {
      dialect: f.store.dialect,
      query: (sql, params) => f.store.query(sql, params),
      execute: (sql, params) => f.store.execute(sql, params),
      transaction: (fn) =>
        failing ? Promise.reject(new Error('database is locked')) : f.store.transaction(fn),
    };
    const { audit, log } = open(flaky);
    for (let i = 0; i < 10; i++) audit.emit(requestEvent(i));
    await assert.rejects(audit.flush(), /database is locked/);
    // Not a readiness failure (the queue absorbs it, and the store is shared by every instance): a note.
    await audit.ready();
    assert.match(audit.degraded() ?? '', /refuses writes/);
    assert.equal(audit.stats.queued, 10);
    assert.ok(
      log.parsed().some((l) => l.msg === 'audit write failed; the batch stays queued and is retried'),
    );
    failing = false;
    await audit.close();
    assert.equal(audit.stats.written, 10);
    assert.equal(audit.stats.dropped, 0);
    await audit.ready();
  });

  it('gives up at shutdown_timeout on a store that never answers, counting what is lost', async () => {
    const f = await fresh();
    const stuck: Db = {
      dialect: f.store.dialect,
      query: (sql, params) => f.store.query(sql, params),
      execute: (sql, params) => f.store.execute(sql, params),
      transaction: () => new Promise(() => {}),
    };
    const { audit, log } = open(stuck, { shutdown_timeout: '100ms' });
    for (let i = 0; i < 5; i++) audit.emit(requestEvent(i));
    await audit.close();
    assert.equal(audit.stats.dropped, 5);
    assert.ok(
      log
        .parsed()
        .some((l) => l.msg === 'audit events could not be written before shutdown_timeout and are lost'),
    );
  });

  it('counts an event emitted after close or malformed as dropped, and never throws from emit', async () => {
    const f = await fresh();
    const { audit } = open(f.store);
    audit.emit(
      requestEvent(1, {
        latencyMs: Number.NaN,
        detail: 'lone \ud800 surrogate and \0 nul',
        path: '/x\udc00',
      }),
    );
    audit.emit(adminEvent('config.reloaded', { detail: undefined, target: undefined }));
    audit.emit({ type: 'request' } as unknown as SecurityEvent);
    await audit.close();
    assert.equal(audit.stats.written, 2);
    assert.equal(audit.stats.dropped, 1, 'the malformed event is dropped, not retried forever');
    audit.emit(requestEvent(2));
    assert.equal(audit.stats.dropped, 2);
    const result = await verifyAuditLog(audit.repository, { publicKeys: [] });
    assert.deepEqual(
      result.problems.filter((p) => p.kind !== 'checkpoint'),
      [],
    );
  });

  it('streams every stored event and checkpoint as JSON lines to a file only its owner can read', async () => {
    const f = await fresh();
    const file = join(f.dataDir, 'audit.jsonl');
    const { audit } = open(f.store, { jsonl: { path: file }, checkpoint_every: 50 });
    await emitUnderLoad(audit, 120, 30, (i) => requestEvent(i));
    audit.emit(adminEvent('key.created'));
    await audit.close();
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const lines = readFileSync(file, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const events = lines.filter((l) => l.type === 'request' || l.type === 'admin');
    const checkpoints = lines.filter((l) => l.type === 'checkpoint');
    assert.equal(events.length, 121);
    assert.ok(checkpoints.length >= 1);
    const stored = await f.store.query<{ seq: number; hash: string }>(
      'select seq, hash from audit_events order by seq',
    );
    assert.deepEqual(
      events.map((e) => [e.seq, e.hash]),
      stored.map((r) => [Number(r.seq), r.hash]),
    );
    assert.deepEqual(events.at(-1), { ...(await audit.repository.get(121)) });
  });

  it('writes no token, key or password anywhere: not in the database, the JSON lines or the log, not even hashed', async () => {
    const f = await fresh();
    const file = join(f.dataDir, 'audit.jsonl');
    const jwt =
      'eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSIsInNjb3BlIjoib3JkZXJzOnJlYWQifQ.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtbG9uZy1lbm91Z2g';
    const apiKey = 'pcl_0123456789ABCDEF_Abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGxyz123';
    const secrets = [
      jwt,
      apiKey,
      'hunter2-Correct-Horse',
      'Zm9vOmJhci1zZWNyZXQtcGFzc3dvcmQ=',
      'opaqueAccessToken0123456789abcdefGHIJ',
      's3cr3t-client-Secret',
      'db-Pa55word-xyz',
      '123-45-6789',
    ];
    const { audit, log } = open(f.store, { jsonl: { path: file }, redact_fields: ['ssn'] });
    audit.emit(
      requestEvent(1, {
        decision: 'deny',
        status: 401,
        reason: 'auth.invalid_token',
        detail: `token rejected: Bearer ${jwt} (password=hunter2-Correct-Horse)`,
        path: `/reset/${secrets[4]}`,
      }),
    );
    audit.emit(
      requestEvent(2, { decision: 'deny', status: 401, detail: `unknown key ${apiKey}`, path: `/t/${jwt}` }),
    );
    audit.emit(
      requestEvent(3, {
        decision: 'error',
        status: 502,
        detail: `upstream said: {"client_secret":"s3cr3t-client-Secret","ssn":"123-45-6789"} via postgres://app:db-Pa55word-xyz@db/x, Authorization: Basic ${secrets[3]}`,
      }),
    );
    audit.emit(
      adminEvent('client.created', {
        target: 'cli_0123',
        detail: { secret: 's3cr3t-client-Secret', note: `issued ${apiKey}`, scopes: 'orders:read' },
      }),
    );
    await audit.close();
    const written: [string, Buffer][] = [
      ['jsonl', readFileSync(file)],
      ['log', Buffer.from(log.lines.join('\n'))],
    ];
    for (const name of readdirSync(f.dataDir)) {
      if (name.startsWith('portcullis.db')) written.push([name, readFileSync(join(f.dataDir, name))]);
    }
    for (const secret of secrets) {
      const forms = [
        secret,
        createHash('sha256').update(secret).digest('hex'),
        Buffer.from(secret).toString('base64'),
      ];
      for (const [where, bytes] of written) {
        for (const form of forms)
          assert.ok(!bytes.includes(form), `${where} contains ${secret} (as ${form})`);
      }
    }
    const rows = await audit.repository.search({}, 10);
    assert.equal(rows.length, 4);
    assert.match(rows[0]!.detail!, /\[redacted\]/);
    assert.equal(rows[0]!.path, '/reset/[redacted]');
    assert.match(rows[3]!.data!, /"scopes":"orders:read"/);
  });

  it('records an administrative act from a short-lived process, signed, in the same chain', async () => {
    const f = await fresh();
    const { audit, signer } = open(f.store);
    audit.emit(requestEvent(1));
    await audit.close();
    await recordAdminEvent(f.store, adminEvent('key.revoked', { actor: 'cli' }), {
      settings: testSettings({ jsonl: { path: '-' } }),
      signer,
    });
    const result = await verifyAuditLog(audit.repository, { publicKeys: [signer.publicKey] });
    assert.deepEqual(result.problems, []);
    assert.equal(result.events, 2);
    assert.equal(result.lastSignedSeq, 2);
    const [last] = await audit.repository.search({ type: 'admin' }, 1);
    assert.equal(last?.action, 'key.revoked');
  });
});
