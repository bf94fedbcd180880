import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { gcra } from './gcra.js';
import { type LimitCheck, MemoryLimiter } from './limiter.js';
import type { LimitSettings } from './types.js';

function limit(
  count: number,
  periodMs: number,
  burst = count,
  mode: 'enforce' | 'shadow' = 'enforce',
): LimitSettings {
  return {
    type: 'rate',
    name: `l${count}_${periodMs}_${burst}_${mode}`,
    key: [],
    mode,
    count,
    periodMs,
    burst,
  };
}

/** A memory limiter on a clock the test moves by hand. */
function clocked() {
  let t = 1_000_000;
  const limiter = new MemoryLimiter(1000, () => t);
  return {
    limiter,
    advance(ms: number) {
      t += ms;
    },
    take(checks: LimitCheck[], cost = 1) {
      return limiter.consume(checks, cost);
    },
  };
}

describe('GCRA exactness on a controlled clock', () => {
  it('admits exactly N at once and refuses the (N+1)-th', () => {
    const c = clocked();
    const l = limit(10, 60_000);
    for (let i = 0; i < 10; i++)
      assert.equal(c.take([{ limit: l, key: 'a' }]).allowed, true, `request ${i + 1}`);
    const refused = c.take([{ limit: l, key: 'a' }]);
    assert.equal(refused.allowed, false);
    assert.equal(refused.outcomes[0]!.remaining, 0);
    assert.equal(refused.outcomes[0]!.retryAfterMs, 6000, 'one unit comes back after period / count');
  });

  it('refills one unit at exactly period / count, not a millisecond earlier', () => {
    const c = clocked();
    const l = limit(10, 60_000);
    for (let i = 0; i < 10; i++) c.take([{ limit: l, key: 'a' }]);
    c.advance(5999);
    assert.equal(c.take([{ limit: l, key: 'a' }]).allowed, false);
    c.advance(1);
    assert.equal(c.take([{ limit: l, key: 'a' }]).allowed, true);
    assert.equal(c.take([{ limit: l, key: 'a' }]).allowed, false, 'only one unit came back');
    c.advance(60_000);
    let n = 0;
    while (c.take([{ limit: l, key: 'a' }]).allowed) n++;
    assert.equal(n, 10, 'a full period later the bucket is full again, and no fuller');
  });

  it('lets no burst through at a window boundary (the fixed-window flaw)', () => {
    // With a fixed window of 100/min, 100 requests at 0:59.999 and 100 at
    // 1:00.000 would all pass. Here the second hundred must wait for the rate.
    const c = clocked();
    const l = limit(100, 60_000);
    c.advance(59_999);
    let first = 0;
    for (let i = 0; i < 100; i++) if (c.take([{ limit: l, key: 'a' }]).allowed) first++;
    c.advance(1);
    let second = 0;
    for (let i = 0; i < 100; i++) if (c.take([{ limit: l, key: 'a' }]).allowed) second++;
    assert.equal(first, 100);
    assert.equal(second, 0);
  });

  it('takes a route cost from the bucket (an export costing 10)', () => {
    const c = clocked();
    const l = limit(20, 1000);
    assert.equal(c.take([{ limit: l, key: 'a' }], 10).allowed, true);
    assert.equal(c.take([{ limit: l, key: 'a' }], 10).allowed, true);
    const third = c.take([{ limit: l, key: 'a' }], 10);
    assert.equal(third.allowed, false);
    assert.equal(third.outcomes[0]!.retryAfterMs, 500, 'ten units at 50 ms each');
    c.advance(500);
    assert.equal(c.take([{ limit: l, key: 'a' }], 10).allowed, true);
  });

  it('keeps keys apart', () => {
    const c = clocked();
    const l = limit(1, 1000);
    assert.equal(c.take([{ limit: l, key: 'a' }]).allowed, true);
    assert.equal(c.take([{ limit: l, key: 'b' }]).allowed, true);
    assert.equal(c.take([{ limit: l, key: 'a' }]).allowed, false);
  });

  it('with several limits, a request refused by one takes nothing from the others', () => {
    const c = clocked();
    const burst = limit(10, 1000);
    const sustained = limit(3, 3_600_000);
    const both = (): LimitCheck[] => [
      { limit: burst, key: 'a' },
      { limit: sustained, key: 'a' },
    ];
    for (let i = 0; i < 3; i++) assert.equal(c.take(both()).allowed, true);
    const refused = c.take(both());
    assert.equal(refused.allowed, false);
    assert.equal(refused.outcomes[0]!.allowed, true, 'the burst limit alone would have admitted it');
    assert.equal(refused.outcomes[0]!.remaining, 7, 'and keeps its units');
    assert.equal(refused.outcomes[1]!.allowed, false);
    // The burst limit still has 7: prove it by using them alone.
    let n = 0;
    while (c.take([{ limit: burst, key: 'a' }]).allowed) n++;
    assert.equal(n, 7);
  });

  it('never refuses for a shadow limit, and counts it as if it were enforced', () => {
    const c = clocked();
    const shadow = limit(2, 1000, 2, 'shadow');
    const results = Array.from({ length: 4 }, () => c.take([{ limit: shadow, key: 'a' }]));
    assert.deepEqual(
      results.map((r) => r.allowed),
      [true, true, true, true],
    );
    assert.deepEqual(
      results.map((r) => r.outcomes[0]!.allowed),
      [true, true, false, false],
    );
  });

  it('divides rate and burst by the instance count in the fail-open fallback', () => {
    let t = 0;
    const fallback = new MemoryLimiter(100, () => t, 4);
    const l = limit(100, 1000);
    let n = 0;
    while (fallback.consume([{ limit: l, key: 'a' }], 1).allowed) n++;
    assert.equal(n, 25);
    t += 40; // one unit per 10 ms × 4
    assert.equal(fallback.consume([{ limit: l, key: 'a' }], 1).allowed, true);
    assert.equal(fallback.consume([{ limit: l, key: 'a' }], 1).allowed, false);
  });
});

