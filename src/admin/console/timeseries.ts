/**
 * The console's overview: a small in-memory time series of this instance's
 * traffic, fed by the request events.
 *
 * Hand-written rather than a library: prom-client keeps running totals, not
 * history, and a time-series database is far more than one bounded window of
 * counters needs. Everything is preallocated: a ring of fixed-size buckets
 * (typed arrays), a bounded table of reason codes, and bounded top-k tables.
 * Recording one request is O(1): a few array additions, a histogram index
 * (one logarithm), and for denials a bounded top-k update; it allocates
 * nothing beyond the Map entries of a new top-k key.
 */
import type { EventSink, RequestEvent, SecurityEvent } from '../../events/types.js';

/** Width of one bucket. */
export const BUCKET_MS = 10_000;
/** Buckets kept: one hour. */
export const BUCKETS = 360;
/** Distinct denial reasons tracked; further ones count as `other`. */
const MAX_REASONS = 31;
/** Latency histogram: bucket i holds latencies up to LAT_BASE * LAT_FACTOR^i ms (0.05 ms … ~63 s). */
const LAT_BUCKETS = 64;
const LAT_BASE = 0.05;
const LAT_FACTOR = 1.25;
const LOG_FACTOR = Math.log(LAT_FACTOR);
/** Entries of each top-k table (space-saving sketch), per generation. */
const TOP_CAPACITY = 64;
/** The top tables cover between one and two of these. */
const TOP_GENERATION_MS = 30 * 60_000;

const latencyBound = (i: number) => LAT_BASE * LAT_FACTOR ** i;

/**
 * The k most frequent keys of a stream in bounded memory (Metwally et al.'s
 * space-saving: a new key, when full, replaces the least counted one and
 * inherits its count, so heavy hitters are never missed).
 */
class TopK {
  private counts = new Map<string, number>();
  add(key: string): void {
    const c = this.counts.get(key);
    if (c !== undefined) {
      this.counts.set(key, c + 1);
      return;
    }
    if (this.counts.size < TOP_CAPACITY) {
      this.counts.set(key, 1);
      return;
    }
    // Bounded scan (TOP_CAPACITY entries), only when a new key meets a full table.
    let minKey = '';
    let min = Number.POSITIVE_INFINITY;
    for (const [k, v] of this.counts) {
      if (v < min) {
        min = v;
        minKey = k;
      }
    }
    this.counts.delete(minKey);
    this.counts.set(key, min + 1);
  }
  entries(): IterableIterator<[string, number]> {
    return this.counts.entries();
  }
  clear(): void {
    this.counts.clear();
  }
}

/** Two generations of a top-k table, so that it covers a recent window and forgets the past. */
class RecentTop {
  private current = new TopK();
  private previous = new TopK();
  private since: number;
  constructor(now: number) {
    this.since = now;
  }
  add(key: string, now: number): void {
    if (now - this.since >= TOP_GENERATION_MS) {
      const old = this.previous;
      old.clear();
      this.previous = this.current;
      this.current = old;
      this.since = now;
    }
    this.current.add(key);
  }
  top(n: number): { key: string; count: number }[] {
    const merged = new Map<string, number>(this.previous.entries());
    for (const [k, v] of this.current.entries()) merged.set(k, (merged.get(k) ?? 0) + v);
    return [...merged]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, n)
      .map(([key, count]) => ({ key, count }));
  }
}

/** What `GET /admin/metrics/timeseries` answers. */
export interface TimeSeriesJson {
  bucketSeconds: number;
  /** Start of each bucket, epoch seconds, oldest first. */
  times: number[];
  requests: number[];
  allowed: number[];
  denied: number[];
  /** Answers with status 429. */
  limited: number[];
  /** Answers with a 5xx status. */
  errors: number[];
  /** Denials (and errors) per reason code, per bucket. */
  reasons: Record<string, number[]>;
  /** Latency percentiles per bucket, ms (null without requests). */
  p50: (number | null)[];
  p99: (number | null)[];
  totals: {
    requests: number;
    allowed: number;
    denied: number;
    limited: number;
    errors: number;
    p50: number | null;
    p99: number | null;
  };
  /** Most denied, over the last 30 to 60 minutes. */
  top: {
    principals: { key: string; count: number }[];
    ips: { key: string; count: number }[];
    routes: { key: string; count: number }[];
  };
}

export class TrafficSeries implements EventSink {
  private readonly start = new Float64Array(BUCKETS);
  private readonly requests = new Uint32Array(BUCKETS);
  private readonly allowed = new Uint32Array(BUCKETS);
  private readonly denied = new Uint32Array(BUCKETS);
  private readonly limited = new Uint32Array(BUCKETS);
  private readonly errors = new Uint32Array(BUCKETS);
  private readonly reasonCounts = new Uint32Array(BUCKETS * (MAX_REASONS + 1));
  private readonly latency = new Uint32Array(BUCKETS * LAT_BUCKETS);
  private readonly reasonIndex = new Map<string, number>();
  private readonly reasonNames: string[] = [];
  private readonly topPrincipals: RecentTop;
  private readonly topIps: RecentTop;
  private readonly topRoutes: RecentTop;

  constructor(private readonly now: () => number = Date.now) {
    const t = now();
    this.topPrincipals = new RecentTop(t);
    this.topIps = new RecentTop(t);
    this.topRoutes = new RecentTop(t);
    this.start.fill(-1);
  }

