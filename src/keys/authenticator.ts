/**
 * Checks a presented API key: format and checksum first (no I/O), then the
 * stored record by key id (through a small cache), then the secret's HMAC in
 * constant time, then revocation and expiry.
 *
 * Imported keys (`portcullis keys import`, accepted with
 * `auth.api_keys.imported_keys: true`) have no `pcl_` format: a presented
 * value that is not a well-formed Portcullis key but has an imported key's
 * shape ({@link isImportableKey}) is looked up by its hash alone (its id is
 * {@link importedKeyId}), and guesses at them fall under a stricter
 * brute-force count ({@link IMPORTED_KEYS_CREDENTIAL}). Anything else is
 * still refused as malformed with no I/O.
 *
 * Caching and revocation: `invalidate(id)` drops a key from this instance's
 * cache, so a revoke or rotate made through the same process (admin API) is
 * seen by the very next request. Another instance (or a `portcullis keys`
 * command, which is another process) is not told: it keeps serving a
 * cached, since-revoked key for at most `cacheTtlMs` after it last looked it
 * up. Expiry needs no invalidation: it is checked at every use.
 */
import { timingSafeEqual } from 'node:crypto';
import { AuthFailure, AuthUnavailable, type BeforeVerify, type Principal } from '../auth/types.js';
import type { ApiKeySettings } from '../config/types.js';
import type { Db } from '../store/types.js';
import { ensureLocalSecret } from '../util/local-secret.js';
import { LruCache } from '../util/lru.js';
import { isImportableKey, parseApiKey } from './format.js';
import {
  type ApiKeyCredential,
  createApiKeyStore,
  digestSecret,
  importedKeyId,
  type WarningLogger,
} from './store.js';

/**
 * The credential id that failed guesses at imported keys are counted under
 * by the brute-force guard. An imported key has no public id to count per
 * key (its id is a hash of the whole key, different for every guess), and
 * no checksum to refuse noise before a lookup, so every guess counts
 * against one shared id: an IP is locked out after
 * `auth.brute_force.max_failures` of them (not the higher
 * `max_failures_per_ip`), and past `max_failures_per_credential` from all
 * IPs the lookups of unknown imported keys are throttled to `throttle_rate`
 * per second. Keys already verified (cached) still pass.
 */
export const IMPORTED_KEYS_CREDENTIAL = 'imported-keys';

/** Options of {@link createApiKeyAuthenticator}. */
export interface ApiKeyAuthenticatorOptions {
  settings: Pick<ApiKeySettings, 'cacheSize' | 'cacheTtlMs'> & { importedKeys?: boolean | undefined };
  /** The resolved pepper (see {@link resolvePepper}). */
  pepper: string;
  /** A store migrated to include `api_keys`. */
  db: Db;
  logger: WarningLogger;
  /** Epoch milliseconds; injectable for tests. */
  now?: () => number;
}

/** Counters since the authenticator was built, and the cache's current size. */
export interface ApiKeyAuthenticatorStats {
  cacheHits: number;
  cacheMisses: number;
  /** Queries made to the store for a key id. */
  storeLookups: number;
  /** Cached known keys. */
  cachedKeys: number;
  /** Cached ids that the store does not know (negative entries). */
  cachedUnknown: number;
}

/** Built once per configuration; `authenticate` is the per-request function. */
export interface ApiKeyAuthenticator {
  /**
   * Returns the key's principal.
   *
   * @throws AuthFailure `malformed_key` (bad shape or checksum: the store is
   * not consulted), or `key_unknown`, `key_mismatch`, `key_revoked`,
   * `key_expired`, each with the key id as `credentialId`; `key_route_not_allowed`
   * when the key is restricted to routes and `route` (the route's name) is not one.
   * @throws AuthUnavailable `key_store_unavailable` (503) when the store fails.
   */
  authenticate(raw: string, beforeVerify?: BeforeVerify, route?: string): Promise<Principal>;
  /**
   * The key id (`key_…`) of a well-formed key with a correct checksum, or
   * undefined; no I/O, so the brute-force guard can count per key before any
   * lookup or cryptography.
   */
  keyId(raw: string): string | undefined;
  /** Forgets what this instance cached about key `id` (after a revoke or rotate). */
  invalidate(id: string): void;
  /** A snapshot of the counters. */
  readonly stats: ApiKeyAuthenticatorStats;
  /** Resolves when pending last-used writes have finished (before closing the store). */
  settle(): Promise<void>;
}

