/**
 * The API key repository on the `Db` interface (SQLite and PostgreSQL alike).
 *
 * Only `HMAC-SHA-256(pepper, secret)` is stored. The pepper never enters the
 * database, so a copy of the database (a backup, a SQL injection elsewhere, a
 * read replica) neither reveals a key nor lets anyone test guesses offline.
 */
import { createHmac } from 'node:crypto';
import type { Db } from '../store/types.js';
import { generateApiKey, isApiKeyId } from './format.js';

/** Stable codes of {@link ApiKeyError}. */
export type ApiKeyErrorCode =
  | 'keys.invalid_input'
  | 'keys.not_found'
  | 'keys.revoked'
  | 'keys.expired'
  | 'keys.already_rotated';

/** A request to the repository that cannot be carried out; the message is for the operator. */
export class ApiKeyError extends Error {
  override readonly name = 'ApiKeyError';

  constructor(
    readonly code: ApiKeyErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A stored key as shown to operators: never its secret or digest. Times are epoch milliseconds. */
export interface ApiKeyRecord {
  /** `key_…`. */
  id: string;
  name: string;
  scopes: readonly string[];
  tenant: string | undefined;
  createdAt: number;
  expiresAt: number | undefined;
  revokedAt: number | undefined;
  lastUsedAt: number | undefined;
  /** The key that replaced this one in a rotation. */
  replacedBy: string | undefined;
  /** The route names the key is good on; undefined: every route that accepts API keys. */
  routes: readonly string[] | undefined;
}

/** Where a key stands at a given time. `rotating`: replaced, but valid until its `expiresAt`. */
export type ApiKeyStatus = 'active' | 'rotating' | 'expired' | 'revoked';

/** A record with the digest its secret must match, for verification only. */
export interface ApiKeyCredential {
  record: ApiKeyRecord;
  /** The 32-byte HMAC-SHA-256 of the secret under the pepper. */
  digest: Buffer;
}

/** What {@link ApiKeyStore.create} needs. */
export interface NewApiKey {
  name: string;
  scopes: readonly string[];
  tenant?: string | undefined;
  /** Epoch milliseconds; absent for a key that does not expire. */
  expiresAt?: number | undefined;
  /** Restricts the key to these route names (`routes[].name`); absent: every route. */
  routes?: readonly string[] | undefined;
}

/** A key just made: `key` is the only time the whole key exists outside its owner's hands. */
export interface CreatedApiKey {
  record: ApiKeyRecord;
  key: string;
}

/** The outcome of {@link ApiKeyStore.rotate}. */
export interface RotatedApiKey {
  /** The old key, now expiring at the end of the overlap and naming its successor. */
  previous: ApiKeyRecord;
  /** The new key, with the old one's name, scopes, tenant and routes. */
  next: ApiKeyRecord;
  key: string;
}

/** Options of {@link ApiKeyStore.rotate}. */
export interface RotateOptions {
  /** How long the old key keeps working, in milliseconds (it never gains time: an earlier expiry stays). */
  overlapMs: number;
  /**
   * Expiry of the new key (epoch ms), or `null` for none. Default: the old
   * key's lifetime again, counted from now; no expiry if it had none.
   */
  expiresAt?: number | null;
}

/** The API key repository. */
export interface ApiKeyStore {
  /** Makes a key; the returned `key` is not kept anywhere. */
  create(input: NewApiKey): Promise<CreatedApiKey>;
  /** Every key, oldest first, revoked and expired ones included. */
  list(): Promise<ApiKeyRecord[]>;
  get(id: string): Promise<ApiKeyRecord | undefined>;
  /** The record and digest to verify a presented secret against. */
  lookup(id: string): Promise<ApiKeyCredential | undefined>;
  /**
   * Revokes a key (idempotent: a second call keeps the first time).
   *
   * @throws ApiKeyError `keys.not_found`.
   */
  revoke(id: string): Promise<{ record: ApiKeyRecord; alreadyRevoked: boolean }>;
  /**
   * Replaces a key by a new one with the same name, scopes and tenant; the
   * old one keeps working for the overlap, then stops.
   *
   * @throws ApiKeyError `keys.not_found`, `keys.revoked`, `keys.expired`, or
   * `keys.already_rotated` (rotate its successor instead, so a key never has
   * two live successors).
   */
  rotate(id: string, options: RotateOptions): Promise<RotatedApiKey>;
  /**
   * Records that a key was just used, at most once a minute per key (per
   * process, and across processes by the `where` clause). Never rejects:
   * failures are logged, since a lost timestamp must not fail a request.
   */
  touch(id: string): Promise<void>;
  /** Resolves when every `touch` write started so far has finished (shutdown, tests). */
  settle(): Promise<void>;
}

/** The part of a logger (pino's, or any) the repository uses. */
export interface WarningLogger {
  warn(details: Record<string, unknown>, message: string): void;
}

/** Options of {@link createApiKeyStore}. */
export interface ApiKeyStoreOptions {
  /**
   * The server secret the digests are keyed with; its UTF-8 bytes are the
   * HMAC key. A function is called when a digest is first needed, so a
   * read-only use (list, revoke) never creates a generated pepper.
   */
  pepper: string | (() => string);
  logger: WarningLogger;
  /** Epoch milliseconds; injectable for tests. */
  now?: () => number;
}

/** Shortest pepper accepted, in bytes: below 128 bits an offline guess of the pepper becomes thinkable. */
export const MIN_PEPPER_BYTES = 16;
/** `last_used_at` is written at most this often per key. */
export const TOUCH_INTERVAL_MS = 60_000;
const MAX_TRACKED_TOUCHES = 10_000;
const MAX_TEXT = 200;
// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it rejects.
const CONTROL = /[\x00-\x1f\x7f]/;

/** `HMAC-SHA-256(pepper, secret)`, the 32 bytes stored (hex-encoded) for a key. */
export function digestSecret(pepper: string, secret: string): Buffer {
  return createHmac('sha256', pepper).update(secret).digest();
}

/** Where `record` stands at time `now` (epoch ms). */
export function apiKeyStatus(record: ApiKeyRecord, now: number): ApiKeyStatus {
  if (record.revokedAt !== undefined) return 'revoked';
  if (record.expiresAt !== undefined && record.expiresAt <= now) return 'expired';
  return record.replacedBy === undefined ? 'active' : 'rotating';
}

/**
 * A key as JSON for people and tools (`keys list --json`, the admin API):
 * never its secret or digest; times as ISO 8601 or null.
 */
export function apiKeyJson(r: ApiKeyRecord, now: number) {
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  return {
    id: r.id,
    name: r.name,
    scopes: r.scopes,
    tenant: r.tenant ?? null,
    createdAt: iso(r.createdAt),
    expiresAt: iso(r.expiresAt),
    revokedAt: iso(r.revokedAt),
    lastUsedAt: iso(r.lastUsedAt),
    replacedBy: r.replacedBy ?? null,
    routes: r.routes ?? null,
    status: apiKeyStatus(r, now),
  };
}

interface Row {
  id: string;
  name: string;
  digest: string;
  scopes: string;
  tenant: string | null;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  replaced_by: string | null;
  routes: string | null;
}

const COLUMNS =
  'id, name, digest, scopes, tenant, created_at, expires_at, revoked_at, last_used_at, replaced_by, routes';

const iso = (ms: number): string => new Date(ms).toISOString();
const time = (text: string | null): number | undefined => (text === null ? undefined : Date.parse(text));

function stringList(row: Row, column: 'scopes' | 'routes', text: string): string[] {
  const list: unknown = JSON.parse(text);
  if (!Array.isArray(list) || !list.every((s) => typeof s === 'string')) {
    throw new Error(`api_keys.${column} of ${row.id} is not a JSON list of strings`);
  }
  return list;
}

function toRecord(row: Row): ApiKeyRecord {
  const scopes = stringList(row, 'scopes', row.scopes);
  return {
    id: row.id,
    name: row.name,
    scopes,
    tenant: row.tenant ?? undefined,
    createdAt: Date.parse(row.created_at),
    expiresAt: time(row.expires_at),
    revokedAt: time(row.revoked_at),
    lastUsedAt: time(row.last_used_at),
    replacedBy: row.replaced_by ?? undefined,
    routes: row.routes === null ? undefined : stringList(row, 'routes', row.routes),
  };
}

/**
 * The stored id of an imported key (one without the `pcl_` format, so
 * without an id of its own): `key_` and 16 base62 characters of an HMAC of
 * the whole key under the pepper, domain-separated from the digest. The
 * same key always has the same id, so it is found with one primary-key
 * lookup and a duplicate import is refused; without the pepper the id says
 * nothing about the key.
 */
export function importedKeyId(pepper: string, key: string): string {
  const mac = createHmac('sha256', pepper).update('portcullis:imported-key-id\n').update(key).digest();
  let n = BigInt(`0x${mac.toString('hex')}`);
  let out = '';
  for (let i = 0; i < 16; i++) {
    out += BASE62[Number(n % 62n)];
    n /= 62n;
  }
  return `key_${out}`;
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * Checks a key's name or tenant (1 to 200 characters, no control characters).
 *
 * @throws ApiKeyError `keys.invalid_input`.
 */
export function checkText(what: string, value: string): void {
  if (value.trim() === '' || value.length > MAX_TEXT || CONTROL.test(value)) {
    throw new ApiKeyError(
      'keys.invalid_input',
      `${what} must be 1 to ${MAX_TEXT} characters without control characters`,
    );
  }
}

/**
 * Checks scopes (RFC 6749 scope tokens) and removes duplicates.
 *
 * @throws ApiKeyError `keys.invalid_input`.
 */
export function checkScopes(scopes: readonly string[]): string[] {
  const unique = [...new Set(scopes)];
  for (const scope of unique) {
    if (!SCOPE_TOKEN.test(scope) || scope.length > MAX_TEXT) {
      throw new ApiKeyError(
        'keys.invalid_input',
        `scope ${JSON.stringify(scope)} is not an OAuth scope token (printable ASCII, no space, " or \\)`,
      );
    }
  }
  return unique;
}

/**
 * Checks the route names a key is restricted to (each like a name, at least
 * one: an empty list would make a key good nowhere) and removes duplicates.
 *
 * @throws ApiKeyError `keys.invalid_input`.
 */
export function checkRouteNames(routes: readonly string[]): string[] {
  if (routes.length === 0) {
    throw new ApiKeyError('keys.invalid_input', 'a key restricted to routes needs at least one route name');
  }
  const unique = [...new Set(routes)];
  for (const route of unique) checkText('a route name', route);
  return unique;
}

/** Checks a pepper's length. @throws TypeError when shorter than {@link MIN_PEPPER_BYTES}. */
export function checkPepper(pepper: unknown): string {
  if (typeof pepper !== 'string' || Buffer.byteLength(pepper) < MIN_PEPPER_BYTES) {
    throw new TypeError(`the API key pepper must be at least ${MIN_PEPPER_BYTES} bytes`);
  }
  return pepper;
}

/**
 * Builds the repository on `db` (migrated to include `api_keys`).
 *
 * @throws TypeError when the pepper is shorter than {@link MIN_PEPPER_BYTES}
 * (at once for a string, at the first digest for a function).
 */
export function createApiKeyStore(db: Db, options: ApiKeyStoreOptions): ApiKeyStore {
  const { logger } = options;
  let resolved = typeof options.pepper === 'string' ? checkPepper(options.pepper) : undefined;
  const pepper = (): string => {
    resolved ??= checkPepper((options.pepper as () => string)());
    return resolved;
  };
  const now = options.now ?? Date.now;
  const touched = new Map<string, number>();
  const pending = new Set<Promise<void>>();

  async function insert(db: Db, input: NewApiKey, at: number): Promise<CreatedApiKey> {
    checkText('the name', input.name);
    if (input.tenant !== undefined) checkText('the tenant', input.tenant);
    const scopes = checkScopes(input.scopes);
    const routes = input.routes === undefined ? undefined : checkRouteNames(input.routes);
    if (input.expiresAt !== undefined && !(Number.isFinite(input.expiresAt) && input.expiresAt > at)) {
      throw new ApiKeyError('keys.invalid_input', 'the expiry must be in the future');
    }
    const { id, secret, key } = generateApiKey();
    const record: ApiKeyRecord = {
      id,
      name: input.name,
      scopes,
      tenant: input.tenant,
      createdAt: at,
      expiresAt: input.expiresAt,
      revokedAt: undefined,
      lastUsedAt: undefined,
      replacedBy: undefined,
      routes,
    };
    await db.execute(
      'insert into api_keys (id, name, digest, scopes, tenant, created_at, expires_at, routes) values ($1, $2, $3, $4, $5, $6, $7, $8)',
      [
        id,
        record.name,
        digestSecret(pepper(), secret).toString('hex'),
        JSON.stringify(scopes),
        record.tenant ?? null,
        iso(at),
        record.expiresAt === undefined ? null : iso(record.expiresAt),
        routes === undefined ? null : JSON.stringify(routes),
      ],
    );
    return { record, key };
  }

  async function selectRow(db: Db, id: string): Promise<Row | undefined> {
    if (!isApiKeyId(id)) return undefined;
    const rows = await db.query<Row>(`select ${COLUMNS} from api_keys where id = $1`, [id]);
    return rows[0];
  }

  async function lockedRow(tx: Db, id: string): Promise<Row> {
    // PostgreSQL runs at READ COMMITTED: lock the row before reading it.
    if (isApiKeyId(id)) await tx.execute('update api_keys set id = id where id = $1', [id]);
    const row = await selectRow(tx, id);
    if (!row) throw new ApiKeyError('keys.not_found', `no API key ${JSON.stringify(id)}`);
    return row;
  }

  return {
    create: (input) => insert(db, input, now()),

    async list() {
      const rows = await db.query<Row>(`select ${COLUMNS} from api_keys order by created_at, id`);
      return rows.map(toRecord);
    },

    async get(id) {
      const row = await selectRow(db, id);
      return row && toRecord(row);
    },

    async lookup(id) {
      const row = await selectRow(db, id);
      return row && { record: toRecord(row), digest: Buffer.from(row.digest, 'hex') };
    },

    revoke(id) {
      return db.transaction(async (tx) => {
        const record = toRecord(await lockedRow(tx, id));
        if (record.revokedAt !== undefined) return { record, alreadyRevoked: true };
        const at = now();
        await tx.execute('update api_keys set revoked_at = $1 where id = $2', [iso(at), id]);
        return { record: { ...record, revokedAt: at }, alreadyRevoked: false };
      });
    },

    rotate(id, { overlapMs, expiresAt }) {
      if (!Number.isFinite(overlapMs) || overlapMs < 0) {
        return Promise.reject(new ApiKeyError('keys.invalid_input', 'the overlap must be zero or more'));
      }
      return db.transaction(async (tx) => {
        const old = toRecord(await lockedRow(tx, id));
        const at = now();
        const status = apiKeyStatus(old, at);
        if (status === 'revoked') throw new ApiKeyError('keys.revoked', `${id} is revoked`);
        if (status === 'expired') throw new ApiKeyError('keys.expired', `${id} has expired`);
        if (old.replacedBy !== undefined) {
          throw new ApiKeyError(
            'keys.already_rotated',
            `${id} was already replaced by ${old.replacedBy}; rotate that key instead`,
          );
        }
        const lifetime = old.expiresAt === undefined ? undefined : old.expiresAt - old.createdAt;
        const nextExpiry =
          expiresAt === null
            ? undefined
            : (expiresAt ?? (lifetime === undefined ? undefined : at + lifetime));
        const { record: next, key } = await insert(
          tx,
          {
            name: old.name,
            scopes: old.scopes,
            tenant: old.tenant,
            expiresAt: nextExpiry,
            routes: old.routes,
          },
          at,
        );
        const oldExpiry = Math.min(old.expiresAt ?? Number.POSITIVE_INFINITY, at + overlapMs);
        await tx.execute('update api_keys set expires_at = $1, replaced_by = $2 where id = $3', [
          iso(oldExpiry),
          next.id,
          id,
        ]);
        return { previous: { ...old, expiresAt: oldExpiry, replacedBy: next.id }, next, key };
      });
    },

    touch(id) {
      const at = now();
      const last = touched.get(id);
      if (last !== undefined && at - last < TOUCH_INTERVAL_MS) return Promise.resolve();
      if (touched.size >= MAX_TRACKED_TOUCHES) {
        for (const [k, t] of touched) if (at - t >= TOUCH_INTERVAL_MS) touched.delete(k);
        if (touched.size >= MAX_TRACKED_TOUCHES) touched.clear();
      }
      touched.set(id, at);
      const write = db
        .execute(
          'update api_keys set last_used_at = $1 where id = $2 and (last_used_at is null or last_used_at <= $3)',
          [iso(at), id, iso(at - TOUCH_INTERVAL_MS)],
        )
        .then(
          () => {},
          (err: unknown) => logger.warn({ err, keyId: id }, 'could not record when an API key was last used'),
        );
      pending.add(write);
      void write.finally(() => pending.delete(write));
      return write;
    },

    async settle() {
      await Promise.all(pending);
    },
  };
}
