/**
 * The built-in OAuth 2.0 authorization server for machine clients: the
 * client credentials grant (RFC 6749 §4.4) with `client_secret_basic` and
 * `client_secret_post`, JWT access tokens (RFC 9068) signed with ES256,
 * authorization server metadata (RFC 8414), a JWKS (RFC 7517) and token
 * revocation (RFC 7009). The gateway accepts the tokens it issues through
 * {@link Issuer.provider}.
 *
 * The endpoints answer with OAuth JSON error objects (RFC 6749 §5.2) rather
 * than problem+json, because that is what OAuth client libraries parse.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createLocalJWKSet, type JWK, type JWTPayload, jwtVerify, SignJWT } from 'jose';
import type { BruteForceGuard, LocalJwtProvider } from '../auth/types.js';
import type { IssuerSettings } from '../config/types.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { ClusterLimiter, type LimitTransport } from '../ratelimit/cluster-limiter.js';
import { type Limiter, MemoryLimiter } from '../ratelimit/limiter.js';
import type { LimitSettings } from '../ratelimit/types.js';
import { recordRevocation } from '../revocation/feed.js';
import type { Db } from '../store/types.js';
import { ensureLocalSecret } from '../util/local-secret.js';
import { LruCache } from '../util/lru.js';
import { CLIENT_ID_PATTERN, ClientRepository, isScopeToken, type OAuthClient } from './clients.js';
import {
  type FormParams,
  findClientCredentials,
  invalidClient,
  invalidRequest,
  OAuthError,
  type PresentedClient,
  readForm,
  sendJson,
  sendOAuthError,
} from './http.js';
import { parseMasterKey, SIGNING_ALG, SigningKeyRing } from './keys.js';
import { RevocationList } from './revocations.js';

export {
  ClientRepository,
  type ClientRevocation,
  type ClientVerification,
  hashClientSecret,
  type NewClient,
  type OAuthClient,
  verifyClientSecret,
} from './clients.js';
export { IssuerError, type IssuerErrorCode } from './errors.js';
export { MAX_FORM_BYTES } from './http.js';
export {
  decryptPrivateJwk,
  encryptPrivateJwk,
  KEY_PUBLISH_AHEAD_MS,
  KEY_RETIRE_MARGIN_MS,
  parseMasterKey,
  SigningKeyRing,
} from './keys.js';
export { RevocationList } from './revocations.js';

/**
 * How often an instance re-reads keys and revocations from the store, rotates
 * and retires keys, and purges expired revocations. It bounds how long a token
 * revoked on another instance is still accepted here.
 */
export const ISSUER_SYNC_INTERVAL_MS = 10_000;
/** Name of the generated master key file in `<dataDir>/secrets/`, when none is configured. */
export const MASTER_KEY_FILE = 'issuer-master-key';
/** The claim carrying the client's tenant, when it has one. */
export const TENANT_CLAIM = 'tenant';
/** The `typ` header of issued tokens (RFC 9068 §2.1). */
export const ACCESS_TOKEN_TYPE = 'at+jwt';

/** Per-request facts the gateway passes to an issuer endpoint. */
export interface IssuerRequestContext {
  /** The client's address, as resolved by the gateway (trusted proxies applied). */
  clientIp: string;
  requestId: string;
}

/** One endpoint of the issuer. */
export interface IssuerRoute {
  method: 'GET' | 'POST';
  /** An exact path; matched before the configured routes. */
  path: string;
  handle(req: IncomingMessage, res: ServerResponse, ctx: IssuerRequestContext): Promise<void>;
}

/** The running issuer. */
export interface Issuer {
  /** The endpoints, for the gateway to mount on the public listener before route matching. */
  readonly routes: ReadonlyArray<IssuerRoute>;
  /** The gateway's own tokens as one more JWT provider for the verifier. */
  readonly provider: LocalJwtProvider;
  /**
   * Re-reads keys and revocations, rotates or retires keys when due and
   * purges expired revocations. A timer calls it every
   * {@link ISSUER_SYNC_INTERVAL_MS}; call it to apply a change at once.
   */
  sync(): Promise<void>;
  /** Stops the timer. The store stays open: it belongs to the caller. */
  close(): void;
}

