/**
 * Proxy (between steps 9 and 10): the call to the upstream over its pooled
 * keep-alive connections (`src/proxy/upstream.ts`). The upstream receives
 * the canonical path, the query as received (less what is never
 * forwarded), the headers of the request view (less credentials and
 * identity headers only the gateway sets), the gateway's identity and
 * forwarding headers, and the body: the bytes a stage read and checked
 * (decoded, framed by length), or the client's stream bounded by the
 * route's limit. The response side runs the route's filters (step 10) and
 * the headers step (11) before anything is sent.
 */
import { hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { RequestContext, ResponseFilter } from '../../contracts/stage.js';
import { gatewayError } from '../../errors.js';
import { type ClientAddress, ipKey } from '../../http/client-ip.js';
import { DROP_RESPONSE, forward, OWNED_RESPONSE_HEADERS, type Upstream } from '../../proxy/upstream.js';
import { streamedBody } from '../../request/body.js';

/** What the proxy step needs of a compiled route. */
export interface ProxyRoute {
  readonly upstream: Upstream;
  readonly bodyLimit: number;
  /** Request headers never forwarded on this route. */
  readonly stripHeaders: ReadonlySet<string>;
  /** Response filters of the route's stages, in pipeline order. */
  readonly filters: readonly ResponseFilter[];
}

/** Writes the response head: the upstream's (or a filter's) headers plus everything the gateway owns. */
export type WriteHead = (ctx: RequestContext, status: number, headers: string[]) => void;

/** Request headers that describe the connection, the framing or what the gateway sets itself. */
const NOT_FORWARDED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-request-id',
  'traceparent',
]);

/** Headers that describe the framing of a body the gateway has replaced. */
const BODY_FRAMING = new Set(['content-length', 'transfer-encoding', 'content-encoding', 'etag']);

/**
 * Sends the request upstream and the answer to the client; first counts it
 * against the client's share of the upstream (`max_connections_per_client`).
 */
export function proxyRequest(
  ctx: RequestContext,
  route: ProxyRoute,
  client: ClientAddress,
  forwardQuery: string,
  writeHead: WriteHead,
): Promise<void> {
  // Plain functions returning the upstream call's promise, not async ones: no
  // coroutine frame and no extra promise per request where nothing is awaited
  // in between; a synchronous failure still becomes a rejection.
  let release: () => void;
  try {
    release = claimClientSlot(route.upstream, client.ip);
  } catch (err) {
    return Promise.reject(err);
  }
  let call: Promise<void>;
  try {
    call = proxyClaimed(ctx, route, client, forwardQuery, writeHead);
  } catch (err) {
    release();
    return Promise.reject(err);
  }
  return release === NO_SLOT ? call : call.finally(release);
}

/** Requests in flight per client key, per upstream that caps them (`max_connections_per_client`). */
const inFlightByClient = new WeakMap<Upstream, Map<string, number>>();
const NO_SLOT = () => {};

/**
 * Counts the request against its client's share of the upstream; throws a
 * 503 when the client already has `max_connections_per_client` in flight.
 * The table holds only clients with requests in flight, so its size is
 * bounded by the open connections.
 */
function claimClientSlot(upstream: Upstream, ip: string): () => void {
  const cap = upstream.settings.maxConnectionsPerClient;
  if (cap === undefined) return NO_SLOT;
  let table = inFlightByClient.get(upstream);
  if (table === undefined) {
    table = new Map();
    inFlightByClient.set(upstream, table);
  }
  const key = ipKey(ip, upstream.settings.clientIpv6Prefix);
  const n = table.get(key) ?? 0;
  if (n >= cap) {
    throw gatewayError('unavailable', {
      headers: { 'retry-after': '1' },
      internal: `client ${key} already has ${n} requests in flight to upstream ${upstream.settings.name} (max_connections_per_client)`,
    });
  }
  table.set(key, n + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const left = (table.get(key) ?? 1) - 1;
    if (left <= 0) table.delete(key);
    else table.set(key, left);
  };
}

