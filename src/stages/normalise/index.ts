/**
 * Normalise (pipeline step 2): the one parsed view of a request's head.
 * Built once per request, before routing; every later stage reads it and
 * nothing else (DESIGN.md, "One reading of the request"):
 *
 * - the canonical path (`./path.ts`: decode once, dot segments, `//`);
 * - the query under one grammar (`src/request/query.ts`); an undecodable
 *   query is refused, and `_method` (a method override many frameworks
 *   honour) is never forwarded;
 * - the headers read once from the raw list (`src/request/headers.ts`):
 *   repeated singletons refused, `_` names and override headers dropped;
 * - Host validated (syntax, and `listen.hosts` when set); HTTP/1.1
 *   requires one (RFC 9112 §3.2), HTTP/2 an `:authority` or a Host;
 * - an HTTP/2 request's pseudo-headers mapped onto the same view first
 *   (`src/http2/request-head.ts`: `:authority` is the Host, RFC 9113
 *   checks), its `:path` being `req.url` like an HTTP/1.1 target;
 * - Content-Type parsed once (`src/request/media-type.ts`); a malformed
 *   one or a list is refused with 415.
 */
import type { IncomingMessage } from 'node:http';
import type { GatewayConfig } from '../../config/types.js';
import type { MediaType, QueryView, RequestHead } from '../../contracts/request.js';
import { type GatewayError, gatewayError } from '../../errors.js';
import { http1HeaderList } from '../../http2/request-head.js';
import { OVERRIDE_HEADERS, readHeaders, SINGLETON_HEADERS } from '../../request/headers.js';
import { createHostCheck } from '../../request/host.js';
import { parseMediaType } from '../../request/media-type.js';
import { parseQuery } from '../../request/query.js';
import { BadPathError, normaliseTarget } from './path.js';

export type { RequestHead } from '../../contracts/request.js';

/** Query parameters never forwarded: method overrides (Rails, Laravel, Symfony, method-override). */
const DROPPED_QUERY = ['_method'];

export type ReadHead = (req: IncomingMessage) => RequestHead | GatewayError;

/** Builds the reader of request heads for one config. */
export function createHeadReader(config: GatewayConfig): ReadHead {
  const singletons = new Set(SINGLETON_HEADERS);
  const apiKeyHeader = config.auth.apiKeys?.header;
  if (apiKeyHeader !== undefined) singletons.add(apiKeyHeader);
  const dropped = new Set(OVERRIDE_HEADERS);
  const hostAllowed = createHostCheck(config.listen.hosts);
  return function readHead(req) {
    const http2 = req.httpVersionMajor === 2;
    let raw = req.rawHeaders;
    if (http2) {
      const mapped = http1HeaderList(raw);
      if (!mapped.ok) return gatewayError(mapped.error, { internal: mapped.reason });
      raw = mapped.raw;
    }
    const read = readHeaders(raw, singletons, dropped);
    if (!read.ok) return gatewayError('badHeader', { internal: read.reason });
    const headers = read.view;
    const host = headers.get('host');
    if (host === undefined) {
      if (http2 || req.httpVersionMinor === 1) {
        return gatewayError('badRequest', { internal: 'missing Host header' });
      }
    } else if (!hostAllowed(host)) {
      return gatewayError('badHost', { internal: `host ${JSON.stringify(host.slice(0, 100))}` });
    }
    let target: { path: string; query: string };
    try {
      target = normaliseTarget(req.url ?? '');
    } catch (err) {
      return gatewayError('badPath', { internal: err instanceof BadPathError ? err.reason : String(err) });
    }
    const query = parseQuery(target.query);
    if (query === undefined) return gatewayError('badQuery', { internal: 'malformed escape or UTF-8' });
    const typeHeader = headers.get('content-type');
    let contentType: MediaType | undefined;
    if (typeHeader !== undefined) {
      contentType = parseMediaType(typeHeader);
      if (contentType === undefined) {
        return gatewayError('unsupportedMediaType', { internal: 'malformed Content-Type' });
      }
    }
    return {
      path: target.path,
      query,
      forwardQuery: withoutParams(query, DROPPED_QUERY),
      headers,
      contentType,
    };
  };
}

/**
 * The raw query without the `&`-parts that any reading binds to one of
 * `names` (`_method`, `[_method]`, `?_method`, `a=1;_method=…`).
 */
export function withoutParams(query: QueryView, names: readonly string[]): string {
  if (query.raw === '' || !mentions(query, names)) return query.raw;
  if (names.every((n) => query.values(n).length === 0)) return query.raw;
  return query.raw
    .split('&')
    .filter((part) => {
      const one = parseQuery(part);
      return one !== undefined && names.every((n) => one.values(n).length === 0);
    })
    .join('&');
}

/**
 * Whether any decoded name or value holds one of `names` once case and
 * punctuation are set aside: every spelling a reading binds to a name does
 * (brackets, `.`, `;`, `]=`, a leading `?` and case change only those), so
 * a query that mentions none needs no full reading. Saves building the
 * spelling index on nearly every request.
 */
function mentions(query: QueryView, names: readonly string[]): boolean {
  const letters = (text: string): string => text.toLowerCase().replace(/[^a-z0-9]/g, '');
  const wanted = names.map(letters);
  return query.pairs.some(([name, value]) => {
    const n = letters(name);
    const v = letters(value);
    return wanted.some((w) => n.includes(w) || v.includes(w));
  });
}
