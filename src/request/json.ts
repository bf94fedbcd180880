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
    }
  }
  return undefined;
}
