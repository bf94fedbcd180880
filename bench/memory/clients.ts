/**
 * Memory held by the per-client tables after a flood of distinct clients:
 * every client is a new IP that fails API-key authentication with a new,
 * well-formed unknown key (brute-force guard, negative key cache), is rate
 * limited per IP and per IP + route (memory limiter), and is seen by every
 * anomaly detector. Drives the structures directly (no HTTP) with their
 * default bounds, and prints heapUsed after a full GC every 100k clients,
 * then what each structure holds (the heap freed when it is dropped).
 *
 *     node --expose-gc --import tsx bench/memory/clients.ts [clients=600000]
 *
 * With bounded tables heapUsed levels off once every table is full (at
 * 100k clients, the largest default bound); an unbounded table would keep
 * growing linearly.
 */
import { createAnomalyEngine } from '../../src/anomaly/index.js';
import { anomalySettings, authFailure, requestEvent } from '../../src/anomaly/test-support/traffic.js';
import { createBruteForceGuard } from '../../src/auth/brute-force.js';
import { createApiKeyAuthenticator } from '../../src/keys/authenticator.js';
import { generateApiKey } from '../../src/keys/format.js';
import { InFlight } from '../../src/ratelimit/concurrency.js';
import { MemoryLimiter } from '../../src/ratelimit/limiter.js';
import type { LimitSettings } from '../../src/ratelimit/types.js';
import type { Db } from '../../src/store/types.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');
const CLIENTS = Number(process.argv[2] ?? 600_000);
const out = (line: string) => process.stdout.write(`${line}\n`);
const MB = (n: number) => `${(n / 1048576).toFixed(1)} MB`;
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

// Defaults: rate_limit.max_keys 100000; auth.api_keys.cache_size 10000, cache_ttl 30s;
// brute-force 100000 per table; anomaly.max_sources 10000.
const limit = (name: string): LimitSettings =>
  ({ name, count: 10, periodMs: 1000, burst: 20, mode: 'enforce', key: [] }) as unknown as LimitSettings;
const perIp = limit('per_ip');
const perIpRoute = limit('per_ip_route');
const bruteForce = {
  enabled: true,
  maxFailures: 10,
  maxFailuresPerIp: 50,
  maxFailuresPerCredential: 1000,
  throttleRate: 5,
  windowMs: 600_000,
  lockoutMs: 60_000,
  maxLockoutMs: 3_600_000,
};
const db: Db = {
  dialect: 'sqlite',
  query: async <T>() => [] as T[],
  execute: async () => ({ changes: 0 }),
  transaction: (fn) => fn(db),
};

async function flood(): Promise<Record<string, unknown>> {
  const limiter = new MemoryLimiter(100_000);
  const guard: ReturnType<typeof createBruteForceGuard> & { tracked?: () => unknown } =
    createBruteForceGuard(bruteForce);
  const anomaly = createAnomalyEngine(anomalySettings(), { onFinding: () => {} });
  const keys = createApiKeyAuthenticator({
    settings: { cacheSize: 10_000, cacheTtlMs: 30_000 },
    pepper: 'bench-pepper-of-at-least-16-bytes',
    db,
    logger: { warn: () => {} },
  });
  const inFlight = new InFlight();

  const t0 = performance.now();
  out(`clients    heapUsed (over ${MB(base)} before)   ms`);
  for (let i = 0; i < CLIENTS; i++) {
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const { key, id } = generateApiKey();
    limiter.consume(
      [
        { limit: perIp, key: ip },
        { limit: perIpRoute, key: `${ip}\u0000orders` },
      ],
      1,
    );
    inFlight.acquire(ip);
    try {
      guard.check(ip, id);
      await keys.authenticate(key);
    } catch {
      guard.recordFailure(ip, id, 'key_unknown');
    }
    inFlight.release(ip);
    anomaly.emit(authFailure(ip, id));
    anomaly.emit(requestEvent({ clientIp: ip, principal: { kind: 'api_key', id, tenant: undefined } }));
    if ((i + 1) % 100_000 === 0 || i + 1 === CLIENTS) {
      out(
        `${String(i + 1).padStart(7)}    ${MB(heap() - base).padStart(9)}    ${Math.round(performance.now() - t0)}`,
      );
    }
  }
  out(
    `entries: limiter ${limiter.size}, brute-force ${JSON.stringify(guard.tracked?.())}, ` +
      `keys ${JSON.stringify({ cachedUnknown: keys.stats.cachedUnknown, storeLookups: keys.stats.storeLookups })}, ` +
      `anomaly ${JSON.stringify(anomaly.tracked())}, in flight ${inFlight.keys}`,
  );
  return { limiter, guard, anomaly, keys, inFlight };
}

const base = heap();
const structures = await flood();
let before = heap();
out(`total held ${MB(before - base)}; of which:`);
for (const name of Object.keys(structures)) {
  delete structures[name];
  const after = heap();
  out(`  ${name.padEnd(10)} ${MB(before - after)}`);
  before = after;
}
