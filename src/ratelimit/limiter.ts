/**
 * The contract of a rate-limit backend, and the in-memory one.
 *
 * One call decides every rate limit of a request at once: the enforced ones
 * all-or-nothing (a request refused by one takes nothing from the others),
 * each shadow one on its own (it counts what it would have admitted, and
 * never refuses).
 */
import { performance } from 'node:perf_hooks';
import { LruCache } from '../util/lru.js';
import { gcra } from './gcra.js';
import type { LimitSettings } from './types.js';

export interface LimitCheck {
  limit: LimitSettings;
  key: string;
}

export interface LimitOutcome {
  allowed: boolean;
  remaining: number;
  resetMs: number;
  retryAfterMs: number;
}

export interface Verdict {
  /** Whether every enforced limit admitted the request. */
  allowed: boolean;
  /** One per check, in order. */
  outcomes: LimitOutcome[];
  /** Set when the verdict came from the fail-open fallback rather than the shared backend. */
  fallback?: boolean;
}

export interface Limiter {
  consume(checks: readonly LimitCheck[], cost: number): Verdict | Promise<Verdict>;
}

/**
 * Rate limits on this instance: one LRU table of TATs per limit, each of at
 * most `maxKeys` keys, so a flood of distinct clients costs bounded memory
 * (the least recently seen key is forgotten, which only ever gives that key
 * a full bucket again). An entry expires at its TAT, when it would be a full
 * bucket anyway. To get its own key forgotten early a client needs
 * `maxKeys` other keys of the same limit to be seen between two of its
 * requests: with a per-IP key, that many other addresses, each of which
 * has its own full bucket anyway. The number of tables is the number of
 * configured limits.
 *
 * `divisor` > 1 makes every limit that many times smaller (rate and burst):
 * the fail-open fallback of the Redis backend, where each of n instances
 * gets 1/n of the shared limit.
 */
export class MemoryLimiter implements Limiter {
  private readonly tables = new Map<string, LruCache<string, number>>();

  constructor(
    private readonly maxKeys: number,
    private readonly now: () => number = () => performance.now(),
    private readonly divisor = 1,
  ) {}

  /** Keys held, over every limit. */
  get size(): number {
    let n = 0;
    for (const t of this.tables.values()) n += t.size;
    return n;
  }

  private table(name: string): LruCache<string, number> {
    let t = this.tables.get(name);
    if (t === undefined) {
      t = new LruCache<string, number>(this.maxKeys, this.now);
      this.tables.set(name, t);
    }
    return t;
  }

  consume(checks: readonly LimitCheck[], cost: number): Verdict {
    const now = this.now();
    const outcomes: LimitOutcome[] = new Array(checks.length);
    const tats: number[] = new Array(checks.length);
    let allowed = true;
    for (let i = 0; i < checks.length; i++) {
      const { limit, key } = checks[i]!;
      const interval = (limit.periodMs / limit.count) * this.divisor;
      const burst = this.divisor === 1 ? limit.burst : Math.max(1, Math.ceil(limit.burst / this.divisor));
      // peek/update: one lookup each and no Map write per request (measured with the jwt-rl bench).
      const r = gcra(this.table(limit.name).peek(key), now, interval, burst, cost);
      tats[i] = r.tat;
      outcomes[i] = r;
      if (!r.allowed && limit.mode === 'enforce') allowed = false;
    }
    for (let i = 0; i < checks.length; i++) {
      const o = outcomes[i]!;
      if (!o.allowed) continue;
      const { limit, key } = checks[i]!;
      if (allowed || limit.mode === 'shadow') {
        this.table(limit.name).update(key, tats[i]!, tats[i]!);
      } else {
        // Refused by another limit: this one keeps its units.
        const interval = (limit.periodMs / limit.count) * this.divisor;
        o.remaining += cost;
        o.resetMs -= cost * interval;
      }
    }
    return { allowed, outcomes };
  }
}
