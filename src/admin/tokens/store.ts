/**
 * Admin tokens on the `Db` interface (SQLite and PostgreSQL alike), stored
 * like API keys: only `HMAC-SHA-256(pepper, domain ‖ secret)`, so a copy of
 * the database neither reveals a token nor lets anyone test guesses offline.
 * The pepper is the API keys' (`auth.api_keys.pepper`, or the generated one
 * in the data folder), with a domain prefix so that a digest of one kind
 * can never stand for the other.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Db } from '../../store/types.js';
import { generateAdminToken, isAdminTokenId, parseAdminToken } from './format.js';

/** What each role may do: `viewer` reads; `operator` also manages keys, blocks and revocations; `admin` everything. */
export const ADMIN_ROLES = ['viewer', 'operator', 'admin'] as const;
export type AdminRole = (typeof ADMIN_ROLES)[number];

/** Whether `role` includes everything `needed` may do. */
export function roleAllows(role: AdminRole, needed: AdminRole): boolean {
  return ADMIN_ROLES.indexOf(role) >= ADMIN_ROLES.indexOf(needed);
}

export function isAdminRole(value: unknown): value is AdminRole {
  return typeof value === 'string' && (ADMIN_ROLES as readonly string[]).includes(value);
}

/** A stored token as shown: never its secret or digest. Times are epoch milliseconds. */
export interface AdminTokenRecord {
  /** `adt_…`. */
  id: string;
  name: string;
  role: AdminRole;
  createdAt: number;
  /** Who made it: `cli`, or the admin token id that did. */
  createdBy: string;
  revokedAt: number | undefined;
  lastUsedAt: number | undefined;
}

export type AdminTokenErrorCode = 'admin_tokens.invalid_input' | 'admin_tokens.not_found';

