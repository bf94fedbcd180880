import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createRateLimitStage } from '../stages/rate-limit/index.js';
import { send } from '../test-support/http.js';
import { captureLogger, principal, startStageServer } from '../test-support/stage.js';
import { RateLimitService } from './index.js';
import type { LimitCheck } from './limiter.js';
import { compileForTest } from './test-support/config.js';
import {
  freePort,
  PrivateRedis,
  redisSkipMessage,
  requireRedisServerBinary,
  requireSharedRedis,
  SHARED_REDIS_URL,
} from './test-support/redis.js';
import type { LimitSettings } from './types.js';

const sharedUp = await requireSharedRedis();
const canStartRedis = requireRedisServerBinary();
/** Every key of this run starts with this, so the shared Redis is left as it was. */
const PREFIX = `portcullis-test-${randomBytes(6).toString('hex')}:`;

const closing: { close(): Promise<void> }[] = [];
afterEach(async () => {
  while (closing.length > 0) await closing.pop()!.close();
});

function redisSection(url: string, extra: Record<string, unknown> = {}) {
  return {
    backend: 'redis',
    redis: { url, key_prefix: PREFIX, timeout: '200ms', connect_timeout: '500ms', ...extra },
  };
}

/** A rate-limit service (one "instance") on Redis, serving the given routes over HTTP. */
async function instance(section: Record<string, unknown>, routes: Record<string, Record<string, unknown>>) {
  const { settings, routes: plans, issues } = compileForTest(section, routes);
  assert.deepEqual(issues, []);
  const { logger, lines } = captureLogger();
  const service = new RateLimitService(settings, { logger, store: undefined });
  await service.start();
  closing.push(service);
  const server = await startStageServer(
    Object.fromEntries(
      Object.entries(plans).map(([n, p]) => [n, p ? [createRateLimitStage(service, p)] : []]),
    ),
  );
  closing.push(server);
  return { service, lines, url: server.url };
}

const limit = (
  name: string,
  count: number,
  periodMs: number,
  mode: 'enforce' | 'shadow' = 'enforce',
): LimitSettings => ({
  type: 'rate',
  name,
  key: [],
  mode,
  count,
  periodMs,
  burst: count,
});

describe('the Redis backend, on the shared Redis', { skip: sharedUp ? false : redisSkipMessage() }, () => {
  after(async () => {
    const client = new Redis(SHARED_REDIS_URL);
    const keys = await client.keys(`${PREFIX}*`);
    if (keys.length > 0) await client.del(...keys);
    await client.quit();
  });

  it('admits exactly the burst and refuses the next, on Redis’s clock', async () => {
    const { service } = await instance(redisSection(SHARED_REDIS_URL), {});
    const l = limit('exact', 5, 3_600_000);
    const take = () => service.limiter.consume([{ limit: l, key: 'a' }], 1);
    for (let i = 0; i < 5; i++) assert.equal((await take()).allowed, true);
    const refused = await take();
    assert.equal(refused.allowed, false);
    assert.equal(refused.outcomes[0]!.remaining, 0);
    const interval = 3_600_000 / 5;
    assert.ok(
      Math.abs(refused.outcomes[0]!.retryAfterMs - interval) < 1000,
      `${refused.outcomes[0]!.retryAfterMs}`,
    );
  });

  it('decides several limits atomically: one refusal takes nothing from the others', async () => {
    const { service } = await instance(redisSection(SHARED_REDIS_URL), {});
    const burst = limit('multi_burst', 10, 1000);
    const sustained = limit('multi_sustained', 2, 3_600_000);
    const shadow = limit('multi_shadow', 1, 3_600_000, 'shadow');
    const checks: LimitCheck[] = [
      { limit: burst, key: 'a' },
      { limit: sustained, key: 'a' },
      { limit: shadow, key: 'a' },
    ];
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await service.limiter.consume(checks, 1));
    assert.deepEqual(
      results.map((r) => r.allowed),
      [true, true, false],
    );
    assert.deepEqual(
      results.map((r) => r.outcomes[2]!.allowed),
      [true, false, false],
      'the shadow limit counted on its own and never refused',
    );
    assert.equal(results[2]!.outcomes[0]!.remaining, 8, 'the refused request left the burst limit alone');
  });

  it('keeps two instances under concurrent load within the shared limit (tolerance: what refills meanwhile)', async () => {
    // Two instances, each its own service, Redis connection and HTTP server,
    // hammered at once: the total admitted must be the burst, plus at most
    // what the rate refills while the test runs (one unit per 36 s here, so 0).
    const section = {
      ...redisSection(SHARED_REDIS_URL),
      limits: { shared: { key: ['principal'], rate: '100/h' } },
    };
    const a = await instance(section, { orders: { rate_limits: ['shared'] } });
    const b = await instance(section, { orders: { rate_limits: ['shared'] } });
    const who = { 'x-test-principal': JSON.stringify(principal('api_key', 'key_shared')) };
    const started = performance.now();
    const replies = await Promise.all(
      Array.from({ length: 300 }, (_, i) => send(i % 2 === 0 ? a.url : b.url, '/orders', { headers: who })),
    );
    const elapsed = performance.now() - started;
    const admitted = replies.filter((r) => r.status === 200).length;
    const refused = replies.filter((r) => r.status === 429).length;
    const tolerance = Math.ceil(elapsed / 36_000);
    assert.equal(admitted + refused, 300);
    assert.ok(
      admitted >= 100 && admitted <= 100 + tolerance,
      `${admitted} admitted in ${Math.round(elapsed)} ms`,
    );
    assert.ok(
      replies.filter((r, i) => i % 2 === 0 && r.status === 200).length > 0,
      'instance a admitted some',
    );
    assert.ok(
      replies.filter((r, i) => i % 2 === 1 && r.status === 200).length > 0,
      'instance b admitted some',
    );
  });

  it('also holds under direct concurrent calls from two instances (1000 calls, 2 × 500 in flight)', async () => {
    const a = await instance(redisSection(SHARED_REDIS_URL), {});
    const b = await instance(redisSection(SHARED_REDIS_URL), {});
    const l = limit('direct', 250, 3_600_000);
    const calls = Array.from({ length: 1000 }, (_, i) =>
      (i % 2 === 0 ? a : b).service.limiter.consume([{ limit: l, key: 'k' }], 1),
    );
    const verdicts = await Promise.all(calls);
    assert.equal(verdicts.filter((v) => v.allowed).length, 250);
  });
});

