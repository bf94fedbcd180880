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

  constructor(options: RemoteKeySourceOptions) {
    this.#o = options;
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
    return this.#o.now() - this.#lastAttemptAt >= this.#o.jwksCooldownMs;
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
      logger.debug({ provider: name, keys: set.keys.length }, 'JWKS fetched');
    } catch (err) {
      if (this.#o.jwksUri === undefined) this.#discoveredUri = undefined;
      if (this.#o.signal.aborted) return;
      const cause = err instanceof Error ? err.message : String(err);
      if (this.#keys !== undefined) {
        logger.warn(
          { provider: name, cause },
          'JWKS refresh failed; the cached keys stay in use until the provider answers again',
        );
      } else {
        logger.error(
          { provider: name, cause },
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

async function getJson(url: string, timeoutMs: number, signal: AbortSignal): Promise<unknown> {
  const res = await request(url, {
    method: 'GET',
    headers: { accept: 'application/json' },
    signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
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
