/**
 * The public keys a scanning provider signs its reports with: given inline,
 * or fetched from its URL (GitHub's format,
 * `{public_keys: [{key_identifier, key, is_current}]}`) and kept for
 * `public_keys_refresh`.
 *
 * The key identifier comes from an unauthenticated header, so an unknown
 * identifier fetches the list again at most every {@link REFETCH_INTERVAL_MS}:
 * made-up identifiers cannot turn the receiver into a request flood against
 * the provider. A failed fetch keeps the keys already known.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { InlinePublicKey } from './schema.js';

/** An unknown key identifier fetches the list again at most this often. */
export const REFETCH_INTERVAL_MS = 10_000;
/** Largest key list read from the URL. */
const MAX_LIST_BYTES = 256 * 1024;

/** The part of a logger the key ring uses. */
export interface KeyRingLogger {
  warn(details: Record<string, unknown>, message: string): void;
}

export interface KeyRingOptions {
  url: string | undefined;
  inline: readonly InlinePublicKey[];
  refreshMs: number;
  timeoutMs: number;
  logger: KeyRingLogger;
  now?: () => number;
}

export interface KeyRing {
  /** The key with this identifier, fetching the list first when it is stale or lacks it (rate-limited). */
  get(keyIdentifier: string): Promise<KeyObject | undefined>;
  /** Fetches so far (tests, metrics). */
  readonly fetches: number;
}

function toKey(pem: unknown): KeyObject | undefined {
  if (typeof pem !== 'string') return undefined;
  try {
    const key = createPublicKey(pem);
    return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1'
      ? key
      : undefined;
  } catch {
    return undefined;
  }
}

/** Parses a GitHub-format key list; keys that are not ECDSA P-256 are left out. */
export function parseKeyList(text: string): Map<string, KeyObject> {
  const doc = JSON.parse(text) as { public_keys?: unknown };
  if (!Array.isArray(doc.public_keys)) throw new Error('no public_keys list');
  const keys = new Map<string, KeyObject>();
  for (const entry of doc.public_keys as Array<Record<string, unknown>>) {
    const id = entry?.key_identifier;
    const key = toKey(entry?.key);
    if (typeof id === 'string' && id !== '' && key !== undefined) keys.set(id, key);
  }
  return keys;
}

export function createKeyRing(options: KeyRingOptions): KeyRing {
  const now = options.now ?? Date.now;
  let keys = new Map<string, KeyObject>();
  for (const k of options.inline) {
    const key = toKey(k.key);
    if (key !== undefined) keys.set(k.keyIdentifier, key);
  }
  const url = options.inline.length > 0 ? undefined : options.url;
  let fetchedAt: number | undefined;
  let attemptedAt: number | undefined;
  let inflight: Promise<void> | undefined;
  let fetches = 0;

  async function fetchList(from: string): Promise<void> {
    fetches++;
    attemptedAt = now();
    try {
      const res = await fetch(from, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(options.timeoutMs),
        redirect: 'error',
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const declared = Number(res.headers.get('content-length') ?? 0);
      if (declared > MAX_LIST_BYTES) throw new Error('the key list is too large');
      const text = await res.text();
      if (text.length > MAX_LIST_BYTES) throw new Error('the key list is too large');
      keys = parseKeyList(text);
      fetchedAt = now();
    } catch (err) {
      options.logger.warn(
        { reason: (err as Error).message, known: keys.size },
        'could not fetch the secret-scanning public keys; the keys already known stay in use',
      );
    }
  }

  function refresh(from: string): Promise<void> {
    inflight ??= fetchList(from).finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  return {
    get fetches() {
      return fetches;
    },
    async get(keyIdentifier) {
      if (url !== undefined) {
        const t = now();
        const stale = fetchedAt === undefined || t - fetchedAt >= options.refreshMs;
        const mayRetry = attemptedAt === undefined || t - attemptedAt >= REFETCH_INTERVAL_MS;
        if ((stale || !keys.has(keyIdentifier)) && mayRetry) await refresh(url);
        else if (inflight !== undefined) await inflight;
      }
      return keys.get(keyIdentifier);
    },
  };
}
