/**
 * Every per-client table stays at its bound under a flood of distinct
 * clients (issue 18, item 7): 200k distinct IPs, each failing API-key
 * authentication with its own made-up key, driven through the structures
 * directly (the HTTP version, with fewer clients, is in
 * src/auth/client-flood.test.ts). The memory these bounds add up to is
 * measured by bench/memory/clients.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAnomalyEngine } from '../anomaly/index.js';
import { anomalySettings, authFailure, requestEvent } from '../anomaly/test-support/traffic.js';
import { createBruteForceGuard, MAX_TRACKED } from '../auth/brute-force.js';
import { AuthFailure } from '../auth/types.js';
import { createApiKeyAuthenticator } from '../keys/authenticator.js';
import { generateApiKey } from '../keys/format.js';
import { InFlight } from '../ratelimit/concurrency.js';
import { MemoryLimiter } from '../ratelimit/limiter.js';
import { QuotaCounter } from '../ratelimit/quota.js';
import type { LimitSettings, QuotaSettings } from '../ratelimit/types.js';
import type { Db } from '../store/types.js';

const CLIENTS = 200_000;
const isLockout = (err: unknown) => (err as { code?: string }).code === 'auth.locked_out';
const ipOf = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const bruteForce = {
  enabled: true,
  maxFailures: 10,
  maxFailuresPerIp: 5,
  maxFailuresPerCredential: 1000,
  throttleRate: 5,
  windowMs: 600_000,
  lockoutMs: 60_000,
  maxLockoutMs: 3_600_000,
};
/** A store that knows no key and no quota usage, and counts its queries. */
function emptyDb(): Db & { queries: number } {
  const db: Db & { queries: number } = {
    dialect: 'sqlite',
    queries: 0,
    async query<T>(sql: string) {
      db.queries++;
      return (sql.includes('returning used') ? [{ used: 1 }] : []) as T[];
    },
    execute: async () => ({ changes: 0 }),
    transaction: (fn) => fn(db),
  };
  return db;
}

describe(`${CLIENTS / 1000}k distinct clients`, () => {
  it('the brute-force guard keeps at most MAX_TRACKED entries per table, and a locked-out IP stays locked out', () => {
    let t = 1_000_000;
    const guard = createBruteForceGuard(bruteForce, { now: () => t });
    const offender = '192.0.2.1';
    for (let i = 0; i < bruteForce.maxFailuresPerIp; i++)
      guard.recordFailure(offender, `key_${i}`, 'key_unknown');
    assert.throws(() => guard.check(offender, undefined), isLockout);
    for (let i = 0; i < CLIENTS; i++) {
      t += 0.1; // 20 s in all, inside the 60 s lockout
      const ip = ipOf(i);
      guard.check(ip, `key_c${i}`);
      guard.recordFailure(ip, `key_c${i}`, 'key_unknown');
      // The offender keeps trying, so it stays among the recently used.
      if (i % 1000 === 0) assert.throws(() => guard.check(offender, `key_c${i}`), isLockout);
    }
    assert.deepEqual(guard.tracked(), { ip: MAX_TRACKED, pair: MAX_TRACKED, credential: MAX_TRACKED });
    assert.throws(() => guard.check(offender, undefined), isLockout);
  });

  it('the memory rate limiter keeps at most max_keys per limit, and still limits a repeat offender', () => {
    let t = 0;
    const maxKeys = 10_000;
    const limiter = new MemoryLimiter(maxKeys, () => t);
    const limit: LimitSettings = {
      type: 'rate',
      name: 'per_ip',
      key: [{ kind: 'ip' }],
      mode: 'enforce',
      count: 10,
      periodMs: 1000,
      burst: 10,
    };
    const perRoute: LimitSettings = {
      ...limit,
      name: 'per_ip_route',
      key: [{ kind: 'ip' }, { kind: 'route' }],
    };
    const hit = (ip: string) =>
      limiter.consume(
        [
          { limit, key: ip },
          { limit: perRoute, key: `${ip}\u0000orders` },
        ],
        1,
      ).allowed;
    for (let i = 0; i < CLIENTS; i++) {
      t += 0.001;
      hit(ipOf(i));
    }
    assert.equal(limiter.size, 2 * maxKeys);
    const offender = '192.0.2.2';
    let admitted = 0;
    while (hit(offender)) admitted++;
    assert.equal(admitted, 10);
  });

  it('the anomaly detectors keep at most max_sources per table', () => {
    const maxSources = 5000;
    const engine = createAnomalyEngine(anomalySettings({ max_sources: maxSources }), { onFinding: () => {} });
    for (let i = 0; i < CLIENTS; i++) {
      const ip = ipOf(i);
      engine.emit(authFailure(ip, `key_${i}`));
      engine.emit(
        requestEvent({ clientIp: ip, principal: { kind: 'api_key', id: `key_${i}`, tenant: undefined } }),
      );
    }
    for (const [detector, tables] of Object.entries(engine.tracked())) {
      for (const [table, n] of Object.entries(tables!))
        assert.ok(n <= maxSources, `${detector}.${table}: ${n}`);
    }
    assert.equal(engine.tracked().auth_failures?.ip, maxSources);
  });

  it('the API key authenticator keeps at most a quarter of cache_size made-up ids, each looked up once', async () => {
    const db = emptyDb();
    const auth = createApiKeyAuthenticator({
      // An hour: the repeated id must stay cached for the whole loop, which takes tens of seconds on a loaded machine.
      settings: { cacheSize: 4000, cacheTtlMs: 3_600_000 },
      pepper: 'a-test-pepper-of-sixteen-bytes-or-more',
      db,
      logger: { warn: () => {} },
    });
    const first = generateApiKey();
    for (let i = 0; i < CLIENTS; i++) {
      const made = i % 2 === 0 ? first : generateApiKey();
      await assert.rejects(auth.authenticate(made.key), AuthFailure);
    }
    assert.equal(auth.stats.cachedUnknown, 1000);
    // Every distinct id cost one lookup; the repeated one (every other request, so never the oldest) only its first.
    assert.equal(db.queries, CLIENTS / 2 + 1);
  });

  it('the quota counter keeps at most max_keys counters', async () => {
    const maxKeys = 5000;
    const quotas = new QuotaCounter(emptyDb(), {
      maxKeys,
      flushMs: 1000,
      logger: { warn() {}, info() {} } as never,
    });
    const quota: QuotaSettings = {
      type: 'quota',
      name: 'daily',
      key: [{ kind: 'ip' }],
      mode: 'enforce',
      limit: 100,
      period: 'day',
    };
    for (let i = 0; i < CLIENTS; i++) {
      quotas.add(await quotas.entry(quota, ipOf(i)), 1);
      if (i % 10_000 === 0) await quotas.flush();
    }
    await quotas.close();
    assert.equal(quotas.size, maxKeys);
  });

  it('concurrency counts hold only the clients with a request in flight', () => {
    const inFlight = new InFlight();
    for (let i = 0; i < CLIENTS; i++) {
      inFlight.acquire(ipOf(i));
      if (i >= 100) inFlight.release(ipOf(i - 100));
    }
    assert.equal(inFlight.keys, 100);
  });
});
