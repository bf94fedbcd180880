/**
 * Brute-force protection that only stops guessing.
 *
 * - **What counts:** only failures that look like guessing ({@link isGuess}):
 *   a wrong secret for a known id, an unknown key id, a bad signature, an
 *   unknown issuer or kid, a malformed credential. A failure that needed a
 *   valid proof to reach (an expired or not-yet-valid token from a known
 *   issuer, a revoked key presented with its right secret) never counts:
 *   whoever sent it was not guessing.
 * - **What it keys on:** the client's IP key (IPv6: its `listen.ipv6_prefix`
 *   network, see `ipKey`) together with the credential id, locked out past
 *   `maxFailures`; the IP key alone, locked out past the higher
 *   `maxFailuresPerIp`; and the credential id alone, past the much higher
 *   `maxFailuresPerCredential`, which only *throttles* verification of that
 *   id to `throttleRate` per second — it never locks it out.
 * - **What is never refused:** the guard is asked ({@link BruteForceGuard.check})
 *   only before the expensive verification of a credential that is not
 *   already known to be good. A cached, verified token, an API key whose
 *   cached digest matches, or a client secret this instance has verified
 *   before pass without asking, so someone else's failures cannot lock their
 *   owner out; lockout stops the work spent on unknown credentials.
 *
 * Lockouts double on each repeat, up to `maxLockout`. Counters are per
 * instance (each instance stops the guessing it sees), kept across reloads.
 * The workers of one cluster are one instance: with `peers`, each worker
 * passes the failures and successes it counts to the others, which count
 * them too, so a lockout holds in every worker within the IPC delay
 * (milliseconds) and the thresholds count the guesses of all workers.
 *
 * **Memory:** three LRU tables (IP, IP + credential, credential), each of at
 * most {@link MAX_TRACKED} entries, so a flood of distinct clients or
 * made-up credential ids costs bounded memory. An entry is only made by a
 * counted failure; every `check` of a locked IP or pair marks it recently
 * used, so a client that keeps trying stays at the young end. Eviction
 * forgets the least recently *failing* source: to reset its own lockout an
 * attacker must make {@link MAX_TRACKED} other sources fail in between,
 * which needs that many other IP keys (its own IP is locked after
 * `maxFailuresPerIp`), i.e. an attacker who already has that many addresses
 * and so that many fresh allowances anyway. The per-credential throttle is
 * likewise reset only by failures on {@link MAX_TRACKED} other ids, which
 * take `MAX_TRACKED / maxFailuresPerIp` (2000 by default) locked-out IPs.
 */
import type { AuthSettings } from '../config/types.js';
import { gatewayError } from '../errors.js';
import { DEFAULT_IPV6_PREFIX, ipKey } from '../http/client-ip.js';
import { LruCache } from '../util/lru.js';
import type { BruteForceGuard } from './types.js';

/**
 * Failure reasons that look like guessing. Everything else (expired, not yet
 * valid, wrong audience, revoked with the right secret, token binding…) was
 * reached with a genuine proof, so it is not counted.
 */
export const GUESS_REASONS: ReadonlySet<string> = new Set([
  // JWT: anything that fails before or at the signature.
  'malformed',
  'token_too_large',
  'unknown_issuer',
  'alg_not_allowed',
  'forbidden_header',
  'crit_unsupported',
  'bad_signature',
  'unknown_kid',
  'invalid_token',
  'unsupported_token',
  // Introspection: the provider does not know the token.
  'token_inactive',
  // API keys.
  'malformed_key',
  'key_unknown',
  'key_mismatch',
  // Built-in issuer clients (a revoked client answers the same whatever the secret).
  'unknown_client',
  'wrong_secret',
  'client_revoked',
]);

/** Whether a failure reason counts towards a lockout. */
export function isGuess(reason: string): boolean {
  return GUESS_REASONS.has(reason);
}

interface Counter {
  failures: number;
  windowStart: number;
  lockedUntil: number;
  /** How many lockouts so far: the next one lasts lockout × 2^strikes. */
  strikes: number;
  lastFailure: number;
}

interface Throttle {
  failures: number;
  windowStart: number;
  /** Start of the current one-second slot, and verifications let through in it. */
  slot: number;
  allowed: number;
}

/** Entries per table (IP, IP + credential, credential) at most: about 15 MB each when full. */
export const MAX_TRACKED = 100_000;

export interface BruteForceStats {
  lockouts: number;
  rejected: number;
  throttled: number;
  /** Failures not counted because they were not guesses. */
  ignored: number;
}

/** A counted failure (`f`) or a success (`s`) of one worker: client IP, credential id or null. */
export type GuardEvent = [kind: 'f' | 's', clientIp: string, credentialId: string | null];

/** The other workers of a cluster (`src/cluster.ts`), for guards that count together. */
export interface GuardPeers {
  publish(events: GuardEvent[]): void;
  /** Calls `handler` with the events other workers publish, until the returned function is called. */
  subscribe(handler: (events: GuardEvent[]) => void): () => void;
}

