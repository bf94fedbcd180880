/**
 * JWT access-token verification for any OAuth 2.0 / OpenID Connect provider
 * (RFC 9068 access tokens, RFC 8725 best current practices), and for the
 * gateway's own issuer.
 *
 * Build once with {@link createJwtVerifier}, then call `verify` per request.
 * The order of checks is the order of cost: length, shape and headers on the
 * raw text, the verified-token cache, provider selection by `iss`, and only
 * then cryptography (jose `jwtVerify`) and claims.
 */
import { hash as digestOf } from 'node:crypto';
import {
  errors,
  type JWSHeaderParameters,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  type JWTVerifyResult,
  jwtVerify,
} from 'jose';
import type { JwtProviderSettings } from '../../config/types.js';
import { GatewayError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { LruCache } from '../../util/lru.js';
import {
  AuthFailure,
  AuthUnavailable,
  type BeforeVerify,
  type LocalJwtProvider,
  type Principal,
} from '../types.js';
import { type KeySource, LocalKeySource, RemoteKeySource } from './jwks.js';

/** Verifies JWT access tokens against the configured providers. */
export interface JwtVerifier {
  /**
   * Verifies a compact JWS access token and returns the Principal; throws
   * AuthFailure(reason) for a bad token, AuthUnavailable when keys cannot be
   * obtained at all.
   */
  verify(token: string, beforeVerify?: BeforeVerify): Promise<Principal>;
  /** Fetches discovery/JWKS for every remote provider once; failures are logged (not thrown) and retried later. */
  start(): Promise<void>;
  /** For /readyz: rejects (with a message naming the provider) when some remote provider has never had keys. */
  readiness(): Promise<void>;
  /** Aborts fetches in flight and empties the verified-token cache. */
  close(): void;
  /** Counters for metrics later: cache hits/misses, jwks fetches, failures by reason. */
  readonly stats: JwtVerifierStats;
}

/** Live counters; read them, never write them. */
export interface JwtVerifierStats {
  /** Tokens answered from the verified-token cache (no signature work). */
  cacheHits: number;
  /** Cache lookups that found nothing usable (counted only when the cache is on). */
  cacheMisses: number;
  /** Requests made for a JWKS (successful or not); discovery requests are not counted. */
  jwksFetches: number;
  /** Signature verifications performed (one per key tried). */
  signatureChecks: number;
  /** Rejections by reason (`token_expired`, `unknown_kid`, `jwks_unavailable`, …). */
  readonly failures: Record<string, number>;
}

/** Options of {@link createJwtVerifier}. */
export interface JwtVerifierOptions {
  /** Remote providers (from `auth.jwt.providers`). */
  providers: readonly JwtProviderSettings[];
  /** In-process providers: the gateway's own issuer. */
  local?: readonly LocalJwtProvider[];
  /** Verified tokens remembered by hash until their `exp`; 0 turns the cache off. */
  cacheSize: number;
  logger: Logger;
  /** The clock in milliseconds since the epoch; for tests. */
  now?: () => number;
}

/** A provider after normalisation: remote and local ones verify the same way. */
interface Provider {
  name: string;
  issuer: string;
  audience: string[];
  algorithms: ReadonlySet<string>;
  hmacKey: Uint8Array | undefined;
  clockSkewSeconds: number;
  requireTyp: boolean;
  maxTokenBytes: number;
  scopesClaim: string;
  rolesClaim: string | undefined;
  tenantClaim: string | undefined;
  /** Undefined for a provider that only has HS* algorithms (no public keys to fetch). */
  keys: KeySource | undefined;
  remote: RemoteKeySource | undefined;
  isRevoked: ((jti: string) => boolean | Promise<boolean>) | undefined;
}

interface CachedToken {
  principal: Principal;
  provider: Provider;
  kid: string | undefined;
  jti: string | undefined;
}

/**
 * Headers that tell the recipient where to find the key. The key must come
 * from the provider's configuration, never from the token (RFC 8725 §3.10,
 * CVE-2018-0114 for `jwk`): a token carrying one is rejected outright rather
 * than ignored, since no honest issuer needs them for access tokens and a
 * token that carries them is most likely probing for that bug. `x5c` and
 * `x5t` are not refused, because some providers (Azure AD, AD FS) send them
 * by habit; they are simply never read.
 */
const FORBIDDEN_HEADERS = ['jku', 'x5u', 'jwk'] as const;

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/**
 * Builds a verifier from settled config. Throws on a contradiction the
 * config schema cannot express (two providers with one issuer, HS* without
 * a secret), so a bad config never starts.
 */
export function createJwtVerifier(options: JwtVerifierOptions): JwtVerifier {
  const now = options.now ?? Date.now;
  const { logger } = options;
  const abort = new AbortController();
  const stats: JwtVerifierStats = {
    cacheHits: 0,
    cacheMisses: 0,
    jwksFetches: 0,
    signatureChecks: 0,
    failures: Object.create(null) as Record<string, number>,
  };
  // Keyed by the token's SHA-256, so the cache holds no bearer credential;
  // each entry expires at the token's exp, never later.
  const cache = options.cacheSize > 0 ? new LruCache<string, CachedToken>(options.cacheSize, now) : undefined;

  const providers: Provider[] = [
    ...options.providers.map((p) => remoteProvider(p, { logger, now, stats, signal: abort.signal })),
    ...(options.local ?? []).map(localProvider),
  ];
  const byIssuer = new Map<string, Provider>();
  for (const p of providers) {
    if (byIssuer.has(p.issuer)) {
      throw new Error(`JWT providers "${byIssuer.get(p.issuer)!.name}" and "${p.name}" share one issuer`);
    }
    byIssuer.set(p.issuer, p);
  }
  const largestToken = Math.max(0, ...providers.map((p) => p.maxTokenBytes));
  const remotes = providers.filter((p) => p.remote !== undefined);

  async function verifyToken(token: string, beforeVerify: BeforeVerify | undefined): Promise<Principal> {
    // Bound the work before hashing or decoding anything: only the per-IP
    // throttle runs before this, and an attacker picks the token's length.
    if (typeof token !== 'string') throw new AuthFailure('malformed');
    if (token.length > largestToken) throw new AuthFailure('token_too_large');
    // One-shot `crypto.hash` (same digest): no Hash object per request, about 0.5 µs less.
    const hash = digestOf('sha256', token, 'base64url');
    const credentialId = hash.slice(0, 16);
    const fail = (reason: string, cause?: unknown) =>
      new AuthFailure(reason, credentialId, cause === undefined ? undefined : { cause });

    if (cache !== undefined) {
      // peek: a hit marks the entry used without re-inserting it (no Map write per request).
      const hit = cache.peek(hash);
      if (hit !== undefined) {
        if (keyStillPublished(hit)) {
          await checkRevocation(hit.provider, hit.jti, fail);
          stats.cacheHits++;
          return hit.principal;
        }
        cache.delete(hash);
      }
      stats.cacheMisses++;
    }
    // Not known to be good: the brute-force guard may refuse before any decoding or cryptography.
    beforeVerify?.(credentialId);

    const parts = token.split('.');
    if (parts.length !== 3) throw fail('malformed');
    const [encodedHeader, encodedPayload, signature] = parts as [string, string, string];
    if (!isBase64url(encodedHeader) || !isBase64url(encodedPayload) || !isBase64url(signature)) {
      throw fail('malformed');
    }
    const header = decodeJsonObject(encodedHeader);
    const unverified = decodeJsonObject(encodedPayload);
    if (header === undefined || unverified === undefined) throw fail('malformed');

    const alg = header.alg;
    if (typeof alg !== 'string' || alg === '') throw fail('malformed');
    // RFC 8725 §3.1: "none" is never acceptable, in any spelling.
    if (alg.toLowerCase() === 'none') throw fail('alg_not_allowed');
    if (FORBIDDEN_HEADERS.some((name) => Object.hasOwn(header, name))) throw fail('forbidden_header');
    // RFC 7515 §4.1.11: no extension is understood here (jose knows only
    // b64, and a JWT never has an unencoded payload), so any crit is refused.
    if (header.crit !== undefined) throw fail('crit_unsupported');
    if (header.kid !== undefined && typeof header.kid !== 'string') throw fail('malformed');

    // RFC 8725 §3.8: the issuer decides which keys and rules apply. It is
    // read unverified here only to choose; jose checks it again after the signature.
    const iss = unverified.iss;
    const provider = typeof iss === 'string' ? byIssuer.get(iss) : undefined;
    if (provider === undefined) throw fail('unknown_issuer');
    if (token.length > provider.maxTokenBytes) throw fail('token_too_large');
    // RFC 8725 §3.1: each provider has its own allow-list.
    if (!provider.algorithms.has(alg)) throw fail('alg_not_allowed');
    if (signature === '') throw fail('bad_signature');

    let result: JWTVerifyResult;
    try {
      result = await verifyWithProvider(token, alg, provider);
    } catch (err) {
      if (err instanceof AuthFailure) throw fail(err.reason, err.cause);
      if (err instanceof AuthUnavailable) throw err;
      const reason = reasonFor(err);
      if (reason === 'invalid_token') {
        logger.warn(
          { provider: provider.name, cause: err instanceof Error ? err.message : String(err) },
          'JWT verification failed unexpectedly',
        );
      }
      throw fail(reason, err);
    }

    const claims = result.payload;
    // JSON.parse turns 1e400 into Infinity, which jose accepts as a number:
    // a token that never expires (RFC 7519 §2 NumericDate is a finite value).
    for (const claim of ['exp', 'nbf', 'iat'] as const) {
      if (claims[claim] !== undefined && !Number.isFinite(claims[claim])) throw fail('invalid_claim');
    }
    const nowSeconds = Math.floor(now() / 1000);
    // jose checks iat only together with maxTokenAge; a token issued in the
    // future is a clock or forgery problem either way (RFC 7519 §4.1.6).
    if (typeof claims.iat === 'number' && claims.iat > nowSeconds + provider.clockSkewSeconds) {
      throw fail('iat_in_future');
    }
    if (typeof claims.sub !== 'string' || claims.sub === '') throw fail('missing_sub');
    const jti = typeof claims.jti === 'string' ? claims.jti : undefined;
    await checkRevocation(provider, jti, fail);

    const principal = buildPrincipal(provider, claims);
    const expiresAt = (claims.exp as number) * 1000;
    if (cache !== undefined && expiresAt > now()) {
      const kid = typeof result.protectedHeader.kid === 'string' ? result.protectedHeader.kid : undefined;
      cache.set(hash, { principal, provider, kid, jti }, expiresAt);
    }
    return principal;
  }

  async function verifyWithProvider(
    token: string,
    alg: string,
    provider: Provider,
  ): Promise<JWTVerifyResult> {
    const verifyOptions: JWTVerifyOptions = {
      algorithms: [...provider.algorithms],
      issuer: provider.issuer,
      audience: provider.audience,
      clockTolerance: provider.clockSkewSeconds,
      currentDate: new Date(now()),
      // RFC 9068 §2.2: exp is REQUIRED; a token without it would never expire.
      requiredClaims: ['exp'],
    };
    // RFC 9068 §2.1 / RFC 8725 §3.11: explicit typing keeps ID tokens and
    // other JWTs from being replayed as access tokens. jose compares it
    // case-insensitively, with or without the "application/" prefix.
    if (provider.requireTyp) verifyOptions.typ = 'at+jwt';

    // The key is chosen by the algorithm family, never by the token's say:
    // HS* only ever meets the configured secret, and asymmetric algorithms
    // only keys from the provider's JWKS, so a public key can never be
    // used as an HMAC secret (RFC 8725 §2.1, §3.1).
    if (alg.startsWith('HS')) {
      if (provider.hmacKey === undefined) throw new AuthFailure('alg_not_allowed');
      stats.signatureChecks++;
      return jwtVerify(token, provider.hmacKey, verifyOptions);
    }
    const keys = provider.keys;
    if (keys === undefined) throw new AuthFailure('alg_not_allowed');
    const resolveKey: JWTVerifyGetKey = async (header: JWSHeaderParameters) => {
      const key = await keys.resolve(header);
      stats.signatureChecks++;
      return key;
    };
    try {
      return await jwtVerify(token, resolveKey, verifyOptions);
    } catch (err) {
      if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
      // No kid (or a kid shared by several keys): try each candidate. The
      // candidates are bounded by the provider's own JWKS.
      let failure: unknown = err;
      for await (const candidate of err) {
        try {
          stats.signatureChecks++;
          return await jwtVerify(token, candidate, verifyOptions);
        } catch (candidateError) {
          if (!(candidateError instanceof errors.JWSSignatureVerificationFailed)) throw candidateError;
          failure = candidateError;
        }
      }
      throw failure instanceof errors.JWKSMultipleMatchingKeys
        ? new errors.JWSSignatureVerificationFailed()
        : failure;
    }
  }

  function keyStillPublished(hit: CachedToken): boolean {
    // A key withdrawn from the provider's set takes its cached tokens with it.
    if (hit.kid === undefined || hit.provider.keys === undefined) return true;
    try {
      return hit.provider.keys.hasKid(hit.kid);
    } catch {
      return false;
    }
  }

  async function checkRevocation(
    provider: Provider,
    jti: string | undefined,
    fail: (reason: string, cause?: unknown) => AuthFailure,
  ): Promise<void> {
    if (provider.isRevoked === undefined) return;
    // An issuer that can revoke (RFC 7009) must be able to name the token.
    if (jti === undefined) throw fail('missing_jti');
    let revoked: boolean;
    try {
      revoked = await provider.isRevoked(jti);
    } catch (cause) {
      throw new AuthUnavailable('revocation_unavailable', 503, { cause });
    }
    if (revoked) throw fail('token_revoked');
  }

  return {
    stats,
    async verify(token, beforeVerify) {
      try {
        return await verifyToken(token, beforeVerify);
      } catch (err) {
        // The brute-force guard's refusal, as it is.
        if (err instanceof GatewayError) throw err;
        const reason =
          err instanceof AuthFailure || err instanceof AuthUnavailable ? err.reason : 'invalid_token';
        stats.failures[reason] = (stats.failures[reason] ?? 0) + 1;
        throw err instanceof AuthFailure || err instanceof AuthUnavailable
          ? err
          : new AuthFailure('invalid_token', undefined, { cause: err });
      }
    },
    async start() {
      await Promise.all(remotes.map((p) => p.remote!.refresh()));
    },
    async readiness() {
      const missing: string[] = [];
      await Promise.all(
        remotes.map(async (p) => {
          if (!(await p.remote!.ensureKeys())) missing.push(p.name);
        }),
      );
      if (missing.length > 0) {
        throw new Error(`JWT provider ${missing.map((n) => `"${n}"`).join(', ')} has no signing keys yet`);
      }
    },
    close() {
      abort.abort();
      cache?.clear();
    },
  };
}

function remoteProvider(
  p: JwtProviderSettings,
  deps: {
    logger: Logger;
    now: () => number;
    stats: { jwksFetches: number };
    signal: AbortSignal;
  },
): Provider {
  const hmacAlgorithms = p.algorithms.filter((a) => a.startsWith('HS'));
  if (hmacAlgorithms.length > 0 && (p.hmacSecret === undefined || p.hmacSecret === '')) {
    throw new Error(`JWT provider "${p.name}": ${hmacAlgorithms.join(', ')} needs an hmac secret`);
  }
  // A provider with only HS* algorithms has no public keys: nothing to discover or fetch.
  const remote =
    hmacAlgorithms.length < p.algorithms.length
      ? new RemoteKeySource({
          name: p.name,
          issuer: p.issuer,
          jwksUri: p.jwksUri,
          jwksCacheMs: p.jwksCacheMs,
          jwksCooldownMs: p.jwksCooldownMs,
          jwksTimeoutMs: p.jwksTimeoutMs,
          ...deps,
        })
      : undefined;
  return {
    name: p.name,
    issuer: p.issuer,
    audience: [...p.audience],
    algorithms: new Set(p.algorithms),
    hmacKey: hmacAlgorithms.length > 0 ? new TextEncoder().encode(p.hmacSecret) : undefined,
    clockSkewSeconds: p.clockSkewSeconds,
    requireTyp: p.requireTyp,
    maxTokenBytes: p.maxTokenBytes,
    scopesClaim: p.scopesClaim,
    rolesClaim: p.rolesClaim,
    tenantClaim: p.tenantClaim,
    keys: remote,
    remote,
    isRevoked: undefined,
  };
}

function localProvider(p: LocalJwtProvider): Provider {
  if (p.algorithms.some((a) => a.startsWith('HS'))) {
    throw new Error(`local JWT provider "${p.name}": only asymmetric algorithms are supported`);
  }
  return {
    name: p.name,
    issuer: p.issuer,
    audience: [...p.audience],
    algorithms: new Set(p.algorithms),
    hmacKey: undefined,
    clockSkewSeconds: p.clockSkewSeconds,
    requireTyp: p.requireTyp ?? false,
    maxTokenBytes: p.maxTokenBytes,
    scopesClaim: p.scopesClaim,
    rolesClaim: undefined,
    tenantClaim: p.tenantClaim,
    keys: new LocalKeySource(() => p.getKeySet()),
    remote: undefined,
    isRevoked: p.isRevoked?.bind(p),
  };
}

/** Strict base64url as used by JWS (RFC 7515 §2): no padding, and no length that cannot decode. */
function isBase64url(segment: string): boolean {
  return segment.length % 4 !== 1 && BASE64URL.test(segment);
}

function decodeJsonObject(segment: string): Record<string, unknown> | undefined {
  if (segment === '') return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Stable snake_case reasons for jose's errors. */
function reasonFor(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'token_expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'exp':
        return err.reason === 'missing' ? 'missing_exp' : 'invalid_claim';
      case 'nbf':
        return err.reason === 'check_failed' ? 'token_not_yet_valid' : 'invalid_claim';
      case 'aud':
        return 'wrong_audience';
      case 'iss':
        return 'wrong_issuer';
      case 'typ':
        return 'bad_typ';
      default:
        return 'invalid_claim';
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return 'alg_not_allowed';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad_signature';
  if (err instanceof errors.JWKSNoMatchingKey) return 'unknown_kid';
  if (err instanceof errors.JOSENotSupported) {
    return /Extension Header Parameter/.test(err.message) ? 'crit_unsupported' : 'alg_not_allowed';
  }
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'malformed';
  return 'invalid_token';
}

/** RFC 9068 §2.2.3: scope is space-separated; some providers (Azure AD `scp`, Okta) send a list. */
function readScopes(value: unknown): string[] {
  if (typeof value === 'string') return [...new Set(value.split(' ').filter((s) => s !== ''))];
  return readStrings(value);
}

function readStrings(value: unknown): string[] {
  if (typeof value === 'string') return value === '' ? [] : [value];
  if (Array.isArray(value)) {
    return [...new Set(value.filter((v): v is string => typeof v === 'string' && v !== ''))];
  }
  return [];
}

/**
 * A claim by dotted path (`realm_access.roles`). A claim whose own name
 * contains dots (Auth0's `https://example.com/roles`) is found first, as is.
 * Only own properties are followed, so `__proto__` leads nowhere.
 */
function readPath(claims: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  let current: unknown = claims;
  for (const segment of path.split('.')) {
    if (typeof current !== 'object' || current === null || !Object.hasOwn(current, segment)) {
      return undefined;
    }
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

function buildPrincipal(provider: Provider, claims: JWTPayload): Principal {
  const tenant = provider.tenantClaim === undefined ? undefined : readPath(claims, provider.tenantClaim);
  // Frozen, because a cached Principal is shared by every request that
  // presents the same token: no stage may alter what the next one sees.
  return deepFreeze({
    kind: 'jwt',
    id: claims.sub as string,
    provider: `jwt:${provider.name}`,
    scopes: readScopes(readPath(claims, provider.scopesClaim)),
    roles: provider.rolesClaim === undefined ? [] : readStrings(readPath(claims, provider.rolesClaim)),
    tenant: typeof tenant === 'string' && tenant !== '' ? tenant : undefined,
    claims,
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
