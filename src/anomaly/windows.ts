/**
 * The constant-memory measures detectors are built from: a sliding-window
 * count, an EWMA rate baseline, and a distinct-count estimate. Each keeps a
 * few numbers per source, whatever the traffic, so a table of them is bounded
 * by its number of entries alone.
 */

/**
 * An episode ends when its measure falls below this fraction of the
 * threshold that started it. The gap between the two levels is what keeps a
 * measure hovering around the threshold from firing on every request.
 */
export const CLEAR_RATIO = 0.5;

/**
 * A count over the last `windowMs`, approximated from two aligned fixed
 * windows: the current one in full, plus the previous one weighted by the
 * share of it the sliding window still covers. Exact while events are evenly
 * spread; never more than one window's worth wrong.
 */
export class SlidingCount {
  private index = Number.NEGATIVE_INFINITY;
  private previous = 0;
  private current = 0;

  constructor(private readonly windowMs: number) {}

  add(now: number, n = 1): void {
    this.roll(now);
    this.current += n;
  }

  value(now: number): number {
    this.roll(now);
    const elapsed = (now - this.index * this.windowMs) / this.windowMs;
    return this.previous * (1 - elapsed) + this.current;
  }

  private roll(now: number): void {
    const index = Math.floor(now / this.windowMs);
    if (index === this.index) return;
    this.previous = index === this.index + 1 ? this.current : 0;
    this.current = 0;
    this.index = index;
  }
}

/** Compiled parameters of a {@link RateBaseline}. */
export interface RateParams {
  intervalMs: number;
  /** EWMA weight of each new interval, from the half-life: 1 - 2^(-interval / half_life). */
  alpha: number;
  /** How many times the baseline the current interval must reach. */
  factor: number;
  /** Requests per second below which nothing is a spike, whatever the baseline. */
  minRatePerSecond: number;
  /** Intervals of history needed before the baseline is trusted. */
  warmupIntervals: number;
}

/** The EWMA weight per interval for a half-life. */
export function ewmaAlpha(intervalMs: number, halfLifeMs: number): number {
  return 1 - 2 ** (-intervalMs / halfLifeMs);
}

/** Longest gap folded into the baseline at once; beyond it the baseline is ~0 anyway. */
const MAX_GAP_INTERVALS = 10_000;

/**
 * A source's request rate against its own baseline. Requests are counted in
 * aligned intervals; each completed interval updates an exponentially
 * weighted moving average of the rate (a plain mean during warm-up, so the
 * first, possibly partial, interval does not dominate), and silent intervals
 * decay it. The current interval is a spike as soon as its count reaches
 * `max(factor × baseline, min_rate) × interval`, so a spike is reported
 * within the interval, not after it.
 */
export class RateBaseline {
  private interval = -1;
  /** Requests in the current interval. */
  count = 0;
  /** Requests per second. */
  baseline = 0;
  /** Intervals of history, silent ones included. */
  history = 0;
  active = false;

  /** Counts one request; true when it starts a spike episode. */
  observe(now: number, p: RateParams): boolean {
    const interval = Math.floor(now / p.intervalMs);
    if (this.interval < 0) this.interval = interval;
    else if (interval > this.interval) this.close(interval, p);
    this.count++;
    if (this.active || this.history < p.warmupIntervals) return false;
    if (this.count >= this.limit(p)) {
      this.active = true;
      return true;
    }
    return false;
  }

  /** The count the current interval must reach to be a spike. */
  limit(p: RateParams): number {
    return (Math.max(p.factor * this.baseline, p.minRatePerSecond) * p.intervalMs) / 1000;
  }

  private close(interval: number, p: RateParams): void {
    const rate = this.count / (p.intervalMs / 1000);
    const gap = Math.min(interval - this.interval - 1, MAX_GAP_INTERVALS);
    if (this.active && (gap > 0 || this.count < this.limit(p) * CLEAR_RATIO)) this.active = false;
    if (this.history < p.warmupIntervals) {
      // Mean over the elapsed intervals, silent ones counting as zero.
      this.baseline = (this.baseline * this.history + rate) / (this.history + 1 + gap);
    } else {
      this.baseline += p.alpha * (rate - this.baseline);
      if (gap > 0) this.baseline *= (1 - p.alpha) ** gap;
    }
    this.history += 1 + gap;
    this.count = 0;
    this.interval = interval;
  }
}

export { hashString } from '../util/hash.js';

/** MurmurHash3's finaliser: spreads FNV's weak low bits over the whole word. */
export function mix32(h: number): number {
  let x = h ^ (h >>> 16);
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

function popcount(word: number): number {
  let v = word - ((word >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** Linear counting (Whang et al., 1990): distinct items from the share of bits still zero. */
function linearCount(bits: number, set: number): number {
  const zero = bits - set;
  return zero === 0 ? bits * Math.log(bits) : -bits * Math.log(zero / bits);
}

/** Bitmap size for counting up to about `threshold` distinct items within a few percent. */
export function distinctBits(threshold: number): number {
  let bits = 256;
  while (bits < threshold * 8 && bits < 65_536) bits *= 2;
  return bits;
}

/**
 * Distinct items seen over the last window, estimated by linear counting on
 * two bitmaps (the current aligned window and the previous one, weighted like
 * {@link SlidingCount}). Memory is two bitmaps of `bits` bits whatever the
 * number of items: an exact set per source would let one scraper grow memory
 * with every id it tries. The standard error is about 2–3% at `bits / 8` items.
 */
export class DistinctEstimate {
  private index = Number.NEGATIVE_INFINITY;
  private current: Uint32Array;
  private previous: Uint32Array;
  private currentSet = 0;

  constructor(
    private readonly bits: number,
    private readonly windowMs: number,
  ) {
    this.current = new Uint32Array(bits / 32);
    this.previous = new Uint32Array(bits / 32);
  }

  /** Adds an item by its 32-bit hash; true when it set a new bit in the current window. */
  add(hash: number, now: number): boolean {
    this.roll(now);
    const bit = mix32(hash) & (this.bits - 1);
    const word = bit >>> 5;
    const mask = 1 << (bit & 31);
    const before = this.current[word]!;
    if ((before & mask) !== 0) return false;
    this.current[word] = before | mask;
    this.currentSet++;
    return true;
  }

  estimate(now: number): number {
    this.roll(now);
    const current = linearCount(this.bits, this.currentSet);
    let union = 0;
    for (let i = 0; i < this.current.length; i++) union += popcount(this.current[i]! | this.previous[i]!);
    // Items seen only in the previous window, weighted by how much of it the window still covers.
    const onlyPrevious = Math.max(0, linearCount(this.bits, union) - current);
    const elapsed = (now - this.index * this.windowMs) / this.windowMs;
    return current + onlyPrevious * (1 - elapsed);
  }

  private roll(now: number): void {
    const index = Math.floor(now / this.windowMs);
    if (index === this.index) return;
    if (index === this.index + 1) {
      const spare = this.previous;
      this.previous = this.current;
      this.current = spare;
      this.current.fill(0);
    } else {
      this.previous.fill(0);
      this.current.fill(0);
    }
    this.currentSet = 0;
    this.index = index;
  }
}
