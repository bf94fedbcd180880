/**
 * The issuer's signing keys: ES256 key pairs generated here, kept in the
 * `signing_keys` table with the private half encrypted under the master key,
 * rotated on a schedule.
 *
 * A key's life: **published** (in the JWKS, not signing yet) → **current**
 * (signing) → **previous** (replaced, still published so the tokens it signed
 * verify until they expire) → **retired** (unpublished, private half
 * destroyed).
 *
 * Several instances share the table:
 * - Rotation inserts the next `generation`, which is unique, with
 *   `on conflict do nothing`: instances that rotate at the same moment (or
 *   start at once on an empty table) create one key between them, and the
 *   losers adopt the winner's after re-reading.
 * - A new key is published {@link KEY_PUBLISH_AHEAD_MS} before it starts
 *   signing. Instances re-read the table every few seconds, so every one of
 *   them (and any JWKS cache that honours the JWKS `max-age`) knows a key
 *   before the first token it signs; an instance never meets a token signed
 *   with a kid it has not loaded yet. The very first key signs at once: there
 *   is nothing to verify yet.
 * - If two keys ever were current at once (clocks far apart, a key inserted by
 *   hand), both are published, so tokens from either verify everywhere once
 *   each instance has re-read the table.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
} from 'jose';
import type { Logger } from '../log.js';
import type { Db } from '../store/types.js';
import { IssuerError } from './errors.js';

/** How long a new key is published before it signs: several re-reads, and the JWKS max-age twice over. */
export const KEY_PUBLISH_AHEAD_MS = 2 * 60_000;
/**
 * Extra time a replaced key stays published after the last token it signed
 * could have expired: covers clock differences between instances, the
 * verifier's clock skew and an instance that re-read the table late.
 */
export const KEY_RETIRE_MARGIN_MS = 5 * 60_000;
/** The only signing algorithm (RFC 7518 §3.4, P-256). */
export const SIGNING_ALG = 'ES256';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const BLOB_VERSION = 'v1';

/**
 * Decodes the master key: 32 bytes, base64 (or base64url).
 *
 * @throws IssuerError `issuer.invalid_master_key`; the message never contains the key.
 */
export function parseMasterKey(value: string): Buffer {
  const text = value.trim();
  const isBase64 = /^[A-Za-z0-9+/]+={0,2}$/.test(text) || /^[A-Za-z0-9_-]+$/.test(text);
  const bytes = isBase64 ? Buffer.from(text, 'base64') : undefined;
  if (bytes?.length !== 32) {
    throw new IssuerError(
      'issuer.invalid_master_key',
      `the issuer master key (auth.issuer.master_key) must be 32 random bytes in base64, as made by "openssl rand -base64 32"; the one given ${bytes ? `decodes to ${bytes.length} bytes` : 'is not base64'}`,
    );
  }
  return bytes;
}

/**
 * Encrypts a private JWK with AES-256-GCM under the master key, with a
 * random 96-bit IV (NIST SP 800-38D §8.2.2) and the kid as additional
 * authenticated data, so a ciphertext moved to another key's row fails to
 * decrypt. Format: `v1.<iv>.<ciphertext>.<tag>`, base64url.
 */
export function encryptPrivateJwk(masterKey: Buffer, kid: string, jwk: JWK): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', masterKey, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(kid, 'utf8'));
  const plaintext = Buffer.from(JSON.stringify(jwk), 'utf8');
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  plaintext.fill(0);
  return [BLOB_VERSION, iv, ciphertext, cipher.getAuthTag()]
    .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
    .join('.');
}

/**
 * Reverses {@link encryptPrivateJwk}.
 *
 * @throws IssuerError `issuer.master_key_mismatch` when authentication fails:
 * another master key, or an altered or moved ciphertext.
 */
export function decryptPrivateJwk(masterKey: Buffer, kid: string, blob: string): JWK {
  const [version, iv, ciphertext, tag, extra] = blob.split('.');
  const mismatch = (cause?: unknown) =>
    new IssuerError(
      'issuer.master_key_mismatch',
      `the issuer master key cannot decrypt signing key ${kid}: auth.issuer.master_key is not the key the signing keys were encrypted with (or the stored key was altered). Give the original master key; or, to start over, delete the rows of signing_keys (tokens already issued then stop verifying)`,
      cause === undefined ? undefined : { cause },
    );
  if (version !== BLOB_VERSION || !iv || !ciphertext || !tag || extra !== undefined) throw mismatch();
  let plaintext: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', masterKey, Buffer.from(iv, 'base64url'), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(Buffer.from(kid, 'utf8'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    plaintext = Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]);
  } catch (err) {
    throw mismatch(err);
  }
  try {
    return JSON.parse(plaintext.toString('utf8')) as JWK;
  } finally {
    plaintext.fill(0);
  }
}

