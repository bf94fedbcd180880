/**
 * GCRA, the generic cell rate algorithm (ITU-T I.371; the "virtual
 * scheduling" form): a token bucket kept as one number per key, the
 * theoretical arrival time (TAT) of the next request if the client sent at
 * exactly the sustained rate.
 *
 * With emission interval `I = period / count` and bucket size `burst`, a
 * request of cost `c` at time `now` is admitted when
 *
 *     max(TAT, now) + c·I − now ≤ burst·I
 *
 * and then TAT becomes `max(TAT, now) + c·I`. So over any span of length W
 * at most `burst + W / I` units are admitted — there is no window boundary
 * at which twice the limit gets through. A request costing more than the
 * burst (possible only in the fail-open fallback, whose bursts are divided)
 * is admitted when the bucket is full.
 *
 * The same arithmetic runs in the Redis script (`redis.ts`), in
 * microseconds there and milliseconds here.
 */

export interface GcraResult {
  allowed: boolean;
  /** The TAT to store when the request is admitted. */
  tat: number;
  /** Units left in the bucket after this decision. */
  remaining: number;
  /** Time until the bucket is full again. */
  resetMs: number;
  /** When refused: time until this request would be admitted. 0 when admitted. */
  retryAfterMs: number;
}

/** Float slack: TATs are sums of fractional intervals. */
const EPSILON = 1e-6;

/**
 * One decision. `tat` is the stored TAT (undefined for a key never seen, or
 * forgotten); all times are in the same unit (ms here).
 */
export function gcra(
  tat: number | undefined,
  now: number,
  intervalMs: number,
  burst: number,
  cost: number,
): GcraResult {
  const start = tat === undefined || tat < now ? now : tat;
  const next = start + cost * intervalMs;
  const tolerance = Math.max(burst, cost) * intervalMs;
  if (next - now > tolerance + EPSILON) {
    return {
      allowed: false,
      tat: start,
      remaining: Math.max(0, Math.floor((burst * intervalMs - (start - now)) / intervalMs + EPSILON)),
      resetMs: start - now,
      retryAfterMs: next - now - tolerance,
    };
  }
  return {
    allowed: true,
    tat: next,
    remaining: Math.max(0, Math.floor((burst * intervalMs - (next - now)) / intervalMs + EPSILON)),
    resetMs: next - now,
    retryAfterMs: 0,
  };
}
