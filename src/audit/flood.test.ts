/**
 * An audit log an attacker cannot flush (issue 18, item 1), through a real
 * gateway on SQLite and PostgreSQL: a flood of unauthenticated and unrouted
 * requests from a handful of sources, with a legitimate client's requests
 * interleaved, against a small queue. Every allowed request has its event;
 * the flood is accounted for exactly (events one by one plus the counts of
 * the aggregate events); the store grows by O(sources), and the growth per
 * million flood requests is printed for the record.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { loadConfig } from '../config/load.js';
import { type Running, startGateway } from '../runtime.js';
import { migrations } from '../store/index.js';
import type { Store } from '../store/types.js';
import { startUpstream, type TestUpstream } from '../test-support/gateway.js';
import { captureLogger } from '../test-support/log.js';
import { type StoreFixture, storeBackends } from '../test-support/stores.js';
import { AGGREGATE_ACTION } from './audit-log.js';

const FLOOD = Number(process.env.FLOOD_REQUESTS ?? 12_000);
const LEGIT = 600;
const SOURCES = 16;
const CONCURRENCY = 48;

async function storeBytes(store: Store): Promise<number> {
  if (store.dialect === 'postgres') {
    const [row] = await store.query<{ n: unknown }>("select pg_total_relation_size('audit_events') as n");
    return Number(row?.n ?? 0);
  }
  const [pages] = await store.query<{ page_count: number }>('pragma page_count');
  const [size] = await store.query<{ page_size: number }>('pragma page_size');
  return Number(pages?.page_count ?? 0) * Number(size?.page_size ?? 0);
}

function get(agent: Agent, url: string, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

for (const backend of storeBackends(migrations, 'portcullis-flood-')) {
  describe(`an audit flood on ${backend.name}`, { skip: backend.skip }, () => {
    let upstream: TestUpstream;
    let fixture: StoreFixture;
    let running: Running;
    let dir: string;

    before(async () => {
      upstream = await startUpstream();
      fixture = await backend.fresh();
      dir = mkdtempSync(join(tmpdir(), 'portcullis-flood-cfg-'));
      const file = join(dir, 'portcullis.yaml');
      writeFileSync(
        file,
        stringify({
          listen: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.1'] },
          admin: { enabled: false },
          log: { level: 'warn' },
          audit: { max_queue: 2000, batch_size: 500, flush_interval: '50ms', aggregate: { interval: '1s' } },
          auth: { api_keys: {}, brute_force: { max_failures: 1_000_000, max_failures_per_ip: 1_000_000 } },
          anomaly: { enabled: false },
          upstreams: { app: { url: upstream.url } },
          routes: [
            { path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' },
            { path: '/public', methods: ['GET'], upstream: 'app', auth: 'none' },
          ],
        }),
      );
      const { config } = await loadConfig(file, {
        env: { ...process.env, PORTCULLIS_DATA: fixture.dataDir },
      });
      running = await startGateway(config, { logger: captureLogger('warn').logger, store: fixture.store });
    });

    after(async () => {
      await running?.close(1000);
      await fixture?.cleanup();
      await upstream?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('keeps every allowed request, accounts for the whole flood, and grows by O(sources)', async (t) => {
      const url = `http://127.0.0.1:${running.port}`;
      await running.audit.flush();
      const before = await storeBytes(fixture.store);
      const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
      const legit = new Map<string, number>();
      let sent = 0;
      let legitSent = 0;
      const started = Date.now();
      const worker = async (w: number) => {
        for (let i = sent++; i < FLOOD; i = sent++) {
          // One legitimate request every FLOOD / LEGIT flood requests.
          if (i % Math.floor(FLOOD / LEGIT) === 0 && legitSent < LEGIT) {
            const id = `legit-${(legitSent++).toString().padStart(6, '0')}`;
            legit.set(
              id,
              await get(agent, url, '/public', { 'x-request-id': id, 'x-forwarded-for': '198.51.100.1' }),
            );
          }
          const source = `203.0.113.${(i + w) % SOURCES}`;
          const path = i % 3 === 0 ? `/nowhere/${i}` : '/orders';
          await get(agent, url, path, {
            'x-forwarded-for': source,
            'x-request-id': `flood-${i.toString().padStart(8, '0')}`,
          });
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)));
      const floodMs = Date.now() - started;
      agent.destroy();
      const stats = running.audit.stats;
      const drainStarted = Date.now();
      await running.close(2000);
      const drainMs = Date.now() - drainStarted;

      const allowed = [...legit].filter(([, status]) => status === 200).map(([id]) => id);
      const rows = await fixture.store.query<{ request_id: string }>(
        "select request_id from audit_events where type = 'request' and request_id like 'legit-%'",
      );
      const audited = new Set(rows.map((r) => r.request_id));
      const lost = allowed.filter((id) => !audited.has(id));
      assert.deepEqual(lost, [], `${lost.length} of ${allowed.length} allowed requests have no audit event`);
      assert.ok(
        allowed.length > LEGIT / 2,
        `${allowed.length} of ${legit.size} legitimate requests were allowed`,
      );

      const [one] = await fixture.store.query<{ n: unknown }>(
        "select count(*) as n from audit_events where type = 'request' and client_ip like '203.0.113.%'",
      );
      const aggregates = await fixture.store.query<{ target: string; data: string }>(
        'select target, data from audit_events where action = $1',
        [AGGREGATE_ACTION],
      );
      const counted = aggregates.reduce((sum, a) => sum + Number(JSON.parse(a.data).count), 0);
      const individually = Number(one?.n ?? 0);
      assert.equal(individually + counted, FLOOD, 'every flood request is an event or counted in one');
      assert.ok(counted > 0, 'the flood was aggregated');
      const sources = new Set(aggregates.map((a) => a.target));
      assert.ok(sources.size <= SOURCES, `aggregates name ${sources.size} sources`);
      assert.equal(running.audit.stats.dropped, 0);

      const grown = (await storeBytes(fixture.store)) - before;
      const perMillion = (grown / FLOOD) * 1_000_000;
      t.diagnostic(
        `${backend.name}: ${FLOOD} flood requests in ${floodMs} ms (${Math.round((FLOOD / floodMs) * 1000)}/s), ${allowed.length}/${legit.size} legitimate allowed, 0 lost; ` +
          `${individually} flood events one by one, ${aggregates.length} aggregate events counting ${counted}; ` +
          `back-pressure 503s ${stats.backPressure}; drain at close ${drainMs} ms; store +${Math.round(grown / 1024)} KiB = ${(perMillion / 1024 / 1024).toFixed(1)} MiB per million flood requests`,
      );
    });
  });
}
