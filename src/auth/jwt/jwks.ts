/**
 * Where verification keys come from: a remote provider's JWKS (found by
 * discovery or configured), or the gateway's own issuer in-process.
 *
 * jose's `createRemoteJWKSet` is not used: its cooldown counts from any
 * fetch and it has no notion of "stale but still usable", while the gateway
 * needs (a) a refetch on an unknown `kid` at most once per cooldown, counted
 * separately from the periodic refresh, (b) cached keys that keep working
 * while the provider is down, and (c) a readiness signal. So this keeps a
 * small cache and hands jose a `createLocalJWKSet` built from each fetch.
 */
import {
  type CryptoKey,
  createLocalJWKSet,
  errors,
  type JSONWebKeySet,
  type JWK,
  type JWSHeaderParameters,
  type LocalJWKSet,
} from 'jose';
import { request } from 'undici';
import type { Logger } from '../../log.js';
import { AuthUnavailable } from '../types.js';

/** Largest discovery document or JWKS accepted; real ones are a few kilobytes. */
const MAX_DOCUMENT_BYTES = 512 * 1024;
/**
 * Backoff between attempts while no keys were ever obtained (a cold start with
 * the provider down): short, so JWT routes recover within seconds of the
 * provider's return, doubling up to the cap (and never beyond the cooldown).
 */
const COLD_RETRY_MIN_MS = 500;
const COLD_RETRY_MAX_MS = 4_000;

/** A source of verification keys for one provider. */
export interface KeySource {
  /** The key for a token's protected header; throws jose's `JWKSNoMatchingKey` when none fits. */
  resolve(header: JWSHeaderParameters): Promise<CryptoKey>;
  /** Whether a key with this `kid` is in the current set (a cached token whose key was withdrawn is re-checked). */
  hasKid(kid: string): boolean;
}

/** Counters shared with the verifier's `stats`. */
export interface FetchCounter {
  jwksFetches: number;
}

export interface RemoteKeySourceOptions {
  name: string;
  issuer: string;
  jwksUri: string | undefined;
  jwksCacheMs: number;
  jwksCooldownMs: number;
  jwksTimeoutMs: number;
  logger: Logger;
  now: () => number;
  stats: FetchCounter;
  /** Aborted when the verifier closes. */
  signal: AbortSignal;
}

/**
 * The JWKS of one remote provider, cached. Fetches never throw to callers:
 * `refresh()` logs failures and resolves, and callers look at what is held.
 */
export class RemoteKeySource implements KeySource {
  readonly #o: RemoteKeySourceOptions;
  #keys: LocalJWKSet | undefined;
  #kids: ReadonlySet<string> = new Set();
  /** jwks_uri found by discovery; forgotten when a fetch from it fails, so the next attempt rediscovers. */
  #discoveredUri: string | undefined;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #lastKidFetchAt = Number.NEGATIVE_INFINITY;
  #inflight: Promise<void> | undefined;
  /** Consecutive failed attempts; 0 after a success. */
  #failures = 0;
  /** A background retry after a failure (unref'd; cleared on close). */
  #retryTimer: NodeJS.Timeout | undefined;

  constructor(options: RemoteKeySourceOptions) {
    this.#o = options;
    options.signal.addEventListener('abort', () => this.#clearRetry(), { once: true });
  }

  /** Attempts that failed in a row (0 once keys were fetched again). */
  get consecutiveFailures(): number {
    return this.#failures;
  }

  /** Whether keys were ever obtained. */
  get hasKeys(): boolean {
    return this.#keys !== undefined;
  }

  hasKid(kid: string): boolean {
    return this.#kids.has(kid);
  }

  /** Fetches the keys now, sharing a fetch already in flight. Never rejects. */
  refresh(): Promise<void> {
    if (this.#inflight !== undefined) return this.#inflight;
    this.#lastAttemptAt = this.#o.now();
    const attempt = this.#fetchKeys().finally(() => {
      this.#inflight = undefined;
    });
    this.#inflight = attempt;
    return attempt;
  }

