/**
 * The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-08
 * and later): both are Structured Field Lists of quoted policy names with
 * parameters.
 *
 *     RateLimit-Policy: "per_ip";q=20;w=2, "daily";q=10000;w=86400
 *     RateLimit: "per_ip";r=17;t=1, "daily";r=9950;t=41230
 *
 * `q` is the quota (the burst, for a rate limit) and `w` the window in
 * seconds over which it is restored; `r` is what remains and `t` the
 * seconds until it is fully restored (for a quota: until the period ends).
 */
import type { LimitSettings, QuotaSettings } from './types.js';

/** An sf-string: printable ASCII, with `"` and `\` escaped. */
export function sfString(text: string): string {
  return `"${text.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

const QUOTA_WINDOW_S = { day: 86_400, month: 2_592_000 } as const;

/** The RateLimit-Policy item of a rate limit or quota. */
export function policyItem(entry: LimitSettings | QuotaSettings): string {
  if (entry.type === 'quota')
    return `${sfString(entry.name)};q=${entry.limit};w=${QUOTA_WINDOW_S[entry.period]}`;
  const windowS = Math.max(1, Math.ceil((entry.burst * entry.periodMs) / entry.count / 1000));
  return `${sfString(entry.name)};q=${entry.burst};w=${windowS}`;
}

/** The RateLimit item: `quoted` is the already quoted policy name. */
export function limitItem(quoted: string, remaining: number, resetMs: number): string {
  return `${quoted};r=${remaining};t=${Math.max(0, Math.ceil(resetMs / 1000))}`;
}
