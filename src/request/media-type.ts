/**
 * Content-Type, parsed once per request with the `content-type` package
 * (RFC 9110 §8.3 grammar: one `type/subtype` and `;` parameters, quoted
 * strings unescaped). A list (`a/b, c/d`) or any other malformed value is
 * refused: upstreams read such values differently (first, last, or as text).
 */
import contentType from 'content-type';
import type { BodyKind, MediaType } from '../contracts/request.js';

/**
 * Clients send a handful of distinct Content-Type values; parsing one costs
 * about 2 µs, a lookup nothing. Results are frozen and shared; the cache is
 * emptied when full, so a client sending endless variants only evicts.
 */
const cache = new Map<string, MediaType | null>();
const CACHE_SIZE = 256;

/** Parses a Content-Type value; undefined when malformed. */
export function parseMediaType(value: string): MediaType | undefined {
  const hit = cache.get(value);
  if (hit !== undefined) return hit ?? undefined;
  const parsed = parse(value);
  if (cache.size >= CACHE_SIZE) cache.clear();
  cache.set(value, parsed ?? null);
  return parsed;
}

function parse(value: string): MediaType | undefined {
  let parsed: contentType.ParsedMediaType;
  try {
    // A trailing `;` (sent by some clients) carries nothing: tolerated.
    parsed = contentType.parse(value.replace(/;\s*$/, ''));
  } catch {
    return undefined;
  }
  // A repeated parameter (`boundary=a; boundary=b`) is read as the first by some parsers, the last by others.
  const names = [...value.matchAll(PARAMETER_NAME)].map((m) => m[1]!.toLowerCase());
  if (new Set(names).size !== names.length) return undefined;
  return Object.freeze({ essence: parsed.type, parameters: Object.freeze({ ...parsed.parameters }) });
}

const PARAMETER_NAME = /;\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=/g;

/**
 * How a body of this media type is read. JSON covers the aliases that
 * upstream frameworks parse as JSON (`text/json`, `application/x-json`,
 * `+json`); XML covers `+xml`. Anything else is binary: inspected as raw text.
 */
export function bodyKindOf(essence: string): BodyKind {
  if (
    essence === 'application/json' ||
    essence.endsWith('+json') ||
    essence === 'application/x-json' ||
    essence === 'text/json' ||
    essence === 'text/x-json'
  )
    return 'json';
  if (essence === 'application/x-www-form-urlencoded') return 'form';
  if (essence === 'multipart/form-data') return 'multipart';
  if (essence === 'application/xml' || essence === 'text/xml' || essence.endsWith('+xml')) return 'xml';
  if (essence.startsWith('text/')) return 'text';
  return 'binary';
}
