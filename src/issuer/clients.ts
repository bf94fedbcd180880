/**
 * Confidential OAuth clients of the built-in issuer: registration, listing,
 * revocation and secret verification, on the shared `Db` (SQLite or
 * PostgreSQL).
 *
 * A secret is 256 random bits, shown once at creation; only its scrypt hash
 * is stored, in a self-describing string (`$scrypt$N=…,r=…,p=…$salt$hash`) so
 * the cost can be raised later without breaking stored hashes.
 */
import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto';
import { recordRevocation } from '../revocation/feed.js';
import type { Db } from '../store/types.js';
import { IssuerError } from './errors.js';

/** A registered client, as listed: never its secret nor its hash. */
export interface OAuthClient {
  /** `cli_` followed by 128 random bits (base64url). */
  readonly id: string;
  readonly name: string;
  /** The scopes it may be granted; a token request is narrowed to these. */
  readonly scopes: readonly string[];
  /** The tenant its tokens carry in the `tenant` claim, if any. */
  readonly tenant: string | undefined;
  /** ISO-8601. */
  readonly createdAt: string;
  /** ISO-8601, when revoked; a revoked client gets no new tokens. */
  readonly revokedAt: string | undefined;
}

/** What {@link ClientRepository.create} needs. */
export interface NewClient {
  /** A label for people: 1 to 100 characters, no control characters. */
  name: string;
  /** At least one RFC 6749 §3.3 scope token. */
  scopes: readonly string[];
  /** Printable ASCII without spaces, 1 to 128 characters. */
  tenant?: string | undefined;
}

/** The outcome of {@link ClientRepository.verify}; `reason` is for logs only. */
export type ClientVerification =
  | {
      ok: true;
      client: OAuthClient;
      /** The stored hash the secret matched: a proof cache stays valid only while it is unchanged. */
      secretHash: string;
    }
  | { ok: false; reason: 'unknown_client' | 'client_revoked' | 'wrong_secret' };

/** The outcome of {@link ClientRepository.revoke}. */
export type ClientRevocation = 'revoked' | 'already_revoked' | 'not_found';

/** Client ids as issued; anything else is unknown without a database lookup. */
export const CLIENT_ID_PATTERN = /^cli_[A-Za-z0-9_-]{22}$/;

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/;
const TENANT = /^[\x21-\x7E]{1,128}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it rejects.
const CONTROL = /[\u0000-\u001F\u007F-\u009F]/;
const MAX_SCOPES = 100;

/** Whether `value` is a valid RFC 6749 §3.3 scope token (at most 128 characters). */
export function isScopeToken(value: string): boolean {
  return SCOPE_TOKEN.test(value);
}

