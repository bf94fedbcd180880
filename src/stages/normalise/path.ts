/**
 * Turns a request-target into one canonical path, so that the gateway and
 * the upstream can never disagree about which route a request is.
 *
 * Written by hand because no library does exactly this: WHATWG URL parsing
 * treats `\` as `/` and keeps encoded slashes, and RFC 3986 normalisation
 * libraries do not reject the encodings that make route bypasses. The rules:
 * - only origin-form targets (`/path?query`);
 * - percent-encodings of unreserved characters are decoded (once), others are
 *   kept with upper-case hex; `%2F`, `%5C` and `%00` are rejected, as are
 *   malformed escapes, `\` and control characters;
 * - other characters outside RFC 3986 `pchar` are percent-encoded;
 * - runs of `/` collapse to one; `.` and `..` segments are removed
 *   (RFC 3986 §5.2.4), never climbing above the root;
 * - segments like `..;x` (Tomcat-style path parameters on dot segments) are
 *   rejected, because some servers treat them as `..`.
 */

export class BadPathError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'BadPathError';
  }
}

export interface Target {
  /** Canonical path, always starting with `/`. */
  path: string;
  /** The raw query string without `?`, or empty. */
  query: string;
}

enum Char {
  Ok = 0,
  Encode = 1,
  Reject = 2,
  Special = 3,
}

// Classification of each byte in a path: pchar (plus '/') passes as is.
const TABLE = new Uint8Array(256).fill(Char.Encode);
for (let c = 0; c < 0x20; c++) TABLE[c] = Char.Reject;
TABLE[0x7f] = Char.Reject;
for (const ch of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@") {
  TABLE[ch.charCodeAt(0)] = Char.Ok;
}
TABLE['%'.charCodeAt(0)] = Char.Special;
TABLE['/'.charCodeAt(0)] = Char.Special;
TABLE['.'.charCodeAt(0)] = Char.Special;
TABLE['\\'.charCodeAt(0)] = Char.Reject;
TABLE['#'.charCodeAt(0)] = Char.Reject;

const UNRESERVED = new Uint8Array(256);
for (const ch of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~') {
  UNRESERVED[ch.charCodeAt(0)] = 1;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

const HEX = '0123456789ABCDEF';

/** Splits and normalises a raw request-target. Throws BadPathError. */
export function normaliseTarget(rawUrl: string): Target {
  const q = rawUrl.indexOf('?');
  const rawPath = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const query = q === -1 ? '' : rawUrl.slice(q + 1);
  return { path: normalisePath(rawPath), query };
}

/** Normalises the path part of a request-target. Throws BadPathError. */
export function normalisePath(raw: string): string {
  if (raw.charCodeAt(0) !== 47) throw new BadPathError('not an origin-form target');
  // Fast path: most paths have nothing to decode, encode or remove.
  let clean = true;
  let prev = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    const kind = c > 255 ? Char.Encode : TABLE[c]!;
    if (kind === Char.Ok) {
      prev = c;
      continue;
    }
    if (kind === Char.Reject) throw new BadPathError(`character 0x${c.toString(16)} not allowed in a path`);
    if (kind === Char.Encode || c === 37) {
      clean = false;
      break;
    }
    // '/' after '/', or '.' right after '/': maybe a dot segment or '//'.
    if (c === 47 && prev === 47) {
      clean = false;
      break;
    }
    if (c === 46 && prev === 47) {
      clean = false;
      break;
    }
    prev = c;
  }
  return clean ? raw : slowNormalise(raw);
}

function slowNormalise(raw: string): string {
  // 1. Decode unreserved escapes, canonicalise other escapes, encode stray characters.
  let decoded = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) throw new BadPathError('malformed percent-encoding');
      const byte = hi * 16 + lo;
      if (byte === 0x2f || byte === 0x5c || byte === 0) throw new BadPathError('encoded "/", "\\" or NUL');
      decoded += UNRESERVED[byte] ? String.fromCharCode(byte) : `%${HEX[hi]}${HEX[lo]}`;
      i += 2;
      continue;
    }
    const kind = c > 255 ? Char.Encode : TABLE[c]!;
    if (kind === Char.Reject) throw new BadPathError(`character 0x${c.toString(16)} not allowed in a path`);
    if (kind === Char.Encode) {
      for (const b of Buffer.from(String.fromCharCode(c), c > 255 ? 'utf8' : 'latin1')) {
        decoded += `%${HEX[b >> 4]}${HEX[b & 15]}`;
      }
      continue;
    }
    decoded += raw[i];
  }
  // 2. Collapse '//' and remove dot segments.
  const out: string[] = [];
  const segments = decoded.split('/');
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '' && !last) continue;
    if (seg === '.') {
      if (last) out.push('');
      continue;
    }
    if (seg === '..') {
      out.pop();
      if (last) out.push('');
      continue;
    }
    const semi = seg.indexOf(';');
    if (semi !== -1) {
      const bare = seg.slice(0, semi);
      if (bare === '.' || bare === '..') throw new BadPathError('dot segment with path parameters');
    }
    out.push(seg);
  }
  return `/${out.join('/')}`;
}