/** Options of {@link createIssuer}. */
export interface CreateIssuerOptions {
  settings: IssuerSettings;
  /** A migrated store. */
  db: Db;
  /** Where the generated master key lives when `settings.masterKey` is not given. */
  dataDir: string;
  logger: Logger;
  /** Brute-force protection of client authentication. */
  guard?: BruteForceGuard;
  /** The clock, in ms (tests move it). */
  now?: () => number;
  /**
   * In cluster mode: the number of workers and the channel to the primary,
   * which then counts every client's tokens for the whole cluster.
   */
  cluster?: { workers: number; transport: LimitTransport } | undefined;
}

/** Client secrets verified on this instance, remembered (as an HMAC) at most this long and this many. */
const PROOF_TTL_MS = 10 * 60_000;
const PROOF_CACHE_SIZE = 10_000;

/** Paths of the endpoints, below the issuer URL's path. */
const TOKEN_PATH = '/oauth2/token';
const REVOCATION_PATH = '/oauth2/revoke';
const JWKS_PATH = '/oauth2/jwks';
const METADATA_PATH = '/.well-known/oauth-authorization-server';

/** Public documents may be cached briefly; well under the key publication lead time. */
const PUBLIC_CACHE = { 'cache-control': 'public, max-age=60' };

/**
 * Starts the issuer: resolves the master key, loads (or creates) the signing
 * keys, loads the revocations and starts the sync timer (unref'd).
 *
 * @throws IssuerError `issuer.invalid_master_key` or
 * `issuer.master_key_mismatch` with a message fit for the operator.
 */
