/**
 * The admin token format, the API key format's sibling with its own prefix:
 * `pcla_<id>_<secret><checksum>`, 71 characters of `[0-9A-Za-z_]`:
 * `pcla_` + 16 + `_` + 43 + 6 (see `src/keys/format.ts` for why each part).
 * A distinct prefix lets people and secret scanners tell an admin token,
 * which can manage the gateway, from an API key, which calls the APIs behind it.
 * The stored, public id is `adt_<id>`.
 */
import { checksum, randomBase62 } from '../../keys/format.js';

export const ADMIN_TOKEN_PREFIX = 'pcla_';
export const ADMIN_TOKEN_ID_PREFIX = 'adt_';

const ID_LENGTH = 16;
const SECRET_LENGTH = 43;
const CHECKSUM_LENGTH = 6;

export const ADMIN_TOKEN_LENGTH = ADMIN_TOKEN_PREFIX.length + ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH;

const TOKEN_PATTERN = new RegExp(
  `^${ADMIN_TOKEN_PREFIX}([0-9A-Za-z]{${ID_LENGTH}})_([0-9A-Za-z]{${SECRET_LENGTH}})([0-9A-Za-z]{${CHECKSUM_LENGTH}})$`,
);
const ID_PATTERN = new RegExp(`^${ADMIN_TOKEN_ID_PREFIX}[0-9A-Za-z]{${ID_LENGTH}}$`);

/** A new token: its public id, its secret, and the whole token (shown once). */
export function generateAdminToken(): { id: string; secret: string; token: string } {
  const rawId = randomBase62(ID_LENGTH);
  const secret = randomBase62(SECRET_LENGTH);
  const body = `${ADMIN_TOKEN_PREFIX}${rawId}_${secret}`;
  return { id: `${ADMIN_TOKEN_ID_PREFIX}${rawId}`, secret, token: body + checksum(body) };
}

/**
 * The id and secret of a well-formed token with a correct checksum, or
 * `undefined`; the length is checked first, so an oversized input costs nothing.
 */
export function parseAdminToken(raw: string): { id: string; secret: string } | undefined {
  if (typeof raw !== 'string' || raw.length !== ADMIN_TOKEN_LENGTH) return undefined;
  const m = TOKEN_PATTERN.exec(raw);
  if (!m) return undefined;
  if (checksum(raw.slice(0, raw.length - CHECKSUM_LENGTH)) !== m[3]) return undefined;
  return { id: `${ADMIN_TOKEN_ID_PREFIX}${m[1]}`, secret: m[2]! };
}

/** Whether `value` has the shape of a stored admin token id. */
export function isAdminTokenId(value: string): boolean {
  return typeof value === 'string' && ID_PATTERN.test(value);
}