  /** The ring slot of the bucket holding `t`, cleared first when it held an older bucket. */
  private slot(t: number): number {
    const bucketStart = t - (t % BUCKET_MS);
    const i = Math.floor(bucketStart / BUCKET_MS) % BUCKETS;
    if (this.start[i] !== bucketStart) {
      this.start[i] = bucketStart;
      this.requests[i] = 0;
      this.allowed[i] = 0;
      this.denied[i] = 0;
      this.limited[i] = 0;
      this.errors[i] = 0;
      this.reasonCounts.fill(0, i * (MAX_REASONS + 1), (i + 1) * (MAX_REASONS + 1));
      this.latency.fill(0, i * LAT_BUCKETS, (i + 1) * LAT_BUCKETS);
    }
    return i;
  }

  emit(event: SecurityEvent): void {
    if (event.type === 'request') this.record(event);
  }

  record(e: RequestEvent): void {
    const t = this.now();
    const i = this.slot(t);
    this.requests[i]! += 1;
    if (e.decision === 'allow') this.allowed[i]! += 1;
    else this.denied[i]! += 1;
    if (e.status === 429) this.limited[i]! += 1;
    else if (e.status >= 500) this.errors[i]! += 1;
    const ms = e.latencyMs;
    const lat =
      ms <= LAT_BASE ? 0 : Math.min(LAT_BUCKETS - 1, Math.ceil(Math.log(ms / LAT_BASE) / LOG_FACTOR));
    this.latency[i * LAT_BUCKETS + lat]! += 1;
    if (e.decision !== 'allow') {
      let r = this.reasonIndex.get(e.reason);
      if (r === undefined) {
        if (this.reasonNames.length < MAX_REASONS) {
          r = this.reasonNames.length;
          this.reasonNames.push(e.reason);
          this.reasonIndex.set(e.reason, r);
        } else r = MAX_REASONS;
      }
      this.reasonCounts[i * (MAX_REASONS + 1) + r]! += 1;
      if (e.principal !== undefined) this.topPrincipals.add(e.principal.id, t);
      this.topIps.add(e.clientIp, t);
      this.topRoutes.add(e.route ?? '(none)', t);
    }
  }

  /** The last `minutes` (1 to 60) of buckets, oldest first, with totals and the top tables. */
  toJSON(minutes = 15): TimeSeriesJson {
    const count = Math.max(1, Math.min(BUCKETS, Math.ceil((minutes * 60_000) / BUCKET_MS)));
    const t = this.now();
    const last = t - (t % BUCKET_MS);
    const out: TimeSeriesJson = {
      bucketSeconds: BUCKET_MS / 1000,
      times: [],
      requests: [],
      allowed: [],
      denied: [],
      limited: [],
      errors: [],
      reasons: {},
      p50: [],
      p99: [],
      totals: { requests: 0, allowed: 0, denied: 0, limited: 0, errors: 0, p50: null, p99: null },
      top: {
        principals: this.topPrincipals.top(10),
        ips: this.topIps.top(10),
        routes: this.topRoutes.top(10),
      },
    };
    const names = [...this.reasonNames, 'other'];
    const reasons = names.map(() => [] as number[]);
    const hist = new Float64Array(LAT_BUCKETS);
    const all = new Float64Array(LAT_BUCKETS);
    for (let k = count - 1; k >= 0; k--) {
      const bucketStart = last - k * BUCKET_MS;
      const i = Math.floor(bucketStart / BUCKET_MS) % BUCKETS;
      const live = this.start[i] === bucketStart;
      const get = (a: Uint32Array) => (live ? a[i]! : 0);
      out.times.push(bucketStart / 1000);
      out.requests.push(get(this.requests));
      out.allowed.push(get(this.allowed));
      out.denied.push(get(this.denied));
      out.limited.push(get(this.limited));
      out.errors.push(get(this.errors));
      for (let r = 0; r < names.length; r++) {
        const index = r === names.length - 1 ? MAX_REASONS : r;
        reasons[r]!.push(live ? this.reasonCounts[i * (MAX_REASONS + 1) + index]! : 0);
      }
      hist.fill(0);
      if (live) {
        for (let b = 0; b < LAT_BUCKETS; b++) {
          hist[b] = this.latency[i * LAT_BUCKETS + b]!;
          all[b]! += hist[b]!;
        }
      }
      out.p50.push(percentile(hist, 0.5));
      out.p99.push(percentile(hist, 0.99));
    }
    names.forEach((name, r) => {
      if (reasons[r]!.some((v) => v > 0)) out.reasons[name] = reasons[r]!;
    });
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    out.totals = {
      requests: sum(out.requests),
      allowed: sum(out.allowed),
      denied: sum(out.denied),
      limited: sum(out.limited),
      errors: sum(out.errors),
      p50: percentile(all, 0.5),
      p99: percentile(all, 0.99),
    };
    return out;
  }
}

/** The upper bound of the histogram bucket holding quantile `q`, rounded; null when empty. */
function percentile(hist: Float64Array, q: number): number | null {
  let total = 0;
  for (const v of hist) total += v;
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let b = 0; b < hist.length; b++) {
    seen += hist[b]!;
    if (seen >= rank) return Math.round(latencyBound(b) * 100) / 100;
  }
  return Math.round(latencyBound(hist.length - 1) * 100) / 100;
}