export async function createIssuer(options: CreateIssuerOptions): Promise<Issuer> {
  const { settings, db, logger, guard } = options;
  const now = options.now ?? Date.now;
  const issuer = settings.issuer.replace(/\/+$/, '');
  const base = new URL(issuer).pathname.replace(/\/+$/, '');
  const masterKey = parseMasterKey(settings.masterKey ?? ensureLocalSecret(options.dataDir, MASTER_KEY_FILE));
  const keys = await SigningKeyRing.open({
    db,
    masterKey,
    keyRotationMs: settings.keyRotationMs,
    tokenTtlMs: settings.tokenTtlMs,
    logger,
    now,
  });
  const revocations = await RevocationList.open(db, now);
  const clients = new ClientRepository(db, { now, tokenTtlMs: settings.tokenTtlMs });
  const ttlSeconds = Math.max(1, Math.floor(settings.tokenTtlMs / 1000));

  const metadata = Object.freeze({
    issuer,
    token_endpoint: `${issuer}${TOKEN_PATH}`,
    jwks_uri: `${issuer}${JWKS_PATH}`,
    revocation_endpoint: `${issuer}${REVOCATION_PATH}`,
    grant_types_supported: ['client_credentials'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    // RFC 8414 §2 requires the field; there is no authorization endpoint, so no response type.
    response_types_supported: [],
    // scopes_supported is left out on purpose (RFC 8414 §2 makes it optional): the union of
    // every client's scopes would list the protected API's permissions to anyone.
  });

  let verifierKeys: { source: { keys: JWK[] }; jwks: ReturnType<typeof createLocalJWKSet> } | undefined;
  const localJwks = () => {
    const source = keys.keySet();
    if (verifierKeys?.source !== source) verifierKeys = { source, jwks: createLocalJWKSet(source) };
    return verifierKeys.jwks;
  };

  // Secrets this instance has verified, as an HMAC under a key that lives only in
  // this process: the owner's correct secret is accepted again without scrypt and
  // without asking the brute-force guard, so others' failures never lock it out.
  const proofKey = randomBytes(32);
  const proofs = new LruCache<string, { mac: Buffer; hash: string }>(PROOF_CACHE_SIZE, now);
  const proofOf = (id: string, secret: string) =>
    createHmac('sha256', proofKey).update(id).update('\0').update(secret).digest();

  /** Authenticates the client, with the brute-force guard around the secret check. */
  async function authenticate(
    presented: PresentedClient,
    ctx: IssuerRequestContext,
    endpoint: string,
  ): Promise<OAuthClient> {
    // Only a well-formed id is logged or counted: a client that swapped its id and
    // secret must not get its secret written to the log.
    const claimedId = CLIENT_ID_PATTERN.test(presented.id) ? presented.id : undefined;
    if (claimedId !== undefined) {
      const known = proofs.get(claimedId);
      if (known !== undefined && timingSafeEqual(known.mac, proofOf(claimedId, presented.secret))) {
        // Still there, not revoked, same secret: one indexed query.
        const client = await clients.current(claimedId, known.hash);
        if (client !== undefined) {
          guard?.recordSuccess(ctx.clientIp, claimedId);
          return client;
        }
        proofs.delete(claimedId);
      }
    }
    guard?.check(ctx.clientIp, claimedId);
    const result = await clients.verify(presented.id, presented.secret);
    if (!result.ok) {
      guard?.recordFailure(ctx.clientIp, claimedId, result.reason);
      logger.warn(
        {
          requestId: ctx.requestId,
          clientIp: ctx.clientIp,
          clientId: claimedId ?? '(malformed)',
          method: presented.method,
          reason: result.reason,
          endpoint,
        },
        'issuer: client authentication failed',
      );
      throw invalidClient(`${endpoint}: ${result.reason}`);
    }
    guard?.recordSuccess(ctx.clientIp, claimedId);
    if (claimedId !== undefined) {
      proofs.set(
        claimedId,
        { mac: proofOf(claimedId, presented.secret), hash: result.secretHash },
        now() + PROOF_TTL_MS,
      );
    }
    return result.client;
  }

  // Tokens per client id, counted only once the client has proved its secret: a burst from one
  // client is limited, and nobody who merely knows a client id can use up that client's budget
  // (failed attempts are the brute-force guard's). Per instance; in cluster mode the primary
  // counts for every worker, as it does the routes' in-memory limits.
  const tokenLimit: LimitSettings = {
    type: 'rate',
    // Not a name the config can give a limit (they are identifiers), so no table is shared.
    name: '(issuer) tokens per client',
    key: [],
    mode: 'enforce',
    count: settings.rateLimit.count,
    periodMs: settings.rateLimit.periodMs,
    burst: settings.rateLimit.count * 2,
  };
  const tokenLimiter: Limiter & { close?: () => void } = options.cluster
    ? new ClusterLimiter(
        options.cluster.transport,
        new MemoryLimiter(PROOF_CACHE_SIZE, now, options.cluster.workers),
      )
    : new MemoryLimiter(PROOF_CACHE_SIZE, now);
  async function admitTokenFor(clientId: string): Promise<void> {
    const verdict = await tokenLimiter.consume([{ limit: tokenLimit, key: clientId }], 1);
    if (!verdict.allowed) {
      throw new OAuthError(
        429,
        'temporarily_unavailable',
        'too many token requests for this client; retry after the delay in Retry-After',
        { 'retry-after': String(Math.max(1, Math.ceil(verdict.outcomes[0]!.retryAfterMs / 1000))) },
        'rate_limit.exceeded',
        `client ${clientId} over auth.issuer.rate_limit`,
      );
    }
  }

  async function issueToken(form: FormParams, req: IncomingMessage, ctx: IssuerRequestContext) {
    const grantType = form.get('grant_type');
    if (grantType === undefined) throw invalidRequest('grant_type is required');
    if (grantType !== 'client_credentials') {
      throw new OAuthError(400, 'unsupported_grant_type', 'only the client_credentials grant is supported');
    }
    const requested = form
      .get('scope')
      ?.split(' ')
      .filter((s) => s !== '');
    if (requested?.some((s) => !isScopeToken(s))) {
      throw new OAuthError(400, 'invalid_scope', 'the scope parameter is malformed');
    }
    const client = await authenticate(findClientCredentials(req, form), ctx, 'token');
    await admitTokenFor(client.id);

    // Least privilege, RFC 6749 §3.3: the grant is the requested scopes the client is
    // allowed, and the requested ones it is not are dropped silently — the response's
    // `scope` says what was granted. Only a request of which nothing can be granted is
    // refused (invalid_scope): a token with no scope is of no use and hides the mistake.
    // No scope requested means every scope the client is allowed (the §3.3 default).
    const granted =
      requested === undefined
        ? [...client.scopes]
        : [...new Set(requested)].filter((s) => client.scopes.includes(s));
    if (granted.length === 0) {
      throw new OAuthError(400, 'invalid_scope', 'none of the requested scopes is allowed for this client');
    }

    const { kid, key } = keys.signingKey();
    const iat = Math.floor(now() / 1000);
    const jti = randomBytes(16).toString('base64url');
    const scope = granted.join(' ');
    const claims: JWTPayload = { client_id: client.id, scope };
    if (client.tenant !== undefined) claims[TENANT_CLAIM] = client.tenant;
    // RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti; sub is the client itself (no user).
    const accessToken = await new SignJWT(claims)
      .setProtectedHeader({ alg: SIGNING_ALG, typ: ACCESS_TOKEN_TYPE, kid })
      .setIssuer(issuer)
      .setSubject(client.id)
      .setAudience(settings.audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ttlSeconds)
      .setJti(jti)
      .sign(key);
    logger.info(
      { requestId: ctx.requestId, clientId: client.id, scope, jti, kid, expiresIn: ttlSeconds },
      'issuer: access token issued',
    );
    return { access_token: accessToken, token_type: 'Bearer', expires_in: ttlSeconds, scope };
  }

  async function revokeToken(form: FormParams, req: IncomingMessage, ctx: IssuerRequestContext) {
    // RFC 7009 §2.1: token is required; token_type_hint may be ignored (there is one kind of token).
    const token = form.get('token');
    if (token === undefined) throw invalidRequest('token is required');
    const client = await authenticate(findClientCredentials(req, form), ctx, 'revocation');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, localJwks(), {
        issuer,
        audience: settings.audience,
        algorithms: [SIGNING_ALG],
        typ: ACCESS_TOKEN_TYPE,
        currentDate: new Date(now()),
      }));
    } catch {
      // RFC 7009 §2.2: an invalid, expired or foreign token is answered 200 all the same.
      logger.info(
        { requestId: ctx.requestId, clientId: client.id },
        'issuer: revocation of an unknown token',
      );
      return;
    }
    if (
      payload.client_id !== client.id ||
      typeof payload.jti !== 'string' ||
      typeof payload.exp !== 'number'
    ) {
      // RFC 7009 §2.1 lets the server refuse a token issued to another client; like
      // oidc-provider we answer 200 without revoking, so the answer tells nothing.
      logger.warn(
        { requestId: ctx.requestId, clientId: client.id, jti: payload.jti },
        'issuer: a client tried to revoke a token issued to another client',
      );
      return;
    }
    await revocations.add(payload.jti, client.id, payload.exp * 1000);
    // And on the kill switch's feed, so every instance refuses it within a second.
    await recordRevocation(
      db,
      {
        kind: 'jti',
        subject: payload.jti,
        issuer,
        expiresAt: payload.exp * 1000,
        actor: client.id,
        reason: 'RFC 7009 revocation',
      },
      now,
    );
    logger.info({ requestId: ctx.requestId, clientId: client.id, jti: payload.jti }, 'issuer: token revoked');
  }

  /** Runs a form endpoint: body, checks, and every failure as an OAuth error object. */
  function formEndpoint(
    name: string,
    run: (form: FormParams, req: IncomingMessage, ctx: IssuerRequestContext) => Promise<unknown>,
  ): IssuerRoute['handle'] {
    return async (req, res, ctx) => {
      try {
        if (/(?:^|[?&])client_secret=/.test(req.url?.split('?')[1] ?? '')) {
          // RFC 6749 §2.3.1: credentials only in the body or the header, never in the URL (logs keep URLs).
          throw invalidRequest('client credentials must not be sent in the URL');
        }
        const body = await run(await readForm(req), req, ctx);
        sendJson(res, 200, body, ctx.requestId);
      } catch (err) {
        sendOAuthError(res, toOAuthError(err, name, ctx), ctx.requestId);
      }
    };
  }

  function toOAuthError(err: unknown, endpoint: string, ctx: IssuerRequestContext): OAuthError {
    if (err instanceof OAuthError) return err;
    if (err instanceof GatewayError && err.status === 429) {
      // The brute-force lockout: its status and Retry-After, in OAuth's error format.
      return new OAuthError(
        429,
        'temporarily_unavailable',
        'too many failed attempts; retry after the delay in Retry-After',
        err.headers ?? {},
        err.code,
        err.internal,
      );
    }
    logger.error({ err, requestId: ctx.requestId, endpoint }, 'issuer: request failed');
    return new OAuthError(500, 'server_error', 'the request could not be completed');
  }

  const routes: IssuerRoute[] = [
    { method: 'POST', path: `${base}${TOKEN_PATH}`, handle: formEndpoint('token', issueToken) },
    { method: 'POST', path: `${base}${REVOCATION_PATH}`, handle: formEndpoint('revocation', revokeToken) },
    {
      method: 'GET',
      path: `${base}${JWKS_PATH}`,
      handle: async (_req, res, ctx) =>
        sendJson(res, 200, keys.keySet(), ctx.requestId, {
          ...PUBLIC_CACHE,
          'content-type': 'application/jwk-set+json',
        }),
    },
    {
      method: 'GET',
      // RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.
      path: `${METADATA_PATH}${base}`,
      handle: async (_req, res, ctx) => sendJson(res, 200, metadata, ctx.requestId, PUBLIC_CACHE),
    },
  ];

  const provider: LocalJwtProvider = Object.freeze({
    name: 'portcullis-issuer',
    issuer,
    audience: Object.freeze([settings.audience]),
    algorithms: Object.freeze([SIGNING_ALG]),
    getKeySet: () => keys.keySet(),
    isRevoked: (jti: string) => revocations.has(jti),
    scopesClaim: 'scope',
    tenantClaim: TENANT_CLAIM,
    requireTyp: true,
    clockSkewSeconds: 30,
    maxTokenBytes: 8 * 1024,
  });

  let running: Promise<void> | undefined;
  const sync = (): Promise<void> => {
    running ??= (async () => {
      try {
        // Independent: a failure of one must not hold back the other.
        const results = await Promise.allSettled([keys.sync(), revocations.sync()]);
        for (const r of results) if (r.status === 'rejected') throw r.reason;
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
  const timer = setInterval(() => {
    sync().catch((err: unknown) => logger.warn({ err }, 'issuer: sync with the store failed; will retry'));
  }, ISSUER_SYNC_INTERVAL_MS);
  timer.unref();

  logger.info(
    { issuer, tokenEndpoint: metadata.token_endpoint, kid: keys.signingKey().kid },
    'issuer: ready',
  );
  return Object.freeze({
    routes: Object.freeze(routes),
    provider,
    sync,
    close: () => {
      clearInterval(timer);
      tokenLimiter.close?.();
    },
  });
}
