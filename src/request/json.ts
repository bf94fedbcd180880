/**
 * Strict JSON parsing for request bodies: valid UTF-8 without a BOM, no
 * duplicate keys, no `__proto__` / `constructor` / `prototype` keys, and
 * bounded depth, key count and string length — all checked before any
 * object is built.
 *
 * Why a small scan and not a library: `JSON.parse` cannot report duplicate
 * keys (the last one silently wins, and the upstream's parser may pick the
 * first: a classic smuggling gap) and a reviver runs only after the whole
 * tree is built, too late to bound it. No installed package does these
 * checks, and a full second parser would be a second place for bugs. So one
 * linear pass looks only at the structure (brackets, commas, and the
 * extent of each string, found with indexOf), decodes just the keys, and
 * leaves the actual parsing to `JSON.parse`. Malformed input is never
 * trusted by the scan: it stops early and `JSON.parse` rejects it.
 *
 * Prototype keys are rejected outright rather than neutralised: `JSON.parse`
 * makes `__proto__` an own property (harmless here), but the moment any
 * code copies the object with `Object.assign` or a merge, it sets the
 * prototype of the copy (see the tests). Refusing the keys keeps every
 * consumer safe, upstream included.
 *
 * Numbers that a double cannot hold are refused too (`number_precision`):
 * `JSON.parse` rounds `100.0000000000000001` to 100 and `9007199254740993`
 * to …992, so the schema would check a value the client never sent, while
 * the upstream gets the bytes as sent and a decimal-exact parser (Decimal,
 * BigDecimal, PostgreSQL numeric, big-int parsers) reads them as written.
 */
import { type ProblemItem, pointerSegment } from '../openapi/errors.js';
import type { JsonLimits } from '../openapi/settings.js';

export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export type JsonResult = { ok: true; value: unknown } | { ok: false; problem: ProblemItem };

/** Decodes strict UTF-8; a BOM stays in the text (and JSON.parse then refuses it). */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Parses a JSON body under `limits`; the problem's location is a pointer under `prefix`. */
export function parseJson(bytes: Uint8Array, limits: JsonLimits, prefix = '/body'): JsonResult {
  const text = decodeUtf8(bytes);
  if (text === undefined) return { ok: false, problem: { location: prefix, rule: 'encoding' } };
  const structural = scanJson(text, limits, prefix);
  if (structural !== undefined) return { ok: false, problem: structural };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    // The SyntaxError message quotes the input: never passed on.
    return { ok: false, problem: { location: prefix, rule: 'json' } };
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** A number literal as RFC 8259 §6 spells it (the form parameters are read in, too). */
const NUMBER_LITERAL = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * Whether the number literal means exactly the double every parser reads it
 * as: its value, as a decimal, is that of the double's shortest round-trip
 * form (`String(n)`). So `0.1`, `100.0`, `1e2`, `-0` and `9007199254740992`
 * are exact; `100.0000000000000001`, `9007199254740993`, `1e400` (not
 * finite) and `1e-400` (not zero, read as 0) are not. Text that is not a
 * number literal is not an exact number either.
 *
 * The one deliberate strictness: a literal spelling out a double's full
 * binary expansion (`0.1000000000000000055511151231257827021181583404541015625`)
 * is refused though it is that double's exact value.
 */
export function isExactNumber(literal: string): boolean {
  return NUMBER_LITERAL.test(literal) && exactLiteral(literal);
}

/**
 * `isExactNumber` for a well-formed literal (on malformed text it may
 * answer either way). Any decimal of at most 15 significant digits within
 * the normal range survives the trip through a double (DBL_DIG), so only
 * longer ones, or extreme magnitudes, are converted and compared.
 */
function exactLiteral(literal: string): boolean {
  const n = literal.length;
  let k = literal.charCodeAt(0) === 0x2d ? 1 : 0;
  let digits = 0;
  let whole = -1;
  let first = -1;
  let last = -1;
  for (; k < n; k++) {
    const c = literal.charCodeAt(k);
    if (c === 0x2e) whole = digits;
    else if (c >= 0x30 && c <= 0x39) {
      if (c !== 0x30) {
        if (first === -1) first = digits;
        last = digits;
      }
      digits++;
    } else break;
  }
  if (first === -1) return true; // zero, whatever its exponent
  if (last - first < 15) {
    // The decimal exponent of the first significant digit.
    const magnitude = (whole === -1 ? digits : whole) - first + (k < n ? Number(literal.slice(k + 1)) : 0);
    if (magnitude > -300 && magnitude < 300) return true;
  }
  return exactByValue(literal);
}

/** The slow path: the literal and the double's shortest form denote the same decimal. */
function exactByValue(literal: string): boolean {
  const n = Number(literal);
  if (!Number.isFinite(n)) return false;
  // Most senders write the shortest round-trip form already.
  const shortest = String(n);
  return shortest === literal || normalDecimal(literal) === normalDecimal(shortest);
}

/**
 * A well-formed number literal (or `String(n)`) as a canonical decimal: `0`
 * for zero, else sign, significant digits without leading or trailing zeros,
 * and the exponent of `0.digits × 10^e` — `100.0`, `1e2` and `1E+2` all give
 * `1e3`.
 */
function normalDecimal(text: string): string {
  const negative = text.charCodeAt(0) === 0x2d;
  let e = text.indexOf('e');
  if (e === -1) e = text.indexOf('E');
  const end = e === -1 ? text.length : e;
  const dot = text.indexOf('.');
  const whole = text.slice(negative ? 1 : 0, dot === -1 ? end : dot);
  const digits = dot === -1 ? whole : whole + text.slice(dot + 1, end);
  let first = 0;
  while (first < digits.length && digits.charCodeAt(first) === 0x30) first++;
  let last = digits.length;
  while (last > first && digits.charCodeAt(last - 1) === 0x30) last--;
  if (first === last) return '0';
  const exponent = whole.length - first + (e === -1 ? 0 : Number(text.slice(e + 1)));
  return `${negative ? '-' : ''}${digits.slice(first, last)}e${exponent}`;
}

/** Whether `c` can continue a number token (digits, `.`, `e`, `E`, `+`, `-`). */
function numberChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
}