describe('the Redis failure policies, on a Redis the test stops and restarts', {
  skip: canStartRedis ? false : 'no redis-server binary',
}, () => {
  let redis: PrivateRedis;
  before(async () => {
    redis = await PrivateRedis.start();
  });
  after(async () => {
    await redis.stop();
  });

  const waitFor = async (what: string, condition: () => boolean | Promise<boolean>, ms = 8000) => {
    const deadline = Date.now() + ms;
    while (!(await condition())) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  it('fail-open: limits on this instance alone (divided by the instance count), reported, and back to Redis when it returns', async () => {
    const gw = await instance(
      {
        ...redisSection(redis.url, { on_failure: 'fail-open', expected_instances: 2 }),
        limits: { per_ip: { key: ['ip'], rate: '10/h', all_routes: true } },
      },
      { orders: {} },
    );
    const get = () => send(gw.url, '/orders');
    for (let i = 0; i < 4; i++) assert.equal((await get()).status, 200);
    assert.equal(await gw.service.checks.rate_limit_redis!(), undefined, 'ready, not degraded');

    await redis.stop();
    // Local limit: 10 / 2 = 5, from a fresh local bucket.
    const during = [];
    for (let i = 0; i < 7; i++) during.push((await get()).status);
    assert.deepEqual(during, [200, 200, 200, 200, 200, 429, 429]);
    assert.match(
      String(await gw.service.checks.rate_limit_redis!()),
      /^degraded: redis unreachable, fail-open/,
    );
    assert.equal(
      gw.lines.filter((l) => String(l.msg).startsWith('rate-limit Redis unreachable; failing open')).length,
      1,
      'one warning per outage, not one per request',
    );
    assert.ok(gw.service.redis!.failures >= 7);

    await redis.start();
    await waitFor('Redis to be used again', async () => {
      const r = await get();
      return r.status === 200 && gw.service.redis!.healthy;
    });
    assert.equal(await gw.service.checks.rate_limit_redis!(), undefined);
    assert.ok(gw.lines.some((l) => l.msg === 'rate-limit Redis reachable again; shared limits restored'));
    const probe = new Redis(redis.url);
    assert.equal(
      (await probe.keys(`${PREFIX}rl:per_ip:*`)).length,
      1,
      'the decision was made in the restarted Redis',
    );
    await probe.quit();
  });

  it('fail-closed: 503 rate_limit.unavailable with Retry-After, not ready, and serving again when Redis returns', async () => {
    const gw = await instance(
      {
        ...redisSection(redis.url, { on_failure: 'fail-closed' }),
        limits: { per_ip: { key: ['ip'], rate: '100/h', all_routes: true } },
      },
      { orders: {}, public: { rate_limits: [] } },
    );
    await waitFor('Redis', () => gw.service.redis!.client.status === 'ready');
    assert.equal((await send(gw.url, '/orders')).status, 200);

    await redis.stop();
    const refused = await send(gw.url, '/orders');
    assert.equal(refused.status, 503);
    assert.equal(refused.json<{ code: string }>().code, 'rate_limit.unavailable');
    assert.equal(refused.headers['retry-after'], '1');
    await assert.rejects(gw.service.checks.rate_limit_redis!(), /redis unreachable \(fail-closed\)/);
    assert.ok(gw.lines.some((l) => String(l.msg).startsWith('rate-limit Redis unreachable; failing closed')));

    await redis.start();
    await waitFor('requests to pass again', async () => (await send(gw.url, '/orders')).status === 200);
    assert.equal(await gw.service.checks.rate_limit_redis!(), undefined);
  });

  it('starts without waiting for a Redis that is not there, and applies the policy at once', async () => {
    const nowhere = `redis://127.0.0.1:${await freePort()}`;
    const started = performance.now();
    const gw = await instance(
      {
        ...redisSection(nowhere, { on_failure: 'fail-closed' }),
        limits: { l: { key: [], rate: '1/s', all_routes: true } },
      },
      { orders: {} },
    );
    assert.ok(performance.now() - started < 1500, 'start-up waited at most the connect timeout');
    const t0 = performance.now();
    assert.equal((await send(gw.url, '/orders')).status, 503);
    assert.ok(performance.now() - t0 < 250, 'answered without waiting for Redis');
  });
});