/** Options of {@link SigningKeyRing.open}. */
export interface SigningKeyRingOptions {
  db: Db;
  /** From {@link parseMasterKey}. */
  masterKey: Buffer;
  /** Age (since it started signing) at which the current key is replaced. */
  keyRotationMs: number;
  /** Lifetime of issued tokens: how long a replaced key must stay published. */
  tokenTtlMs: number;
  logger: Logger;
  now?: () => number;
}

/** A key as loaded from the table. */
interface LoadedKey {
  kid: string;
  generation: number;
  publicJwk: JWK;
  createdAt: number;
  activatesAt: number;
  /** Undefined when it could not be decrypted (logged); such a key never signs. */
  privateKey: CryptoKey | undefined;
}

interface KeyRow {
  kid: string;
  generation: number;
  alg: string;
  public_jwk: string;
  private_jwk_encrypted: string | null;
  created_at: string;
  activates_at: string;
}

/** The key that signs now. */
export interface SigningKey {
  kid: string;
  key: CryptoKey;
}

/**
 * The signing keys of this instance, re-read from the table by
 * {@link SigningKeyRing.sync}. Reads ({@link signingKey}, {@link keySet})
 * are synchronous and cheap: they run per request.
 */
export class SigningKeyRing {
  readonly #db: Db;
  readonly #masterKey: Buffer;
  readonly #rotationMs: number;
  readonly #tokenTtlMs: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  /** Non-retired keys, oldest generation first. */
  #keys: LoadedKey[] = [];
  #keySet: { keys: JWK[] } = { keys: [] };

  private constructor(options: SigningKeyRingOptions) {
    this.#db = options.db;
    this.#masterKey = options.masterKey;
    this.#rotationMs = options.keyRotationMs;
    this.#tokenTtlMs = options.tokenTtlMs;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Loads the keys, creating the first one or a due replacement, and checks
   * that the master key decrypts every stored key.
   *
   * @throws IssuerError `issuer.master_key_mismatch` when it does not.
   */
  static async open(options: SigningKeyRingOptions): Promise<SigningKeyRing> {
    const ring = new SigningKeyRing(options);
    await ring.sync({ strict: true });
    return ring;
  }

  /**
   * Re-reads the table, retires replaced keys whose tokens have all expired,
   * and creates the next key when the current one is due for rotation.
   * `strict` (at start-up) turns an undecryptable key into an error; later it
   * is logged and the key skipped, so a misconfigured peer cannot stop this
   * instance from signing.
   */
  async sync(options: { strict?: boolean } = {}): Promise<void> {
    const now = this.#now();
    // The highest generation, read before the keys: a peer that rotates after this read inserts the
    // generation this instance would, so one of the two inserts conflicts. Read after the keys (or
    // at insert time), a peer's rotation in between made this instance insert the generation after
    // it: two replacements (seen on PostgreSQL with four instances rotating at once).
    const top = await this.#topGeneration();
    let rows = await this.#load();
    let changed = false;
    for (let i = 0; i < rows.length - 1; i++) {
      // A key stopped signing when its successor started.
      const replacedAt = Date.parse(rows[i + 1]!.activates_at);
      if (now >= replacedAt + this.#tokenTtlMs + KEY_RETIRE_MARGIN_MS) {
        await this.#db.execute(
          'update signing_keys set retired_at = $1, private_jwk_encrypted = null where kid = $2 and retired_at is null',
          [new Date(now).toISOString(), rows[i]!.kid],
        );
        this.#logger.info({ kid: rows[i]!.kid }, 'issuer: signing key retired');
        changed = true;
      }
    }
    const newest = rows.at(-1);
    if (newest === undefined || now - Date.parse(newest.activates_at) >= this.#rotationMs) {
      // Re-read whether this instance's insert won or another instance's did.
      await this.#create(now, newest === undefined, top + 1);
      changed = true;
    }
    if (changed) rows = await this.#load();
    const previous = new Map(this.#keys.map((k) => [k.kid, k]));
    const keys: LoadedKey[] = [];
    for (const row of rows) {
      const known = previous.get(row.kid);
      if (known?.privateKey) {
        keys.push(known);
        continue;
      }
      keys.push({
        kid: row.kid,
        generation: Number(row.generation),
        publicJwk: JSON.parse(row.public_jwk) as JWK,
        createdAt: Date.parse(row.created_at),
        activatesAt: Date.parse(row.activates_at),
        privateKey: await this.#decrypt(row, options.strict === true),
      });
    }
    const kids = (list: LoadedKey[]) => list.map((k) => k.kid).join(',');
    if (kids(keys) !== kids(this.#keys) || keys.some((k, i) => k !== this.#keys[i])) {
      this.#keys = keys;
      // One frozen object per change, so a verifier can cache what it derives from it by identity.
      this.#keySet = Object.freeze({ keys: Object.freeze(keys.map((k) => k.publicJwk)) as JWK[] });
    }
  }

  /**
   * The key that signs now: the newest whose activation time has come; before
   * any has (the first key, or clocks behind a peer's), the oldest published.
   *
   * @throws IssuerError `issuer.no_signing_key` when no key can be decrypted.
   */
  signingKey(): SigningKey {
    const now = this.#now();
    const usable = this.#keys.filter((k) => k.privateKey !== undefined);
    const current = usable.findLast((k) => k.activatesAt <= now) ?? usable[0];
    if (!current?.privateKey) {
      throw new IssuerError('issuer.no_signing_key', 'the issuer has no signing key it can decrypt');
    }
    return { kid: current.kid, key: current.privateKey };
  }

  /** The published public keys (RFC 7517 JWK Set): upcoming, current and previous keys. */
  keySet(): { keys: JWK[] } {
    return this.#keySet;
  }

  async #load(): Promise<KeyRow[]> {
    return this.#db.query<KeyRow>(
      'select kid, generation, alg, public_jwk, private_jwk_encrypted, created_at, activates_at from signing_keys where retired_at is null order by generation',
    );
  }