  /**
   * For readiness: when no keys were ever obtained, tries once more (at most
   * once per cooldown, so a polling /readyz cannot hammer a provider that is down).
   */
  async ensureKeys(): Promise<boolean> {
    if (this.#keys === undefined && this.#mayRetryFailure()) await this.refresh();
    else if (this.#inflight !== undefined) await this.#inflight;
    return this.#keys !== undefined;
  }

  async resolve(header: JWSHeaderParameters): Promise<CryptoKey> {
    const keys = await this.#currentKeys();
    try {
      return await keys(header);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      // An unknown kid may mean the provider rotated (OIDC Core §10.1.1): one
      // refetch, then none until the cooldown has passed, so tokens with
      // random kids cannot turn the gateway into a JWKS flooder.
      if (this.#inflight !== undefined) {
        await this.#inflight;
      } else {
        if (this.#o.now() - this.#lastKidFetchAt < this.#o.jwksCooldownMs) throw err;
        this.#lastKidFetchAt = this.#o.now();
        await this.refresh();
      }
      return (this.#keys ?? keys)(header);
    }
  }

  async #currentKeys(): Promise<LocalJWKSet> {
    if (this.#keys === undefined) {
      if (this.#inflight !== undefined) await this.#inflight;
      else if (this.#mayRetryFailure()) await this.refresh();
      if (this.#keys === undefined) throw new AuthUnavailable('jwks_unavailable');
      return this.#keys;
    }
    const now = this.#o.now();
    if (
      now - this.#fetchedAt >= this.#o.jwksCacheMs &&
      this.#inflight === undefined &&
      now - this.#lastAttemptAt >= Math.min(this.#o.jwksCooldownMs, this.#o.jwksCacheMs)
    ) {
      // Stale keys stay in use while the refresh runs (or fails): a provider
      // outage must not become a gateway outage for tokens already trusted.
      void this.refresh();
    }
    return this.#keys;
  }

  #mayRetryFailure(): boolean {
    return this.#o.now() - this.#lastAttemptAt >= this.#retryDelay();
  }

  /**
   * How long after a failed attempt the next may start: while no keys are
   * held, a short backoff (seconds); with keys held, the cooldown.
   */
  #retryDelay(): number {
    const { jwksCooldownMs } = this.#o;
    if (this.#keys !== undefined) return jwksCooldownMs;
    const backoff = COLD_RETRY_MIN_MS * 2 ** Math.max(0, Math.min(this.#failures - 1, 10));
    return Math.min(jwksCooldownMs, COLD_RETRY_MAX_MS, backoff);
  }

  #clearRetry(): void {
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  /**
   * After any failure the source retries by itself, so that it recovers
   * without waiting for a request (or a readiness probe) to ask: after the
   * short cold-start backoff while no keys are held, else after the cooldown.
   */
  #scheduleRetry(): void {
    this.#clearRetry();
    if (this.#o.signal.aborted) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (!this.#o.signal.aborted && this.#inflight === undefined) void this.refresh();
    }, this.#retryDelay());
    this.#retryTimer.unref();
  }

  async #fetchKeys(): Promise<void> {
    const { name, logger } = this.#o;
    let uri = this.#o.jwksUri ?? this.#discoveredUri;
    try {
      if (uri === undefined) {
        uri = await this.#discover();
        this.#discoveredUri = uri;
      }
      this.#o.stats.jwksFetches++;
      const document = await getJson(uri, this.#o.jwksTimeoutMs, this.#o.signal);
      const { set, dropped } = publicKeySet(document);
      if (dropped > 0) {
        logger.warn({ provider: name, dropped }, 'JWKS members that are not public keys were ignored');
      }
      // An empty set would make the provider look ready while accepting nothing.
      if (set.keys.length === 0) throw new Error('JWKS has no usable public keys');
      const keys = createLocalJWKSet(set);
      this.#keys = keys;
      this.#kids = new Set(set.keys.flatMap((k) => (typeof k.kid === 'string' ? [k.kid] : [])));
      this.#fetchedAt = this.#o.now();
      if (this.#failures > 0) {
        logger.info({ provider: name, failedAttempts: this.#failures }, 'JWKS fetched again');
      }
      this.#failures = 0;
      this.#clearRetry();
      logger.debug({ provider: name, keys: set.keys.length }, 'JWKS fetched');
    } catch (err) {
      if (this.#o.jwksUri === undefined) this.#discoveredUri = undefined;
      if (this.#o.signal.aborted) return;
      this.#failures++;
      this.#scheduleRetry();
      // One line per outage, then one every 10th attempt: a long outage does not flood the log.
      if (this.#failures > 1 && this.#failures % 10 !== 0) return;
      const cause = err instanceof Error ? err.message : String(err);
      if (this.#keys !== undefined) {
        logger.warn(
          { provider: name, cause, failedAttempts: this.#failures },
          'JWKS refresh failed; the cached keys stay in use until the provider answers again',
        );
      } else {
        logger.error(
          { provider: name, cause, failedAttempts: this.#failures },
          'JWKS fetch failed; tokens from this provider cannot be verified until it answers',
        );
      }
    }
  }

  /** OpenID Connect Discovery 1.0 §4. */
  async #discover(): Promise<string> {
    const { issuer } = this.#o;
    // §4.1: a terminating "/" of the issuer is removed before appending.
    const url = issuer.replace(/\/+$/, '') + '/.well-known/openid-configuration';
    const doc = await getJson(url, this.#o.jwksTimeoutMs, this.#o.signal);
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
      throw new Error('discovery document is not a JSON object');
    }
    const meta = doc as Record<string, unknown>;
    // §4.3: the issuer in the document MUST be identical to the one used to
    // find it; otherwise the keys would belong to someone else.
    if (meta.issuer !== issuer) throw new Error('discovery document names a different issuer');
    const jwksUri = meta.jwks_uri;
    if (typeof jwksUri !== 'string' || !/^https?:\/\//.test(jwksUri) || !URL.canParse(jwksUri)) {
      throw new Error('discovery document has no usable jwks_uri');
    }
    return jwksUri;
  }
}

/**
 * Keeps only public asymmetric keys. A symmetric (`oct`) key in a published
 * JWKS would be a secret known to everyone; a private member means the
 * provider leaked its key. Neither may ever verify a token.
 */
function publicKeySet(document: unknown): { set: JSONWebKeySet; dropped: number } {
  if (typeof document !== 'object' || document === null || !Array.isArray((document as JSONWebKeySet).keys)) {
    throw new Error('JWKS is not a JSON object with a "keys" array');
  }
  const all = (document as JSONWebKeySet).keys as unknown[];
  const keys = all.filter(
    (k): k is JWK =>
      typeof k === 'object' &&
      k !== null &&
      !Array.isArray(k) &&
      typeof (k as JWK).kty === 'string' &&
      (k as JWK).kty !== 'oct' &&
      !('d' in k),
  );
  return { set: { keys }, dropped: all.length - keys.length };
}

/**
 * GET a JSON document, settling within `timeoutMs` whatever the server does
 * (accepts and never answers, answers headers then stalls, trickles bytes).
 *
 * Three bounds, none of which can be garbage-collected while the request is
 * pending: undici's own `headersTimeout` and `bodyTimeout` (per request,
 * enforced by the connection), and an overall deadline: a timer this call
 * holds and clears. `AbortSignal.any([signal, AbortSignal.timeout(ms)])` is
 * not used: on Node 20 the composite signal holds its inputs weakly, so the
 * timeout signal can be collected before it fires and the fetch then hangs
 * for good (nodejs/node#57736).
 */
export async function getJson(url: string, timeoutMs: number, signal: AbortSignal): Promise<unknown> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal.reason);
  if (signal.aborted) throw signal.reason ?? new Error('aborted');
  signal.addEventListener('abort', onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`GET ${url} did not complete within ${timeoutMs} ms`);
      controller.abort(err);
      reject(err);
    }, timeoutMs);
    // The timer keeps its own reference: unref only lets the process exit, it is still fired.
    timer.unref();
  });
  // Rejections of the deadline are handled by the race below; this keeps an
  // early settlement from leaving it unhandled.
  deadline.catch(() => {});
  try {
    return await Promise.race([fetchJson(url, timeoutMs, controller.signal), deadline]);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

async function fetchJson(url: string, timeoutMs: number, signal: AbortSignal): Promise<unknown> {
  const res = await request(url, {
    method: 'GET',
    headers: { accept: 'application/json' },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    signal,
  });
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`GET ${url} answered ${res.statusCode}`);
  }
  const declared = Number(res.headers['content-length']);
  if (declared > MAX_DOCUMENT_BYTES) {
    res.body.destroy();
    throw new Error(`GET ${url} answered more than ${MAX_DOCUMENT_BYTES} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_DOCUMENT_BYTES) {
      res.body.destroy();
      throw new Error(`GET ${url} answered more than ${MAX_DOCUMENT_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new Error(`GET ${url} answered invalid JSON`);
  }
}

/**
 * The gateway's own issuer: keys come from `getKeySet()` at each
 * verification, because the issuer rotates them in-process.
 */
export class LocalKeySource implements KeySource {
  readonly #getKeySet: () => { keys: JWK[] };
  #lastJson = '';
  #keys: LocalJWKSet | undefined;
  #kids: ReadonlySet<string> = new Set();

  constructor(getKeySet: () => { keys: JWK[] }) {
    this.#getKeySet = getKeySet;
  }

  hasKid(kid: string): boolean {
    this.#current();
    return this.#kids.has(kid);
  }

  resolve(header: JWSHeaderParameters): Promise<CryptoKey> {
    return this.#current()(header);
  }

  /**
   * Rebuilds the jose key set only when the issuer's set changed, so that
   * imported CryptoKeys (and their import cost) are reused between requests.
   * Compared by content, not identity: an issuer may rotate in place.
   */
  #current(): LocalJWKSet {
    let set: { keys: JWK[] };
    try {
      set = this.#getKeySet();
    } catch (cause) {
      throw new AuthUnavailable('local_keys_unavailable', 503, { cause });
    }
    const json = JSON.stringify(set);
    if (json !== this.#lastJson || this.#keys === undefined) {
      const { set: publicSet } = publicKeySet(set);
      this.#keys = createLocalJWKSet(publicSet);
      this.#kids = new Set(publicSet.keys.flatMap((k) => (typeof k.kid === 'string' ? [k.kid] : [])));
      this.#lastJson = json;
    }
    return this.#keys;
  }
}
