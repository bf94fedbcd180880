/**
 * Log lines about an ongoing Redis outage are rate-limited (issue 18, item
 * 7): one line when it starts, then at most one per interval with the count
 * of requests the failure policy decided, and one on recovery — not one per
 * request. A real client against a port where no Redis listens; the clock is
 * the test's, to step through intervals without waiting.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { captureLogger } from '../test-support/log.js';
import { MemoryLimiter } from './limiter.js';
import { LimiterUnavailable, OUTAGE_LOG_INTERVAL_MS, RedisLimiter } from './redis.js';
import { freePort } from './test-support/redis.js';

describe('Redis outage logging', () => {
  it('writes one line per interval with a count while Redis is down, under both policies', async () => {
    for (const onFailure of ['fail-open', 'fail-closed'] as const) {
      const { logger, lines } = captureLogger('info');
      let now = 1_000_000;
      const limiter = new RedisLimiter(
        {
          url: `redis://127.0.0.1:${await freePort()}`,
          onFailure,
          expectedInstances: 2,
          keyPrefix: 'outage-log:',
          timeoutMs: 100,
          connectTimeoutMs: 200,
        },
        { logger, fallback: new MemoryLimiter(100, () => now, 2), now: () => now },
      );
      await limiter.connect();
      const limit = { name: 'l', count: 10, periodMs: 1000, burst: 10, mode: 'enforce' } as never;
      let refused = 0;
      // 3.5 intervals of outage, 1,000 requests in each.
      for (let step = 0; step < 3500; step++) {
        now += OUTAGE_LOG_INTERVAL_MS / 1000;
        try {
          await limiter.consume([{ limit, key: `k${step % 7}` }], 1);
        } catch (err) {
          assert.ok(err instanceof LimiterUnavailable);
          refused++;
        }
      }
      const outage = lines.filter((l) => String(l.msg).startsWith('rate-limit Redis'));
      await limiter.close();
      assert.equal(refused, onFailure === 'fail-closed' ? 3500 : 0);
      assert.equal(outage.length, 4, outage.map((l) => l.msg).join(' | '));
      assert.match(String(outage[0]!.msg), /rate-limit Redis unreachable/);
      for (const l of outage.slice(1)) {
        assert.match(String(l.msg), /still unreachable/);
        assert.equal(l.requests, 1000);
        assert.equal(l.policy, onFailure);
      }
    }
  });
});
