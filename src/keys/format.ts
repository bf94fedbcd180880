/**
 * The API key format: `pcl_<id>_<secret><checksum>`, 70 characters of
 * `[0-9A-Za-z_]`: `pcl_` + 16 + `_` + 43 + 6.
 *
 * - `pcl_`: a fixed prefix, so a leaked key is recognisable by people and by
 *   secret scanners (GitHub secret scanning, gitleaks, trufflehog).
 * - `<id>`: 16 base62 characters, public. The stored id is `key_<id>`: it is
 *   what `keys list` shows and what logs and audit records name.
 * - `<secret>`: 43 base62 characters, uniformly random: 43 × log2(62) ≈ 256 bits.
 * - `<checksum>`: CRC-32 of everything before it, as 6 base62 characters
 *   (62^6 > 2^32), so a scanner can tell a real key from random text and a
 *   mistyped or truncated key is refused before any lookup. CRC-32 detects
 *   every change confined to 32 consecutive bits, hence every single-character
 *   typo and every swap of neighbouring characters. It is not a MAC: it only
 *   filters noise; the secret is what authenticates.
 *
 * The same scheme as GitHub's tokens (`ghp_` + base62 + CRC-32 in base62);
 * every part is word characters, so a double click selects the whole key.
 */
import { randomBytes } from 'node:crypto';
// node:zlib has had crc32 since Node 20.15 (engines: >= 20.18.1), so no table by hand.
import { crc32 } from 'node:zlib';

/** The readable prefix every key starts with. */
export const API_KEY_PREFIX = 'pcl_';
/** The prefix of the stored, public key id. */
export const API_KEY_ID_PREFIX = 'key_';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const ID_LENGTH = 16;
const SECRET_LENGTH = 43;
const CHECKSUM_LENGTH = 6;

/** Every key has exactly this many characters. */
export const API_KEY_LENGTH = API_KEY_PREFIX.length + ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH;

const KEY_PATTERN = new RegExp(
  `^${API_KEY_PREFIX}([0-9A-Za-z]{${ID_LENGTH}})_([0-9A-Za-z]{${SECRET_LENGTH}})([0-9A-Za-z]{${CHECKSUM_LENGTH}})$`,
);
const ID_PATTERN = new RegExp(`^${API_KEY_ID_PREFIX}[0-9A-Za-z]{${ID_LENGTH}}$`);
const SECRET_PATTERN = new RegExp(`^[0-9A-Za-z]{${SECRET_LENGTH}}$`);

/** A freshly generated key. */
export interface GeneratedApiKey {
  /** The public id, `key_…`: safe to store, list and log. */
  id: string;
  /** The secret part alone; only its HMAC is ever stored. */
  secret: string;
  /** The whole key, as given to its owner once. */
  key: string;
}

/** The parts of a well-formed key. */
export interface ParsedApiKey {
  /** The public id, `key_…`. */
  id: string;
  secret: string;
}

/** `length` characters of [0-9A-Za-z], each uniform (also used by the admin token format). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length + 8)) {
      // 248 = 4 × 62: bytes above it are dropped so each character is uniform.
      if (byte < 248) out += ALPHABET[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** The base62 CRC-32 checksum that ends a key (also used by the admin token format). */
export function checksum(body: string): string {
  let n = crc32(body);
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** Generates a new key: a random id and a 256-bit secret. */
export function generateApiKey(): GeneratedApiKey {
  const id = `${API_KEY_ID_PREFIX}${randomBase62(ID_LENGTH)}`;
  const secret = randomBase62(SECRET_LENGTH);
  return { id, secret, key: formatApiKey(id, secret) };
}

/**
 * Assembles a key from its id (`key_…`) and secret, adding the checksum.
 *
 * @throws TypeError when the id or the secret does not have the key format's shape.
 */
export function formatApiKey(id: string, secret: string): string {
  if (!isApiKeyId(id) || !SECRET_PATTERN.test(secret)) {
    throw new TypeError('not an API key id and secret');
  }
  const body = `${API_KEY_PREFIX}${id.slice(API_KEY_ID_PREFIX.length)}_${secret}`;
  return body + checksum(body);
}

/**
 * Splits a presented key into its id and secret, or returns `undefined` when
 * it is not a well-formed key with a correct checksum. Pure computation, no
 * I/O: a malformed key never reaches the store. The length is checked before
 * anything else, so an oversized input costs nothing.
 */
export function parseApiKey(raw: string): ParsedApiKey | undefined {
  if (typeof raw !== 'string' || raw.length !== API_KEY_LENGTH) return undefined;
  const m = KEY_PATTERN.exec(raw);
  if (!m) return undefined;
  const body = raw.slice(0, raw.length - CHECKSUM_LENGTH);
  if (checksum(body) !== m[3]) return undefined;
  return { id: `${API_KEY_ID_PREFIX}${m[1]}`, secret: m[2]! };
}

/** Whether `value` has the shape of a stored key id (`key_` and 16 base62 characters). */
export function isApiKeyId(value: string): boolean {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

/** Shortest imported key accepted: below this a key is guessable whatever the lockout. */
export const IMPORTED_KEY_MIN_LENGTH = 16;
/** Longest imported key accepted (Kong, Tyk and most in-house keys are 32 to 128 characters). */
export const IMPORTED_KEY_MAX_LENGTH = 256;
const IMPORTED_KEY_PATTERN = new RegExp(
  `^[\\x21-\\x7e]{${IMPORTED_KEY_MIN_LENGTH},${IMPORTED_KEY_MAX_LENGTH}}$`,
);

/**
 * Whether `raw` could be an imported key (`portcullis keys import`): 16 to
 * 256 printable ASCII characters without spaces, and not starting with
 * `pcl_` (those are Portcullis's own, checked by {@link parseApiKey}). Pure
 * computation, length first: anything else is refused with no lookup, as a
 * malformed key is.
 */
export function isImportableKey(raw: string): boolean {
  return (
    typeof raw === 'string' &&
    raw.length >= IMPORTED_KEY_MIN_LENGTH &&
    raw.length <= IMPORTED_KEY_MAX_LENGTH &&
    !raw.startsWith(API_KEY_PREFIX) &&
    IMPORTED_KEY_PATTERN.test(raw)
  );
}
