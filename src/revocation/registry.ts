/**
 * The token kill switch in memory: which tokens are revoked, answered in
 * O(1) on every request (cache hits included) from a handful of Map lookups,
 * never by I/O. Fed from the store by src/revocation/feed.ts.
 *
 * A revocation names one of:
 * - `jti`: one token, by its id;
 * - `sub`: every token of a subject issued up to the revocation;
 * - `client`: every token of an OAuth client (`client_id`, else `azp`; the
 *   built-in issuer's tokens carry `client_id`) issued up to the revocation;
 * - `before`: every token issued before a time.
 * Each is limited to one issuer (`iss`) or, with issuer `''`, covers all.
 * "Issued" is the token's `iat`; a token without `iat` cannot show it was
 * issued after a revocation, so any `sub`, `client` or `before` revocation
 * that names it covers it.
 */
import type { Principal } from '../contracts/principal.js';

export type TokenRevocationKind = 'jti' | 'sub' | 'client' | 'before';

/** One row of `token_revocations` as the registry applies it. */
export interface RevocationEntry {
  kind: TokenRevocationKind;
  /** The jti, subject or client id; `''` for `before`. */
  subject: string;
  /** `''`: any issuer. */
  issuer: string;
  /** Epoch ms: the revocation's time (for `before`, the cut-off). */
  revokedAt: number;
  /** Epoch ms: when every token it covers has expired. */
  expiresAt: number;
}

interface Cut {
  /** Tokens issued at or before this (epoch ms) are revoked. */
  at: number;
  expiresAt: number;
}

const key = (issuer: string, subject: string) => `${issuer}\n${subject}`;

export class RevocationRegistry {
  readonly #now: () => number;
  readonly #jti = new Map<string, number>();
  readonly #sub = new Map<string, Cut>();
  readonly #client = new Map<string, Cut>();
  readonly #before = new Map<string, Cut>();

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Applies a revocation; a later one for the same target extends it, never shortens it. */
  apply(e: RevocationEntry): void {
    if (e.expiresAt <= this.#now()) return;
    const k = key(e.issuer, e.subject);
    if (e.kind === 'jti') {
      this.#jti.set(k, Math.max(this.#jti.get(k) ?? 0, e.expiresAt));
      return;
    }
    const table = e.kind === 'sub' ? this.#sub : e.kind === 'client' ? this.#client : this.#before;
    const old = table.get(k);
    table.set(k, {
      at: Math.max(old?.at ?? 0, e.revokedAt),
      expiresAt: Math.max(old?.expiresAt ?? 0, e.expiresAt),
    });
  }

  /** Whether the token behind `principal` is revoked. O(1): at most eight Map lookups. */
  isRevoked(principal: Principal): boolean {
    if (principal.kind !== 'jwt' && principal.kind !== 'client') return false;
    const claims = principal.claims;
    const t = this.#now();
    const iss = typeof claims.iss === 'string' ? claims.iss : '';
    const jti = claims.jti;
    if (
      typeof jti === 'string' &&
      (this.#live(this.#jti.get(key(iss, jti)), t) || this.#live(this.#jti.get(key('', jti)), t))
    ) {
      return true;
    }
    if (this.#sub.size === 0 && this.#client.size === 0 && this.#before.size === 0) return false;
    const iat =
      typeof claims.iat === 'number' && Number.isFinite(claims.iat)
        ? claims.iat * 1000
        : Number.NEGATIVE_INFINITY;
    const covers = (cut: Cut | undefined, strict: boolean) =>
      cut !== undefined && cut.expiresAt > t && (strict ? iat < cut.at : iat <= cut.at);
    if (
      covers(this.#sub.get(key(iss, principal.id)), false) ||
      covers(this.#sub.get(key('', principal.id)), false)
    ) {
      return true;
    }
    const client =
      typeof claims.client_id === 'string'
        ? claims.client_id
        : typeof claims.azp === 'string'
          ? claims.azp
          : undefined;
    if (
      client !== undefined &&
      (covers(this.#client.get(key(iss, client)), false) || covers(this.#client.get(key('', client)), false))
    ) {
      return true;
    }
    return covers(this.#before.get(key(iss, '')), true) || covers(this.#before.get(key('', '')), true);
  }

  #live(expiresAt: number | undefined, t: number): boolean {
    return expiresAt !== undefined && expiresAt > t;
  }

  /** Forgets expired revocations. */
  prune(): void {
    const t = this.#now();
    for (const [k, exp] of this.#jti) if (exp <= t) this.#jti.delete(k);
    for (const table of [this.#sub, this.#client, this.#before]) {
      for (const [k, cut] of table) if (cut.expiresAt <= t) table.delete(k);
    }
  }

  /** Revocations held (for metrics and tests). */
  get size(): number {
    return this.#jti.size + this.#sub.size + this.#client.size + this.#before.size;
  }
}
