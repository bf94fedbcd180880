/**
 * Scrubbing of free text before it is audited. Events are built to carry no
 * secret (no tokens, keys, passwords or bodies), but a `detail` string is
 * written by many hands: an upstream error message, a parser's complaint
 * quoting its input. Whatever looks like a credential is replaced by
 * `[redacted]` before the event is hashed, stored or streamed, so no form of
 * it (not even a hash, which a guess could be checked against) is kept.
 *
 * Hand-written: no maintained library scrubs credentials out of free text
 * (pino's `redact` works on known object paths, not inside strings).
 */

/** What replaces a secret. */
export const REDACTED = '[redacted]';

/** Field names whose values are always scrubbed, matched anywhere in a key (`db_password`, `x-auth-token`). */
export const SENSITIVE_FIELD_WORDS = [
  'password',
  'passwd',
  'pwd',
  'passphrase',
  'secret',
  'token',
  'api_key',
  'api-key',
  'apikey',
  'authorization',
  'cookie',
  'session',
  'credential',
  'private_key',
  'private-key',
] as const;

/** A function that returns its input with anything resembling a secret replaced. */
export type Redact = (text: string) => string;

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `scheme://user:password@host` */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s/@]+@/gi;
/** `Bearer <token>`, `Basic <base64>`, `DPoP <token>` (RFC 6750, 7617, 9449). */
const AUTH_SCHEME = /\b(Bearer|Basic|DPoP)(\s+)[A-Za-z0-9\-._~+/]{8,}=*/gi;
/** JWS (3 parts) and JWE (5 parts) compact serialisations: the header always starts `eyJ` (`{"`). */
const JWT = /\beyJ[A-Za-z0-9_-]{5,}(?:\.[A-Za-z0-9_-]*){1,4}/g;
/** Portcullis API keys (`pcl_<id>_<secret><crc>`, `src/keys/format.ts`), whole or truncated. */
const API_KEY = /\bpcl_[0-9A-Za-z_]+/g;
/** A long run of base64/base64url characters: a secret unless it is all one case or all letters. */
const OPAQUE = /(?<![A-Za-z0-9_+/-])[A-Za-z0-9_+/-]{32,}={0,2}(?![A-Za-z0-9_+/=-])/g;
/** One path segment of the same kind (`/reset/<token>`); shorter than OPAQUE's rule needs to be for prose. */
const OPAQUE_SEGMENT = /(?<=\/)[A-Za-z0-9_-]{32,}(?=\/|$)/g;

/** Everything any rule above needs: a separator, a scheme word, a JWT or key prefix, or a long run. */
const MIGHT_HOLD_SECRET = /[:=]|eyJ|pcl_|bearer|basic|dpop|[A-Za-z0-9_+/-]{32}/i;
const PATH_MIGHT_HOLD_SECRET = /[:=]|eyJ|pcl_|[A-Za-z0-9_-]{32}/;

const looksRandom = (s: string): boolean => /[A-Z]/.test(s) && /[a-z]/.test(s) && /[0-9]/.test(s);

function keyValuePattern(words: readonly string[]): RegExp {
  const names = words.map(escapeRegExp).join('|');
  // key (containing a sensitive word), separator, value (quoted, or up to a delimiter).
  return new RegExp(
    `([A-Za-z0-9_.-]*(?:${names})[A-Za-z0-9_.-]*["']?\\s*[:=]\\s*)("[^"]*"|'[^']*'|[^\\s&,;}\\]"']+)`,
    'gi',
  );
}

function scrubKeyValues(text: string, pattern: RegExp): string {
  return text.replace(pattern, (match, key: string, value: string) => {
    const quote = value.startsWith('"') || value.startsWith("'") ? value[0] : '';
    // "key: word" is as often prose ("bad token: bearer …", "invalid_credentials: the …") as a
    // secret; a bare word after a colon is kept, anything with a digit or symbol is not.
    if (quote === '' && !key.includes('=') && /^[A-Za-z]+$/.test(value)) return match;
    if (value.startsWith('[redacted')) return match;
    return `${key}${quote}${REDACTED}${quote}`;
  });
}

/**
 * Builds the scrubber for free text (`detail`, admin details). `extraFields`
 * adds configured sensitive field names (`ssn`, `card_number`) to
 * {@link SENSITIVE_FIELD_WORDS}. Order matters: specific shapes first, so the
 * output says what kind of secret was there where it can.
 */
export function createRedactor(extraFields: readonly string[] = []): Redact {
  const words = [...SENSITIVE_FIELD_WORDS, ...extraFields.map((f) => f.toLowerCase())];
  const keyValues = keyValuePattern(words);
  return (text) => {
    // Most text holds nothing to scrub ("ok", "auth.invalid_credentials"): one cheap test first.
    if (!MIGHT_HOLD_SECRET.test(text)) return text;
    let out = text.replace(URL_USERINFO, `$1${REDACTED}@`);
    out = out.replace(AUTH_SCHEME, `$1$2${REDACTED}`);
    out = out.replace(JWT, REDACTED);
    out = out.replace(API_KEY, `pcl_${REDACTED}`);
    out = scrubKeyValues(out, keyValues);
    return out.replace(OPAQUE, (m) => (looksRandom(m) ? REDACTED : m));
  };
}

/**
 * Builds the scrubber for request paths: credentials in a path (a JWT, an
 * API key, a reset token as a segment, `;jsessionid=…`) are replaced, while
 * ordinary segments, even long ones, are kept so "who accessed this" stays
 * answerable.
 */
export function createPathRedactor(extraFields: readonly string[] = []): Redact {
  const words = [...SENSITIVE_FIELD_WORDS, ...extraFields.map((f) => f.toLowerCase())];
  const keyValues = keyValuePattern(words);
  return (path) => {
    if (!PATH_MIGHT_HOLD_SECRET.test(path)) return path;
    let out = path.replace(JWT, REDACTED).replace(API_KEY, `pcl_${REDACTED}`);
    out = scrubKeyValues(out, keyValues);
    return out.replace(OPAQUE_SEGMENT, (m) => (looksRandom(m) ? REDACTED : m));
  };
}

/** Whether `name` (an admin detail key) names a secret, so its whole value is dropped. */
export function isSensitiveName(name: string, extraFields: readonly string[] = []): boolean {
  const lower = name.toLowerCase();
  return (
    SENSITIVE_FIELD_WORDS.some((w) => lower.includes(w)) ||
    extraFields.some((f) => lower.includes(f.toLowerCase()))
  );
}
