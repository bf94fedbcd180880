import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openPostgresStore } from '../store/postgres.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/types.js';
import { captureLogger } from '../test-support/log.js';
import { postgresSkipMessage, requirePostgres, type TestPostgres } from '../test-support/postgres.js';
import { QuotaCounter, quotaPeriod } from './quota.js';
import { migrationsWithQuotas } from './test-support/config.js';
import type { QuotaSettings } from './types.js';

const withQuotas = migrationsWithQuotas;

const daily: QuotaSettings = {
  type: 'quota',
  name: 'daily',
  key: [],
  mode: 'enforce',
  limit: 100,
  period: 'day',
};
const NOON = Date.UTC(2025, 2, 14, 12, 0, 0);

async function take(counter: QuotaCounter, q: QuotaSettings, subject: string, cost = 1): Promise<boolean> {
  const entry = await counter.entry(q, subject);
  if (counter.used(entry) + cost > q.limit) return false;
  counter.add(entry, cost);
  return true;
}

describe('quota periods', () => {
  it('are UTC calendar days and months', () => {
    assert.deepEqual(quotaPeriod('day', NOON), { id: '2025-03-14', endMs: Date.UTC(2025, 2, 15) });
    assert.deepEqual(quotaPeriod('month', NOON), { id: '2025-03', endMs: Date.UTC(2025, 3, 1) });
    assert.deepEqual(quotaPeriod('month', Date.UTC(2025, 11, 31, 23, 59)), {
      id: '2025-12',
      endMs: Date.UTC(2026, 0, 1),
    });
  });
});

const pg = await requirePostgres();
const backends: {
  name: string;
  skip: string | false;
  open(): Promise<{ store: Store; reopen(): Promise<Store>; drop(): Promise<void> }>;
}[] = [
  {
    name: 'SQLite',
    skip: false,
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'pc-quota-'));
      const file = join(dir, 'portcullis.db');
      const store = openSqliteStore(file, withQuotas);
      await store.migrate();
      return {
        store,
        reopen: async () => openSqliteStore(file, withQuotas),
        drop: async () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  },
  {
    name: 'PostgreSQL',
    skip: pg ? false : postgresSkipMessage(),
    async open() {
      const target = pg as TestPostgres;
      const make = () => openPostgresStore(target.url, withQuotas, { schema: target.schema });
      const store = make();
      await store.migrate();
      return { store, reopen: async () => make(), drop: () => target.drop() };
    },
  },
];

for (const backend of backends) {
  describe(`quotas in the ${backend.name} store`, { skip: backend.skip }, () => {
    let env: Awaited<ReturnType<(typeof backends)[number]['open']>>;
    const stores: Store[] = [];
    before(async () => {
      env = await backend.open();
      stores.push(env.store);
    });
    after(async () => {
      for (const s of stores) await s.close();
      await env.drop();
    });
    const counter = (store: Store, now = () => NOON) =>
      new QuotaCounter(store, { maxKeys: 1000, flushMs: 60_000, logger: captureLogger().logger, now });

    it('survives a restart: usage written before it still counts after it', async () => {
      const first = counter(env.store);
      for (let i = 0; i < 100; i++) assert.equal(await take(first, daily, 'key_restart'), true);
      assert.equal(await take(first, daily, 'key_restart'), false);
      await first.close();
      const reopened = await env.reopen();
      stores.push(reopened);
      const second = counter(reopened);
      assert.equal(
        await take(second, daily, 'key_restart'),
        false,
        'a new process still sees the quota used up',
      );
      assert.equal(
        await take(second, { ...daily, period: 'month' }, 'key_restart'),
        true,
        'another quota is apart',
      );
      await second.close();
    });

    it('loses at most the usage since the last flush when the process dies', async () => {
      const c = counter(env.store);
      for (let i = 0; i < 30; i++) await take(c, daily, 'key_crash');
      await c.flush();
      for (let i = 0; i < 5; i++) await take(c, daily, 'key_crash');
      // Crash: no close(), no last flush. A new counter sees what the flush wrote.
      const after = counter(env.store);
      const entry = await after.entry(daily, 'key_crash');
      assert.equal(after.used(entry), 30);
      await after.close();
    });

    it('starts afresh in the next period', async () => {
      let now = Date.UTC(2025, 2, 14, 23, 59, 59);
      const c = counter(env.store, () => now);
      for (let i = 0; i < 100; i++) await take(c, daily, 'key_midnight');
      assert.equal(await take(c, daily, 'key_midnight'), false);
      now += 1000;
      assert.equal(await take(c, daily, 'key_midnight'), true);
      await c.close();
    });

    it('shares one total between instances, learning the others’ usage at each flush', async () => {
      const a = counter(env.store);
      const b = counter(env.store);
      let admitted = 0;
      // Ten rounds of traffic through both instances, each flushing between rounds.
      for (let round = 0; round < 10; round++) {
        for (let i = 0; i < 15; i++) {
          if (await take(a, daily, 'key_shared')) admitted++;
          if (await take(b, daily, 'key_shared')) admitted++;
        }
        await Promise.all([a.flush(), b.flush()]);
      }
      // Within one flush interval the other instance admits at most 15: the stated overrun bound.
      assert.ok(admitted >= 100 && admitted <= 115, `${admitted} admitted`);
      const check = counter(env.store);
      assert.equal(
        check.used(await check.entry(daily, 'key_shared')),
        admitted,
        'the store holds the exact total',
      );
      await Promise.all([a.close(), b.close(), check.close()]);
    });

    it('keeps a bounded number of counters in memory, without losing unwritten usage', async () => {
      const c = new QuotaCounter(env.store, {
        maxKeys: 50,
        flushMs: 60_000,
        logger: captureLogger().logger,
        now: () => NOON,
      });
      for (let i = 0; i < 500; i++) await take(c, daily, `key_many_${i}`);
      assert.equal(c.size, 50);
      await c.flush();
      const rows = await env.store.query<{ n: number }>(
        "select count(*) as n from rate_limit_quotas where subject like 'key_many_%'",
      );
      assert.equal(Number(rows[0]!.n), 500, 'every counter was written, evicted or not');
      await c.close();
    });
  });
}
