/**
 * Brute-force protection: failed authentications are counted per client IP
 * and per credential id; past `maxFailures` within `window` the source is
 * locked out, for a time that doubles on each repeat up to `maxLockout`.
 * Checked before any cryptographic work, so a locked-out attacker costs a
 * map lookup. Memory is bounded by an LRU per table.
 */
import type { AuthSettings } from '../config/types.js';
import { gatewayError } from '../errors.js';
import { LruCache } from '../util/lru.js';
import type { BruteForceGuard } from './types.js';

interface Counter {
  failures: number;
  windowStart: number;
  lockedUntil: number;
  /** How many lockouts so far: the next one lasts lockout × 2^strikes. */
  strikes: number;
  lastFailure: number;
}

const MAX_TRACKED = 100_000;

export interface BruteForceStats {
  lockouts: number;
  rejected: number;
}

export function createBruteForceGuard(
  settings: AuthSettings['bruteForce'],
  options: {
    now?: () => number;
    maxTracked?: number;
    onLockout?: (key: string, untilMs: number) => void;
  } = {},
): BruteForceGuard & { readonly stats: BruteForceStats } {
  const now = options.now ?? Date.now;
  const tables = {
    ip: new LruCache<string, Counter>(options.maxTracked ?? MAX_TRACKED, now),
    credential: new LruCache<string, Counter>(options.maxTracked ?? MAX_TRACKED, now),
  };
  const stats: BruteForceStats = { lockouts: 0, rejected: 0 };

  const locked = (table: LruCache<string, Counter>, key: string | undefined, t: number): number => {
    if (key === undefined) return 0;
    const c = table.get(key);
    return c !== undefined && c.lockedUntil > t ? c.lockedUntil - t : 0;
  };

  const fail = (table: LruCache<string, Counter>, key: string | undefined, t: number, label: string) => {
    if (key === undefined) return;
    let c = table.get(key);
    // Strikes are forgiven after a quiet period as long as the longest lockout.
    if (c === undefined || t - c.lastFailure > settings.maxLockoutMs * 2) {
      c = { failures: 0, windowStart: t, lockedUntil: 0, strikes: 0, lastFailure: t };
    }
    if (t - c.windowStart > settings.windowMs) {
      c.failures = 0;
      c.windowStart = t;
    }
    c.failures++;
    c.lastFailure = t;
    if (c.failures >= settings.maxFailures && c.lockedUntil <= t) {
      const duration = Math.min(settings.lockoutMs * 2 ** c.strikes, settings.maxLockoutMs);
      c.lockedUntil = t + duration;
      c.strikes++;
      c.failures = 0;
      c.windowStart = t;
      stats.lockouts++;
      options.onLockout?.(`${label}:${key}`, c.lockedUntil);
    }
    table.set(key, c);
  };

  return {
    stats,
    check(clientIp, credentialId) {
      if (!settings.enabled) return;
      const t = now();
      const wait = Math.max(locked(tables.ip, clientIp, t), locked(tables.credential, credentialId, t));
      if (wait > 0) {
        stats.rejected++;
        throw gatewayError('authLocked', {
          headers: { 'retry-after': String(Math.ceil(wait / 1000)) },
          internal:
            credentialId === undefined
              ? `ip ${clientIp} locked out`
              : `credential ${credentialId} locked out`,
        });
      }
    },
    recordFailure(clientIp, credentialId) {
      if (!settings.enabled) return;
      const t = now();
      fail(tables.ip, clientIp, t, 'ip');
      fail(tables.credential, credentialId, t, 'credential');
    },
    recordSuccess(_clientIp, credentialId) {
      // The IP's count is kept on purpose: a stuffing attack interleaves a few
      // successes with many failures. The credential's owner got it right.
      if (credentialId !== undefined) tables.credential.delete(credentialId);
    },
  };
}