  /** The highest generation in the table, retired keys included; 0 when it is empty. */
  async #topGeneration(): Promise<number> {
    const [top] = await this.#db.query<{ generation: number | null }>(
      'select max(generation) as generation from signing_keys',
    );
    return Number(top?.generation ?? 0);
  }

  /** Inserts `generation`; false when another instance got there first. */
  async #create(now: number, first: boolean, generation: number): Promise<boolean> {
    const { publicKey, privateKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    // RFC 7638 thumbprint: a kid derived from the key itself, never reused.
    const kid = await calculateJwkThumbprint(publicJwk);
    const published: JWK = { ...publicJwk, kid, alg: SIGNING_ALG, use: 'sig' };
    const blob = encryptPrivateJwk(this.#masterKey, kid, await exportJWK(privateKey));
    const activatesAt = first ? now : now + KEY_PUBLISH_AHEAD_MS;
    const { changes } = await this.#db.execute(
      `insert into signing_keys (kid, generation, alg, public_jwk, private_jwk_encrypted, created_at, activates_at)
       values ($1, $2, $3, $4, $5, $6, $7) on conflict do nothing`,
      [
        kid,
        generation,
        SIGNING_ALG,
        JSON.stringify(published),
        blob,
        new Date(now).toISOString(),
        new Date(activatesAt).toISOString(),
      ],
    );
    if (changes > 0) {
      this.#logger.info(
        { kid, generation, activatesAt: new Date(activatesAt).toISOString() },
        'issuer: signing key created',
      );
    }
    return changes > 0;
  }

  async #decrypt(row: KeyRow, strict: boolean): Promise<CryptoKey | undefined> {
    try {
      if (row.private_jwk_encrypted === null)
        throw new IssuerError('issuer.no_signing_key', 'no private key');
      const jwk = decryptPrivateJwk(this.#masterKey, row.kid, row.private_jwk_encrypted);
      // Non-extractable: once imported, the private key cannot be read back out of this process's CryptoKey.
      return (await importJWK(jwk, SIGNING_ALG, { extractable: false })) as CryptoKey;
    } catch (err) {
      if (strict) throw err;
      this.#logger.error(
        { kid: row.kid, code: err instanceof IssuerError ? err.code : undefined },
        'issuer: a signing key cannot be decrypted with this instance master key; it will not sign here',
      );
      return undefined;
    }
  }
}