export class AdminTokenError extends Error {
  override readonly name = 'AdminTokenError';
  constructor(
    readonly code: AdminTokenErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Why a presented token was refused: `malformed` and `unknown`/`mismatch` look like guessing; `revoked` needed the secret. */
export type AdminTokenFailure = 'malformed' | 'unknown' | 'mismatch' | 'revoked';

export interface AdminTokenStore {
  /** Makes a token; `token` is the only time the whole token exists outside its owner's hands. */
  create(input: { name: string; role: AdminRole; createdBy: string }): Promise<{
    record: AdminTokenRecord;
    token: string;
  }>;
  /** Every token, oldest first, revoked ones included. */
  list(): Promise<AdminTokenRecord[]>;
  /** Revokes (idempotent). @throws AdminTokenError `admin_tokens.not_found`. */
  revoke(id: string): Promise<{ record: AdminTokenRecord; alreadyRevoked: boolean }>;
  /**
   * Checks a presented token: its record, or why it is refused (with the id
   * when the token was well formed, for brute-force accounting).
   */
  verify(
    presented: string,
  ): Promise<{ record: AdminTokenRecord } | { failure: AdminTokenFailure; id: string | undefined }>;
}

interface Row {
  id: string;
  name: string;
  role: string;
  digest: string;
  created_at: string;
  created_by: string;
  revoked_at: string | null;
  last_used_at: string | null;
}

const COLUMNS = 'id, name, role, digest, created_at, created_by, revoked_at, last_used_at';
const DOMAIN = 'portcullis-admin-token\0';
const MAX_NAME = 200;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it rejects.
const CONTROL = /[\x00-\x1f\x7f]/;
const TOUCH_INTERVAL_MS = 60_000;

const iso = (ms: number): string => new Date(ms).toISOString();
const time = (text: string | null): number | undefined => (text === null ? undefined : Date.parse(text));

function toRecord(row: Row): AdminTokenRecord {
  if (!isAdminRole(row.role)) throw new Error(`admin_tokens.role of ${row.id} is not a role`);
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    createdAt: Date.parse(row.created_at),
    createdBy: row.created_by,
    revokedAt: time(row.revoked_at),
    lastUsedAt: time(row.last_used_at),
  };
}

/** Checks an admin token name: 1 to 200 characters, no control characters. */
export function checkAdminTokenName(name: unknown): string {
  if (typeof name !== 'string' || name.trim() === '' || name.length > MAX_NAME || CONTROL.test(name)) {
    throw new AdminTokenError(
      'admin_tokens.invalid_input',
      `the name must be 1 to ${MAX_NAME} characters without control characters`,
    );
  }
  return name;
}

/** Builds the repository on `db` (migrated to include `admin_tokens`). */
export function createAdminTokenStore(
  db: Db,
  options: { pepper: string | (() => string); now?: () => number },
): AdminTokenStore {
  let resolved: string | undefined;
  const pepper = () => {
    resolved ??= typeof options.pepper === 'string' ? options.pepper : options.pepper();
    if (Buffer.byteLength(resolved) < 16)
      throw new TypeError('the admin token pepper must be at least 16 bytes');
    return resolved;
  };
  const digest = (secret: string) =>
    createHmac('sha256', pepper())
      .update(DOMAIN + secret)
      .digest();
  const now = options.now ?? Date.now;
  const touched = new Map<string, number>();

  const select = async (id: string): Promise<Row | undefined> => {
    if (!isAdminTokenId(id)) return undefined;
    return (await db.query<Row>(`select ${COLUMNS} from admin_tokens where id = $1`, [id]))[0];
  };

  return {
    async create({ name, role, createdBy }) {
      checkAdminTokenName(name);
      if (!isAdminRole(role)) {
        throw new AdminTokenError('admin_tokens.invalid_input', 'the role must be viewer, operator or admin');
      }
      const { id, secret, token } = generateAdminToken();
      const at = now();
      await db.execute(
        'insert into admin_tokens (id, name, role, digest, created_at, created_by) values ($1, $2, $3, $4, $5, $6)',
        [id, name, role, digest(secret).toString('hex'), iso(at), createdBy],
      );
      return {
        record: { id, name, role, createdAt: at, createdBy, revokedAt: undefined, lastUsedAt: undefined },
        token,
      };
    },

    async list() {
      return (await db.query<Row>(`select ${COLUMNS} from admin_tokens order by created_at, id`)).map(
        toRecord,
      );
    },

    revoke(id) {
      return db.transaction(async (tx) => {
        // PostgreSQL runs at READ COMMITTED: lock the row before reading it.
        if (isAdminTokenId(id)) await tx.execute('update admin_tokens set id = id where id = $1', [id]);
        const row = isAdminTokenId(id)
          ? (await tx.query<Row>(`select ${COLUMNS} from admin_tokens where id = $1`, [id]))[0]
          : undefined;
        if (!row) throw new AdminTokenError('admin_tokens.not_found', `no admin token ${JSON.stringify(id)}`);
        const record = toRecord(row);
        if (record.revokedAt !== undefined) return { record, alreadyRevoked: true };
        const at = now();
        await tx.execute('update admin_tokens set revoked_at = $1 where id = $2', [iso(at), id]);
        return { record: { ...record, revokedAt: at }, alreadyRevoked: false };
      });
    },

    async verify(presented) {
      const parsed = parseAdminToken(presented);
      if (!parsed) return { failure: 'malformed', id: undefined };
      const row = await select(parsed.id);
      if (!row) {
        // The same work as a known id, so timing does not tell ids apart.
        digest(parsed.secret);
        return { failure: 'unknown', id: parsed.id };
      }
      const expected = Buffer.from(row.digest, 'hex');
      const actual = digest(parsed.secret);
      if (expected.length !== actual.length || !timingSafeEqual(actual, expected)) {
        return { failure: 'mismatch', id: parsed.id };
      }
      const record = toRecord(row);
      if (record.revokedAt !== undefined) return { failure: 'revoked', id: parsed.id };
      const at = now();
      const last = touched.get(record.id);
      if (last === undefined || at - last >= TOUCH_INTERVAL_MS) {
        touched.set(record.id, at);
        if (touched.size > 10_000) touched.clear();
        // Best effort: a lost timestamp must not refuse an admin.
        await db
          .execute('update admin_tokens set last_used_at = $1 where id = $2', [iso(at), record.id])
          .catch(() => {});
      }
      return { record };
    },
  };
}