/**
 * The first structural problem of `text`, or undefined. Assumes nothing
 * about well-formedness: on malformed input it may stop without a problem,
 * and `JSON.parse` then rejects the text.
 */
export function scanJson(text: string, limits: JsonLimits, prefix = '/body'): ProblemItem | undefined {
  // One entry per open container: the keys seen (objects) or null (arrays).
  const keys: (Set<string> | null)[] = [];
  // The location of each open container's current member.
  const path: (string | number)[] = [];
  let expectKey = false;
  let keyCount = 0;
  /** The pointer of the current member, or (`parent`) of the container it is in. */
  const at = (parent = false) => {
    let out = prefix;
    const end = parent ? path.length - 1 : path.length;
    for (let k = 0; k < end; k++) out += `/${pointerSegment(path[k]!)}`;
    return out;
  };
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      let end = -1;
      for (let j = i + 1; j < n; ) {
        const q = text.indexOf('"', j);
        if (q === -1) return undefined;
        let b = q - 1;
        while (b > i && text.charCodeAt(b) === BACKSLASH) b--;
        if ((q - 1 - b) % 2 === 0) {
          end = q;
          break;
        }
        j = q + 1;
      }
      if (end === -1) return undefined;
      const raw = text.slice(i + 1, end);
      let value = raw;
      if (raw.includes('\\')) {
        try {
          value = JSON.parse(text.slice(i, end + 1)) as string;
        } catch {
          return undefined;
        }
      }
      const top = keys[keys.length - 1];
      if (expectKey && top) {
        if (value.length > limits.maxString) return { location: at(true), rule: 'max_string' };
        if (++keyCount > limits.maxKeys) return { location: at(true), rule: 'max_keys' };
        path[path.length - 1] = value;
        if (FORBIDDEN_KEYS.has(value)) return { location: at(), rule: 'forbidden_key' };
        if (top.has(value)) return { location: at(), rule: 'duplicate_key' };
        top.add(value);
        expectKey = false;
      } else if (value.length > limits.maxString) {
        return { location: at(), rule: 'max_string' };
      }
      i = end;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (keys.length >= limits.maxDepth) return { location: at(), rule: 'max_depth' };
      const object = c === 0x7b;
      keys.push(object ? new Set() : null);
      path.push(object ? '' : 0);
      expectKey = object;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      keys.pop();
      path.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      const top = keys.length - 1;
      if (top < 0) return undefined;
      if (keys[top]) expectKey = true;
      else path[top] = (path[top] as number) + 1;
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      // A number token. Only one with an exponent or more than 15
      // characters can be inexact: others are skipped without a copy.
      let end = i + 1;
      let exponent = false;
      for (; end < n; end++) {
        const d = text.charCodeAt(end);
        if (!numberChar(d)) break;
        if (d === 0x65 || d === 0x45) exponent = true;
      }
      if ((exponent || end - i > 15) && !expectKey) {
        // Malformed tokens (NaN in exactLiteral) are left to JSON.parse.
        const literal = text.slice(i, end);
        if (!exactLiteral(literal) && NUMBER_LITERAL.test(literal))
          return { location: at(), rule: 'number_precision' };
      }
      i = end - 1;
    }
  }
  return undefined;
}
