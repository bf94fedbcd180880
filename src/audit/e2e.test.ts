/**
 * The audit log behind a real gateway: every request has its event after a
 * graceful shutdown, and no credential sent to the gateway is written
 * anywhere. The audit log subscribes to the running gateway's event bus here,
 * as the runtime does once it creates the audit log itself.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createApiKeyStore } from '../keys/store.js';
import { openSqliteStore, type Store } from '../store/index.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { type AuditLog, createAuditLog } from './audit-log.js';
import type { CheckpointSigner } from './signing.js';
import { allMigrations, capturedLogger, testSettings, testSigner } from './test-support/fixtures.js';
import { verifyAuditLog } from './verify.js';

const REQUESTS = 240;
const CONCURRENCY = 12;

describe('the audit log behind a running gateway', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let store: Store;
  let audit: AuditLog;
  let signer: CheckpointSigner;
  let auditLog: ReturnType<typeof capturedLogger>;
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-audit-e2e-'));
  const jsonl = join(dir, 'audit.jsonl');
  const secrets: string[] = [];
  const sent = new Map<string, { traceId: string | undefined }>();

  before(async () => {
    upstream = await startUpstream();
    gw = await startTestGateway({
      auth: { api_keys: {}, brute_force: { max_failures: 100_000 } },
      upstreams: { app: { url: upstream.url } },
      routes: [
        {
          name: 'orders',
          path: '/orders',
          methods: ['GET'],
          upstream: 'app',
          authorize: 'any-authenticated',
        },
        { name: 'public', path: '/public', methods: ['GET', 'POST'], upstream: 'app', auth: 'none' },
      ],
    });
    const pepper = readFileSync(join(gw.dataDir, 'secrets', 'api-key-pepper'), 'utf8').trim();
    const keys = createApiKeyStore(gw.running.store, { pepper, logger: { warn() {} } });
    const { key } = await keys.create({ name: 'e2e', scopes: ['orders:read'] });
    store = openSqliteStore(join(dir, 'audit.db'), allMigrations);
    await store.migrate();
    signer = testSigner();
    auditLog = capturedLogger();
    audit = createAuditLog({
      db: store,
      // Every request one by one: no per-source aggregation at this test's rate.
      settings: testSettings({
        jsonl: { path: jsonl },
        batch_size: 50,
        aggregate: { per_source_rate: '100000/s', interval: '10s', max_sources: 10_000 },
      }),
      signer,
      logger: auditLog.logger,
    });
    gw.running.events.subscribe(audit);

    const jwt = `eyJhbGciOiJIUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: 'mallory', n: randomBytes(8).toString('hex') })).toString('base64url')}.${randomBytes(32).toString('base64url')}`;
    const password = `Pw-${randomBytes(9).toString('base64url')}`;
    const wrongKey = key.slice(0, 40) + (key[40] === 'a' ? 'b' : 'a') + key.slice(41);
    const basic = Buffer.from(`alice:${password}`).toString('base64');
    secrets.push(key, wrongKey, jwt, password, basic, key.slice(key.lastIndexOf('_') + 1, -6));

    const variants: ((
      id: string,
    ) => [string, Record<string, string>, { method?: string; body?: string }?])[] = [
      () => ['/orders', { 'x-api-key': key }],
      () => ['/orders', { 'x-api-key': wrongKey }],
      () => ['/orders', { authorization: `Bearer ${jwt}` }],
      () => ['/orders', { authorization: `Basic ${basic}` }],
      () => [`/public?password=${encodeURIComponent(password)}&api_key=${encodeURIComponent(key)}`, {}],
      () => [
        '/public',
        { 'content-type': 'application/json' },
        { method: 'POST', body: JSON.stringify({ password, token: jwt }) },
      ],
      () => [`/nowhere/${jwt}`, {}],
    ];
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < REQUESTS; i = next++) {
        const id = `e2e-${i.toString().padStart(6, '0')}`;
        const [path, headers, extra] = variants[i % variants.length]!(id);
        const traceId = i % 2 === 0 ? randomBytes(16).toString('hex') : undefined;
        const all: Record<string, string> = { ...headers, 'x-request-id': id };
        if (traceId) all.traceparent = `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
        sent.set(id, { traceId });
        await send(gw.url, path, { headers: all, ...extra });
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    // A graceful shutdown: the gateway drains, then the audit log flushes.
    await gw.running.close(2000);
    await audit.close();
  });

  after(async () => {
    await store?.close();
    await gw?.close();
    await upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('has an audit event for every request, each once, in a chain that verifies', async () => {
    const rows = await store.query<{ request_id: string; trace_id: string }>(
      `select request_id, trace_id from audit_events where type = 'request'`,
    );
    const byId = new Map(rows.map((r) => [r.request_id, r]));
    assert.equal(rows.length, byId.size, 'no request is audited twice');
    for (const id of sent.keys()) assert.ok(byId.has(id), `request ${id} has no audit event`);
    assert.equal(audit.stats.dropped, 0);
    const result = await verifyAuditLog(audit.repository, { publicKeys: [signer.publicKey] });
    assert.deepEqual(result.problems, []);
    assert.equal(result.unsigned, 0);
  });

  it("records the caller's W3C trace id, the one the upstream received", async () => {
    const rows = await store.query<{ request_id: string; trace_id: string }>(
      'select request_id, trace_id from audit_events where request_id is not null',
    );
    const upstreamTraces = new Set(
      upstream.requests.map((r) => String(r.headers.traceparent ?? '').split('-')[1]),
    );
    for (const row of rows) {
      const { traceId } = sent.get(row.request_id) ?? {};
      assert.match(row.trace_id, /^[0-9a-f]{32}$/);
      if (traceId) assert.equal(row.trace_id, traceId);
    }
    const proxied = rows.filter((r) => upstreamTraces.has(r.trace_id));
    assert.ok(proxied.length > 0, 'some requests reached the upstream with the audited trace id');
  });

  it('writes no credential it was sent: not to the audit store, the JSON lines or any log line', async () => {
    const scrubbed = await store.query<{ path: string }>(
      `select path from audit_events where path like '/nowhere/%'`,
    );
    assert.ok(scrubbed.length > 0);
    for (const r of scrubbed) assert.equal(r.path, '/nowhere/[redacted]', 'a JWT in the path is scrubbed');
    const written: [string, Buffer][] = [
      ['audit JSON lines', readFileSync(jsonl)],
      ['gateway log', Buffer.from(gw.logs.map((l) => JSON.stringify(l)).join('\n'))],
      ['audit log lines', Buffer.from(auditLog.lines.join('\n'))],
    ];
    for (const name of readdirSync(dir)) {
      if (name.startsWith('audit.db')) written.push([name, readFileSync(join(dir, name))]);
    }
    for (const secret of secrets) {
      const forms = [
        secret,
        encodeURIComponent(secret),
        createHash('sha256').update(secret).digest('hex'),
        createHash('sha256').update(secret).digest('base64url'),
      ];
      for (const [where, bytes] of written) {
        for (const form of forms)
          assert.ok(!bytes.includes(form), `the ${where} contain a secret (${form.slice(0, 12)}…)`);
      }
    }
  });
});
