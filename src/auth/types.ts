/**
 * The contract between the authenticate stage and each authentication
 * method (JWT, introspection, API key, mTLS).
 */
export type { Principal } from '../contracts/principal.js';

/**
 * A credential was presented but is not acceptable. `reason` is internal
 * (logs, audit, metrics label): the client only ever sees a generic 401.
 */
export class AuthFailure extends Error {
  constructor(
    /** Stable snake_case reason, e.g. `token_expired`, `unknown_kid`, `key_revoked`. */
    readonly reason: string,
    /** A non-secret id of the credential (API key id, token `jti` or hash prefix), for brute-force counting. */
    readonly credentialId?: string,
    options?: { cause?: unknown },
  ) {
    super(reason, options);
    this.name = 'AuthFailure';
  }
}

/** The credential could not be checked because a dependency failed (JWKS or introspection down). */
export class AuthUnavailable extends Error {
  constructor(
    readonly reason: string,
    /** Status to answer: 503 by default; 401 where configured. */
    readonly status: 401 | 503 = 503,
    options?: { cause?: unknown },
  ) {
    super(reason, options);
    this.name = 'AuthUnavailable';
  }
}

/**
 * A JWT provider whose keys are local (the built-in issuer): no discovery,
 * no JWKS fetch. The verifier treats it like any configured provider,
 * selected by `iss`.
 */
export interface LocalJwtProvider {
  name: string;
  issuer: string;
  audience: readonly string[];
  algorithms: readonly string[];
  /** The current public keys (JWKS), including previous keys still within their tokens' lifetime. */
  getKeySet(): { keys: import('jose').JWK[] };
  /** Whether a token id has been revoked (RFC 7009). */
  isRevoked?(jti: string): boolean | Promise<boolean>;
  scopesClaim: string;
  /** Claim with the tenant id, when tokens carry one. */
  tenantClaim?: string;
  /** Require the RFC 9068 `typ: at+jwt` header. */
  requireTyp?: boolean;
  clockSkewSeconds: number;
  maxTokenBytes: number;
}

/**
 * Brute-force protection shared by every place that checks a credential
 * (see src/auth/brute-force.ts for the model). `check` runs only before the
 * expensive verification of a credential not already known to be good, and
 * throws a 429 GatewayError (with Retry-After) while the source, the pair of
 * source and credential, or the credential's throttle says so.
 */
export interface BruteForceGuard {
  check(clientIp: string, credentialId: string | undefined): void;
  /** A failed verification; with a `reason`, only guess-like ones count. */
  recordFailure(clientIp: string, credentialId: string | undefined, reason?: string): void;
  recordSuccess(clientIp: string, credentialId: string | undefined): void;
}

/**
 * Called by a verifier right before the expensive part of checking a
 * credential that is not already known to be good (signature, store lookup,
 * introspection request, scrypt); throws to refuse without doing it. Never
 * called before a success answered from a cache of verified credentials.
 */
export type BeforeVerify = (credentialId: string | undefined) => void;