export function createBruteForceGuard(
  settings: AuthSettings['bruteForce'],
  options: {
    now?: () => number;
    maxTracked?: number;
    /** `listen.ipv6_prefix`. */
    ipv6Prefix?: number;
    onLockout?: (key: string, untilMs: number) => void;
    /** In cluster mode: the other workers, whose failures count here too. */
    peers?: GuardPeers | undefined;
  } = {},
): BruteForceGuard & {
  readonly stats: BruteForceStats;
  /** Entries held per table (memory checks). */
  tracked(): { ip: number; pair: number; credential: number };
} {
  const now = options.now ?? Date.now;
  const prefix = options.ipv6Prefix ?? DEFAULT_IPV6_PREFIX;
  const max = options.maxTracked ?? MAX_TRACKED;
  const tables = {
    pair: new LruCache<string, Counter>(max, now),
    ip: new LruCache<string, Counter>(max, now),
    credential: new LruCache<string, Throttle>(max, now),
  };
  const stats: BruteForceStats = { lockouts: 0, rejected: 0, throttled: 0, ignored: 0 };
  const pairKey = (ip: string, credentialId: string) => `${ip}\n${credentialId}`;

  const locked = (table: LruCache<string, Counter>, key: string, t: number): number => {
    const c = table.get(key);
    return c !== undefined && c.lockedUntil > t ? c.lockedUntil - t : 0;
  };

  const fail = (
    table: LruCache<string, Counter>,
    key: string,
    threshold: number,
    t: number,
    label: string,
    remote: boolean,
  ) => {
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
    if (c.failures >= threshold && c.lockedUntil <= t) {
      const duration = Math.min(settings.lockoutMs * 2 ** c.strikes, settings.maxLockoutMs);
      c.lockedUntil = t + duration;
      c.strikes++;
      c.failures = 0;
      c.windowStart = t;
      // Reported by the worker whose own failure crossed the threshold, not once per worker.
      if (!remote) {
        stats.lockouts++;
        options.onLockout?.(`${label}:${key.replace('\n', ' ')}`, c.lockedUntil);
      }
    }
    table.set(key, c);
  };

  const refuse = (wait: number, internal: string): never => {
    stats.rejected++;
    throw gatewayError('authLocked', {
      headers: { 'retry-after': String(Math.max(1, Math.ceil(wait / 1000))) },
      internal,
    });
  };

  const countFailure = (clientIp: string, credentialId: string | undefined, remote: boolean): void => {
    const t = now();
    const ip = ipKey(clientIp, prefix);
    fail(tables.ip, ip, settings.maxFailuresPerIp, t, 'ip', remote);
    if (credentialId === undefined) return;
    fail(tables.pair, pairKey(ip, credentialId), settings.maxFailures, t, 'pair', remote);
    let th = tables.credential.get(credentialId);
    if (th === undefined || t - th.windowStart > settings.windowMs) {
      th = { failures: 0, windowStart: t, slot: 0, allowed: 0 };
    }
    th.failures++;
    tables.credential.set(credentialId, th);
  };
  const countSuccess = (clientIp: string, credentialId: string | undefined): void => {
    // The IP's count is kept on purpose: a stuffing attack interleaves a few
    // successes with many failures; so is the credential's throttle, which
    // counts everyone's failures. The owner's own pair is forgiven.
    if (credentialId !== undefined) tables.pair.delete(pairKey(ipKey(clientIp, prefix), credentialId));
  };

  // What this worker counted, sent to the others once per event-loop turn.
  const peers = options.peers;
  let outbox: GuardEvent[] = [];
  const share = (event: GuardEvent): void => {
    if (peers === undefined) return;
    if (outbox.length === 0) {
      setImmediate(() => {
        const events = outbox;
        outbox = [];
        peers.publish(events);
      });
    }
    outbox.push(event);
  };
  peers?.subscribe((events) => {
    if (!settings.enabled || !Array.isArray(events)) return;
    for (const e of events) {
      if (!Array.isArray(e) || typeof e[1] !== 'string') continue;
      const credentialId = typeof e[2] === 'string' ? e[2] : undefined;
      if (e[0] === 'f') countFailure(e[1], credentialId, true);
      else if (e[0] === 's') countSuccess(e[1], credentialId);
    }
  });

  return {
    stats,
    tracked: () => ({ ip: tables.ip.size, pair: tables.pair.size, credential: tables.credential.size }),
    check(clientIp, credentialId) {
      if (!settings.enabled) return;
      const t = now();
      const ip = ipKey(clientIp, prefix);
      const ipWait = locked(tables.ip, ip, t);
      if (ipWait > 0) refuse(ipWait, `ip ${ip} locked out`);
      if (credentialId === undefined) return;
      const pairWait = locked(tables.pair, pairKey(ip, credentialId), t);
      if (pairWait > 0) refuse(pairWait, `credential ${credentialId} locked out for ip ${ip}`);
      const th = tables.credential.get(credentialId);
      if (th === undefined || th.failures < settings.maxFailuresPerCredential) return;
      if (t - th.windowStart > settings.windowMs) return;
      // Under attack from many sources: a few verifications a second still go
      // through, so the owner's correct proof is slowed at worst, never refused.
      if (t - th.slot >= 1000) {
        th.slot = t;
        th.allowed = 0;
      }
      if (th.allowed < settings.throttleRate) {
        th.allowed++;
        return;
      }
      stats.throttled++;
      refuse(1000 - (t - th.slot), `credential ${credentialId} throttled`);
    },
    recordFailure(clientIp, credentialId, reason) {
      if (!settings.enabled) return;
      if (reason !== undefined && !isGuess(reason)) {
        stats.ignored++;
        return;
      }
      countFailure(clientIp, credentialId, false);
      share(['f', clientIp, credentialId ?? null]);
    },
    recordSuccess(clientIp, credentialId) {
      countSuccess(clientIp, credentialId);
      // Only a success that forgives something is worth telling the other workers.
      if (credentialId !== undefined) share(['s', clientIp, credentialId]);
    },
  };
}