// N=2^14, r=8, p=1: the parameters RFC 7914 and OWASP give for interactive
// logins (16 MiB, tens of milliseconds), paid once per token request.
const SCRYPT = { N: 16384, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
const HASH_FORMAT = /^\$scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/;

/**
 * Verified against when the client id is unknown, so that an unknown id costs
 * the same scrypt as a known one and timing does not reveal which ids exist.
 * Its salt and hash are arbitrary: nothing can match it.
 */
const DUMMY_HASH = `$scrypt$N=${SCRYPT.N},r=${SCRYPT.r},p=${SCRYPT.p}$${Buffer.alloc(SALT_BYTES).toString('base64url')}$${Buffer.alloc(HASH_BYTES).toString('base64url')}`;

function deriveKey(secret: string, salt: Buffer, length: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, length, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Hashes a client secret with scrypt and a fresh random salt. */
export async function hashClientSecret(secret: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await deriveKey(secret, salt, HASH_BYTES, { ...SCRYPT, maxmem: maxmem(SCRYPT.N, SCRYPT.r) });
  return `$scrypt$N=${SCRYPT.N},r=${SCRYPT.r},p=${SCRYPT.p}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

function maxmem(N: number, r: number): number {
  // scrypt needs 128·N·r bytes; Node's default ceiling (32 MiB) is too tight above N=2^14.
  return 256 * N * r + 1024 * 1024;
}

/**
 * Whether `secret` matches `stored` (a {@link hashClientSecret} string),
 * compared in constant time. A malformed or out-of-bounds hash never matches
 * but still costs one scrypt.
 */
export async function verifyClientSecret(stored: string, secret: string): Promise<boolean> {
  const m = HASH_FORMAT.exec(stored);
  const N = Number(m?.[1]);
  const r = Number(m?.[2]);
  const p = Number(m?.[3]);
  // Bounds keep a tampered row from making one verification cost gigabytes.
  const sane =
    m !== null &&
    N >= 1024 &&
    N <= 1 << 20 &&
    (N & (N - 1)) === 0 &&
    r >= 1 &&
    r <= 32 &&
    p >= 1 &&
    p <= 16 &&
    128 * N * r <= 256 * 1024 * 1024;
  if (!sane) {
    await verifyClientSecret(DUMMY_HASH, secret);
    return false;
  }
  const salt = Buffer.from(m[4]!, 'base64url');
  const expected = Buffer.from(m[5]!, 'base64url');
  const actual = await deriveKey(secret, salt, expected.length, { N, r, p, maxmem: maxmem(N, r) });
  return expected.length > 0 && timingSafeEqual(actual, expected);
}

interface ClientRow {
  id: string;
  name: string;
  scopes: string;
  tenant: string | null;
  created_at: string;
  revoked_at: string | null;
  secret_hash?: string;
}

function toClient(row: ClientRow): OAuthClient {
  return Object.freeze({
    id: row.id,
    name: row.name,
    scopes: Object.freeze(row.scopes.split(' ').filter((s) => s !== '')),
    tenant: row.tenant ?? undefined,
    createdAt: row.created_at,
    revokedAt: row.revoked_at ?? undefined,
  });
}

function invalid(message: string): IssuerError {
  return new IssuerError('issuer.invalid_client_input', message);
}

function checkNewClient(input: NewClient): { name: string; scopes: string[]; tenant: string | undefined } {
  const name = input.name.trim();
  if (name === '' || name.length > 100 || CONTROL.test(name)) {
    throw invalid('the client name must be 1 to 100 characters, without control characters');
  }
  const scopes = [...new Set(input.scopes.map((s) => s.trim()).filter((s) => s !== ''))];
  if (scopes.length === 0) throw invalid('a client needs at least one scope');
  if (scopes.length > MAX_SCOPES) throw invalid(`a client may have at most ${MAX_SCOPES} scopes`);
  for (const s of scopes) {
    if (!isScopeToken(s)) {
      throw invalid(
        `scope ${JSON.stringify(s.slice(0, 40))} is not a valid scope token: printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)`,
      );
    }
  }
  const tenant = input.tenant?.trim();
  if (tenant !== undefined && !TENANT.test(tenant)) {
    throw invalid('the tenant must be 1 to 128 printable ASCII characters without spaces');
  }
  return { name, scopes, tenant };
}

const COLUMNS = 'id, name, scopes, tenant, created_at, revoked_at';

/** The clients table. Every method is one or two statements; safe to share between requests. */
export class ClientRepository {
  readonly #db: Db;
  readonly #now: () => number;

  readonly #tokenTtlMs: number;

  constructor(db: Db, options: { now?: () => number; tokenTtlMs?: number } = {}) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
    // The longest an issued token can live: the configured ttl, or a day when unknown.
    this.#tokenTtlMs = options.tokenTtlMs ?? 24 * 60 * 60_000;
  }

  /**
   * Registers a client and returns it with its secret, which exists nowhere
   * else afterwards: show it once.
   *
   * @throws IssuerError `issuer.invalid_client_input` for a bad name, scope or tenant.
   */
  async create(input: NewClient): Promise<{ client: OAuthClient; secret: string }> {
    const { name, scopes, tenant } = checkNewClient(input);
    const id = `cli_${randomBytes(16).toString('base64url')}`;
    const secret = randomBytes(32).toString('base64url');
    const createdAt = new Date(this.#now()).toISOString();
    await this.#db.execute(
      'insert into oauth_clients (id, name, secret_hash, scopes, tenant, created_at) values ($1, $2, $3, $4, $5, $6)',
      [id, name, await hashClientSecret(secret), scopes.join(' '), tenant ?? null, createdAt],
    );
    return {
      client: toClient({
        id,
        name,
        scopes: scopes.join(' '),
        tenant: tenant ?? null,
        created_at: createdAt,
        revoked_at: null,
      }),
      secret,
    };
  }

  /** One client by id, revoked or not. */
  async get(id: string): Promise<OAuthClient | undefined> {
    const rows = await this.#db.query<ClientRow>(`select ${COLUMNS} from oauth_clients where id = $1`, [id]);
    return rows[0] && toClient(rows[0]);
  }

  /** Every client, oldest first, revoked ones included. */
  async list(): Promise<OAuthClient[]> {
    const rows = await this.#db.query<ClientRow>(
      `select ${COLUMNS} from oauth_clients order by created_at, id`,
    );
    return rows.map(toClient);
  }

  /**
   * Revokes a client: it gets no new tokens, and the tokens already issued to
   * it are revoked too (a `client` revocation in the kill switch's feed, kept
   * for the token lifetime), on every instance within about a second.
   */
  async revoke(id: string, actor = 'cli'): Promise<ClientRevocation> {
    const t = this.#now();
    const { changes } = await this.#db.execute(
      'update oauth_clients set revoked_at = $1 where id = $2 and revoked_at is null',
      [new Date(t).toISOString(), id],
    );
    if (changes === 0) return (await this.get(id)) ? 'already_revoked' : 'not_found';
    await recordRevocation(
      this.#db,
      {
        kind: 'client',
        subject: id,
        // Client ids are the issuer's own (cli_ + 128 random bits): no other issuer's.
        issuer: '',
        revokedAt: t,
        expiresAt: t + this.#tokenTtlMs + 60_000,
        actor,
        reason: 'client revoked',
      },
      this.#now,
    );
    return 'revoked';
  }

  /**
   * Checks a client's credentials. Every call costs exactly one scrypt,
   * whether the id is unknown, revoked or the secret wrong, so the time
   * taken tells nothing about which ids exist.
   */
  async verify(id: string, secret: string): Promise<ClientVerification> {
    const rows = CLIENT_ID_PATTERN.test(id)
      ? await this.#db.query<ClientRow>(`select ${COLUMNS}, secret_hash from oauth_clients where id = $1`, [
          id,
        ])
      : [];
    const row = rows[0];
    if (!row) {
      await verifyClientSecret(DUMMY_HASH, secret);
      return { ok: false, reason: 'unknown_client' };
    }
    const match = await verifyClientSecret(row.secret_hash ?? '', secret);
    if (row.revoked_at !== null) return { ok: false, reason: 'client_revoked' };
    if (!match) return { ok: false, reason: 'wrong_secret' };
    return { ok: true, client: toClient(row), secretHash: row.secret_hash ?? '' };
  }

  /**
   * The client, when it exists, is not revoked and still has the secret hash
   * `secretHash`: how a secret verified before is accepted again without
   * another scrypt. One indexed query.
   */
  async current(id: string, secretHash: string): Promise<OAuthClient | undefined> {
    const rows = await this.#db.query<ClientRow>(
      `select ${COLUMNS}, secret_hash from oauth_clients where id = $1`,
      [id],
    );
    const row = rows[0];
    if (!row || row.revoked_at !== null || row.secret_hash !== secretHash) return undefined;
    return toClient(row);
  }
}