/** Builds the upstream request and starts it; may throw before the call starts (the caller rejects). */
function proxyClaimed(
  ctx: RequestContext,
  route: ProxyRoute,
  client: ClientAddress,
  forwardQuery: string,
  writeHead: WriteHead,
): Promise<void> {
  const { req, res } = ctx;
  let body: Readable | Buffer | undefined;
  const headers: string[] = [];
  const connection = ctx.headers.get('connection');
  const named =
    connection === undefined || connection === 'keep-alive' || connection === 'close'
      ? undefined
      : new Set(connection.split(',').map((s) => s.trim().toLowerCase()));
  // A body a stage read was decoded and checked: its own framing and coding no longer apply.
  const read = ctx.body !== undefined;
  // A header a stage set (identity headers, a narrowed Accept) replaces every client line of that name.
  const replaced = ctx.upstreamHeaders;
  for (const [name, value] of ctx.headers.pairs) {
    if (NOT_FORWARDED.has(name) || route.stripHeaders.has(name) || named?.has(name)) continue;
    if (Object.hasOwn(replaced, name)) continue;
    if (read && (name === 'content-length' || name === 'content-encoding')) continue;
    headers.push(name, value);
  }
  if (read) {
    body = ctx.body;
    headers.push('content-length', String(ctx.body!.length));
  } else {
    body = streamedBody(req, res, route.bodyLimit);
  }
  ctx.traceparent = traceparentFor(ctx.headers.get('traceparent'), ctx.id);
  headers.push(
    'x-forwarded-for',
    client.forwardedFor,
    'x-forwarded-proto',
    forwardedProto(req, ctx.headers.get('x-forwarded-proto'), client.peerTrusted),
    'x-forwarded-host',
    (client.peerTrusted ? ctx.headers.all('x-forwarded-host')[0] : undefined) ??
      ctx.headers.get('host') ??
      '',
    'x-request-id',
    ctx.id,
    'traceparent',
    ctx.traceparent,
  );
  for (const name in ctx.upstreamHeaders) headers.push(name, ctx.upstreamHeaders[name]!);
  ctx.stage = 'proxy';
  ctx.upstreamStartedAt = performance.now();
  return forward(route.upstream, res, {
    path: route.upstream.settings.basePath + ctx.path + (forwardQuery === '' ? '' : `?${forwardQuery}`),
    method: ctx.method,
    headers,
    body,
    onHead: (status, raw) => {
      ctx.upstreamEndedAt = performance.now();
      const out: string[] = [];
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!.toString().toLowerCase();
        if (DROP_RESPONSE.has(name) || OWNED_RESPONSE_HEADERS.has(name)) continue;
        out.push(name, raw[i + 1]!.toString('latin1' as BufferEncoding));
      }
      const filters = route.filters;
      if (filters.length > 0) {
        const wanted = filters.filter((f) => f.wants(ctx, status, out));
        if (wanted.length > 0) {
          return {
            limit: Math.min(...wanted.map((f) => f.limit)),
            complete: (bodyBytes) => {
              let response = { status, headers: out, body: bodyBytes };
              for (const f of wanted) response = f.filter(ctx, response);
              const headers = withoutHeaders(response.headers, BODY_FRAMING);
              headers.push('content-length', String(response.body.length));
              writeHead(ctx, response.status, headers);
              res.end(response.body);
            },
          };
        }
      }
      writeHead(ctx, status, out);
      return undefined;
    },
  });
}

function withoutHeaders(pairs: readonly string[], names: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < pairs.length; i += 2) if (!names.has(pairs[i]!)) out.push(pairs[i]!, pairs[i + 1]!);
  return out;
}

function forwardedProto(req: IncomingMessage, claimed: string | undefined, peerTrusted: boolean): string {
  const own = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
  if (!peerTrusted) return own;
  return claimed === 'https' || claimed === 'http' ? claimed : own;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** The W3C trace id: the caller's, or one derived from the request id. */
export function traceIdOf(header: string | undefined, requestId: string): string {
  const m = header === undefined ? null : TRACEPARENT.exec(header);
  if (m && m[1] !== '00000000000000000000000000000000') return m[1]!;
  // Our own request ids are random UUIDs already: reuse their 122 random bits.
  if (requestId.length === 40 && requestId.startsWith('req_')) return requestId.slice(4).replaceAll('-', '');
  return hash('sha256', requestId, 'hex').slice(0, 32);
}

/** The `traceparent` for the upstream: the caller's when valid, else a new trace (W3C Trace Context §3.2). */
function traceparentFor(header: string | undefined, requestId: string): string {
  if (header !== undefined && TRACEPARENT.test(header)) return header;
  const trace = traceIdOf(header, requestId);
  return `00-${trace}-${trace.slice(0, 16)}-01`;
}