interface KnownEntry {
  known: true;
  fetchedAt: number;
  digest: Buffer;
  revoked: boolean;
  expiresAt: number | undefined;
  /** The route names the key is restricted to; undefined: every route. */
  routes: ReadonlySet<string> | undefined;
  principal: Principal;
}

interface UnknownEntry {
  known: false;
  fetchedAt: number;
}

type Entry = KnownEntry | UnknownEntry;

/**
 * The pepper to key digests with: the configured one, or else the one
 * generated on first use in `<dataDir>/secrets/api-key-pepper` (the embedded
 * default; production configs must give one by reference). The gateway and
 * `portcullis keys` both call this, so they agree.
 */
export function resolvePepper(settings: ApiKeySettings | undefined, dataDir: string): string {
  return settings?.pepper ?? ensureLocalSecret(dataDir, 'api-key-pepper');
}

function toEntry(credential: ApiKeyCredential | undefined, fetchedAt: number): Entry {
  if (!credential) return { known: false, fetchedAt };
  const { record, digest } = credential;
  return {
    known: true,
    fetchedAt,
    digest,
    revoked: record.revokedAt !== undefined,
    expiresAt: record.expiresAt,
    routes: record.routes === undefined ? undefined : new Set(record.routes),
    principal: Object.freeze({
      kind: 'api_key',
      id: record.id,
      scopes: Object.freeze([...record.scopes]),
      roles: Object.freeze([]),
      claims: Object.freeze({ name: record.name }),
      tenant: record.tenant,
    }),
  };
}

/**
 * Builds the API key check.
 *
 * The cache holds at most `cacheSize` entries (0 turns it off), each for
 * `cacheTtlMs`, least recently used evicted first. Unknown ids are cached
 * too, so repeating a made-up key costs one query per ttl; they take at most
 * a quarter of the cache and are evicted before any known key, so a flood of
 * made-up ids displaces at most a quarter of the known keys.
 *
 * The negative entries are what keeps a repeated made-up id from costing a
 * query each time; a distinct made-up id still costs one, and what bounds
 * those is the brute-force guard, asked (`beforeVerify`) before every store
 * lookup, so an IP locked out after `max_failures_per_ip` unknown ids gets
 * no further lookup. A negative entry can hide a key created afterwards with
 * the same id for at most `cacheTtlMs`; in practice never, since ids are
 * random and only known once the key is created.
 */