/** The textbook continuous token bucket, to check GCRA against. */
function referenceBucket(intervalMs: number, burst: number) {
  let tokens = burst;
  let last = 0;
  return (now: number, cost: number) => {
    tokens = Math.min(burst, tokens + (now - last) / intervalMs);
    last = now;
    if (tokens + 1e-9 >= cost) {
      tokens -= cost;
      return true;
    }
    return false;
  };
}

describe('GCRA properties', () => {
  const arrivals = fc.array(
    fc.record({ gap: fc.integer({ min: 0, max: 300 }), cost: fc.integer({ min: 1, max: 3 }) }),
    {
      minLength: 1,
      maxLength: 300,
    },
  );

  it('decides exactly as a continuous token bucket of the same rate and size', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 3, max: 20 }),
        arrivals,
        (interval, burst, reqs) => {
          const bucket = referenceBucket(interval, burst);
          let tat: number | undefined;
          let now = 0;
          for (const r of reqs) {
            now += r.gap;
            const got = gcra(tat, now, interval, burst, r.cost);
            if (got.allowed) tat = got.tat;
            assert.equal(got.allowed, bucket(now, r.cost), `at ${now} ms, cost ${r.cost}`);
          }
        },
      ),
    );
  });

  it('never admits more than burst + W / interval units in any span of length W', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 3, max: 20 }),
        arrivals,
        (interval, burst, reqs) => {
          let tat: number | undefined;
          let now = 0;
          const admitted: { at: number; cost: number }[] = [];
          for (const r of reqs) {
            now += r.gap;
            const got = gcra(tat, now, interval, burst, r.cost);
            if (got.allowed) {
              tat = got.tat;
              admitted.push({ at: now, cost: r.cost });
            }
          }
          for (let i = 0; i < admitted.length; i++) {
            let units = 0;
            for (let j = i; j < admitted.length; j++) {
              units += admitted[j]!.cost;
              const span = admitted[j]!.at - admitted[i]!.at;
              assert.ok(units <= burst + span / interval + 1e-9, `${units} units in ${span} ms`);
            }
          }
        },
      ),
    );
  });
});
