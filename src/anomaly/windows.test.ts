import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DistinctEstimate,
  distinctBits,
  ewmaAlpha,
  hashString,
  RateBaseline,
  SlidingCount,
} from './windows.js';

describe('a sliding count', () => {
  it('is exact for evenly spread events and forgets them after two windows', () => {
    const count = new SlidingCount(60_000);
    for (let t = 0; t < 120_000; t += 1000) count.add(t);
    assert.equal(Math.round(count.value(119_999)), 60);
    assert.equal(Math.round(count.value(150_000)), 30);
    assert.equal(count.value(240_000), 0);
  });
});

describe('a distinct estimate', () => {
  it('counts 100 and 1,000 distinct ids within 10%, and repeats as one', () => {
    for (const n of [100, 1000]) {
      const ids = new DistinctEstimate(distinctBits(n), 60_000);
      for (let i = 0; i < n; i++) {
        ids.add(hashString(`order-${i}`), 1000);
        ids.add(hashString(`order-${i}`), 1000);
      }
      const estimate = ids.estimate(1000);
      assert.ok(Math.abs(estimate - n) / n < 0.1, `estimated ${estimate} for ${n}`);
    }
  });

  it('keeps the previous window in proportion to its overlap, then forgets it', () => {
    const ids = new DistinctEstimate(1024, 60_000);
    for (let i = 0; i < 100; i++) ids.add(hashString(String(i)), 59_000);
    const half = ids.estimate(90_000);
    assert.ok(half > 40 && half < 60, `estimated ${half} halfway through the next window`);
    assert.equal(ids.estimate(200_000), 0);
  });
});

describe('a rate baseline', () => {
  const params = {
    intervalMs: 10_000,
    alpha: ewmaAlpha(10_000, 300_000),
    factor: 10,
    minRatePerSecond: 5,
    warmupIntervals: 6,
  };

  it('learns a steady rate and flags the interval that reaches factor × baseline', () => {
    const rate = new RateBaseline();
    let t = 0;
    for (let i = 0; i < 300; i++, t += 1000) assert.equal(rate.observe(t, params), false);
    assert.ok(Math.abs(rate.baseline - 1) < 0.05, `baseline ${rate.baseline}`);
    // 10 × 1/s over a 10 s interval: the 100th request of an interval fires.
    t = Math.ceil(t / 10_000) * 10_000;
    let fired = 0;
    for (let i = 1; i <= 150; i++, t += 50) if (rate.observe(t, params)) fired = i;
    assert.equal(fired, 100);
  });

  it('decays during silence, so the minimum rate is what a long-idle source must exceed', () => {
    const rate = new RateBaseline();
    for (let t = 0; t < 600_000; t += 1000) rate.observe(t, params);
    rate.observe(4 * 3_600_000, params);
    assert.ok(rate.baseline < 0.01);
    assert.equal(rate.limit(params), 50);
  });
});