export function createApiKeyAuthenticator(options: ApiKeyAuthenticatorOptions): ApiKeyAuthenticator {
  const { settings, pepper, logger } = options;
  const importedKeys = settings.importedKeys === true;
  const now = options.now ?? Date.now;
  const store = createApiKeyStore(options.db, { pepper, logger, now });
  const size = Math.max(0, Math.floor(settings.cacheSize));
  const unknownCap = size === 0 ? 0 : Math.max(1, Math.floor(size / 4));
  const ttl = settings.cacheTtlMs;
  // Two LRU tables so that made-up ids are evicted before any known key;
  // each entry expires `ttl` after it was read from the store.
  const known = new LruCache<string, KnownEntry>(size, now);
  const unknown = new LruCache<string, UnknownEntry>(unknownCap, now);
  const inflight = new Map<string, Promise<Entry>>();
  // Bumped by invalidate(): a lookup that started before it must not cache what it read.
  let epoch = 0;
  const counters = { cacheHits: 0, cacheMisses: 0, storeLookups: 0 };

  function cached(id: string): Entry | undefined {
    return known.get(id) ?? unknown.get(id);
  }

  function remember(id: string, entry: Entry): void {
    if (size === 0) return;
    known.delete(id);
    unknown.delete(id);
    const expiresAt = entry.fetchedAt + ttl;
    if (entry.known) {
      while (known.size + unknown.size >= size) if (!unknown.evictOldest()) break;
      known.set(id, entry, expiresAt);
    } else {
      // At most `unknownCap` (the table evicts its own oldest), and a known key only makes room when the cache is full.
      if (unknown.size < unknownCap && known.size + unknown.size >= size) known.evictOldest();
      unknown.set(id, entry, expiresAt);
    }
  }

  function load(id: string): Promise<Entry> {
    const running = inflight.get(id);
    if (running) return running;
    const started = epoch;
    counters.storeLookups++;
    const lookup = store.lookup(id).then(
      (credential) => {
        const entry = toEntry(credential, now());
        if (epoch === started) remember(id, entry);
        return entry;
      },
      (err: unknown) => {
        throw new AuthUnavailable('key_store_unavailable', 503, { cause: err });
      },
    );
    inflight.set(id, lookup);
    const forget = () => {
      if (inflight.get(id) === lookup) inflight.delete(id);
    };
    lookup.then(forget, forget);
    return lookup;
  }

  return {
    async authenticate(raw, beforeVerify, route) {
      const parsed = parseApiKey(raw);
      // An imported key is found by its hash alone: its id and digest are both keyed hashes of the whole key.
      const imported = !parsed && importedKeys && isImportableKey(raw);
      if (!parsed && !imported) {
        beforeVerify?.(undefined);
        throw new AuthFailure('malformed_key');
      }
      const id = parsed ? parsed.id : importedKeyId(pepper, raw);
      const secret = parsed ? parsed.secret : raw;
      // Guesses at imported keys are counted under one shared id (see IMPORTED_KEYS_CREDENTIAL).
      const guessId = parsed ? id : IMPORTED_KEYS_CREDENTIAL;
      let gated = false;
      const gate = () => {
        if (!gated) beforeVerify?.(guessId);
        gated = true;
      };
      let entry = cached(id);
      if (entry) counters.cacheHits++;
      else {
        counters.cacheMisses++;
        // Not known: the brute-force guard may refuse before the store is asked.
        gate();
        entry = await load(id);
      }
      if (!entry.known) {
        gate();
        throw new AuthFailure('key_unknown', guessId);
      }
      // The secret is checked before the status, so `key_revoked` and
      // `key_expired` are only ever reported to whoever holds the key.
      // A cached key with the right secret passes without asking the guard:
      // others' failures against its id never lock its owner out.
      const presented = digestSecret(pepper, secret);
      if (entry.digest.length !== presented.length || !timingSafeEqual(entry.digest, presented)) {
        gate();
        throw new AuthFailure('key_mismatch', guessId);
      }
      if (entry.revoked) throw new AuthFailure('key_revoked', id);
      if (entry.expiresAt !== undefined && entry.expiresAt <= now()) throw new AuthFailure('key_expired', id);
      // Checked after the secret, like the status: only the key's holder learns where it is good.
      if (entry.routes !== undefined && (route === undefined || !entry.routes.has(route))) {
        throw new AuthFailure('key_route_not_allowed', id);
      }
      void store.touch(id);
      return entry.principal;
    },

    keyId: (raw) => parseApiKey(raw)?.id,

    invalidate(id) {
      epoch++;
      known.delete(id);
      unknown.delete(id);
      inflight.delete(id);
    },

    get stats() {
      return { ...counters, cachedKeys: known.size, cachedUnknown: unknown.size };
    },

    settle: () => store.settle(),
  };
}
