/**
 * One immutable gateway built from one config: the router, the compiled
 * routes with their stages, and the upstream pools. A reload builds a new
 * one and swaps it in; the old one finishes its requests and closes.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { type Readable, Transform } from 'node:stream';
import FindMyWay from 'find-my-way';
import type { Blocklist } from './alerts/index.js';
import type { AuthServices } from './auth/services.js';
import type { GatewayConfig, RouteSettings } from './config/types.js';
import { GatewayError, gatewayError, sendProblem } from './errors.js';
import type { EventSink, RequestEvent } from './events/types.js';
import { type ClientAddress, createClientIpResolver } from './http/client-ip.js';
import { corsResponseHeaders, preflightHeaders } from './http/cors.js';
import { BadPathError, normaliseTarget } from './http/normalise.js';
import type { Logger } from './log.js';
import type { RequestContext, ResponseFilter, Stage } from './pipeline/context.js';
import { type BuildDeps, buildRouteStages } from './pipeline/index.js';
import {
  buildUpstreamHeaders,
  createUpstream,
  DROP_RESPONSE,
  forward,
  type Upstream,
} from './proxy/upstream.js';
import type { RateLimitService } from './ratelimit/index.js';
import type { Store } from './store/types.js';
import { hstsHeaderValue } from './tls/listener.js';

export interface CompiledRoute {
  readonly settings: RouteSettings;
  readonly stages: readonly Stage[];
  readonly upstream: Upstream;
  /** Security headers added to every response of this route, as flat pairs. */
  readonly responseHeaders: readonly string[];
  /** A query parameter never forwarded (the API key, on routes that accept it there). */
  readonly stripQueryParam: string | undefined;
  /** Response filters of the route's stages, in pipeline order. */
  readonly filters: readonly ResponseFilter[];
  /** Request headers never forwarded on this route. */
  readonly stripHeaders: ReadonlySet<string>;
  /** The same, plus the client's Content-Length, for bodies a stage read. */
  readonly stripWithBody: ReadonlySet<string>;
}

export interface GatewayDeps {
  logger: Logger;
  store: Store | undefined;
  auth: AuthServices;
  /** Endpoints the gateway serves itself (the built-in issuer), matched before routes. */
  endpoints?: readonly GatewayEndpoint[];
  /** Receives one security event per completed request. */
  events?: EventSink;
  /** Blocked IPs, keys and principals. */
  blocklist?: Blocklist;
  /** Rate limiters, quotas and concurrency counters. */
  rateLimit?: RateLimitService;
  /** Under `audit.overflow: block`, new requests are refused while the audit queue is full. */
  audit?: { isFull(): boolean };
}

/** An endpoint answered by the gateway itself rather than an upstream. */
export interface GatewayEndpoint {
  method: 'GET' | 'POST';
  path: string;
  handle(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: { clientIp: string; requestId: string },
  ): Promise<void>;
}

/** Response headers the gateway owns: an upstream's value is replaced, not merged. */
const OWNED_RESPONSE_HEADERS = new Set([
  'strict-transport-security',
  'ratelimit',
  'ratelimit-policy',
  'cache-control',
  'x-content-type-options',
  'content-security-policy',
  'referrer-policy',
  'x-request-id',
  'access-control-allow-origin',
  'access-control-allow-credentials',
  'access-control-expose-headers',
  'access-control-allow-methods',
  'access-control-allow-headers',
]);

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

type Router = FindMyWay.Instance<FindMyWay.HTTPVersion.V1>;

export class Gateway {
  readonly config: GatewayConfig;
  private readonly router: Router;
  private readonly upstreams = new Map<string, Upstream>();
  private readonly methods: string[];
  private readonly resolveClient: (req: IncomingMessage) => ClientAddress;
  private readonly logger: Logger;
  private readonly accessLog: boolean;
  /** Request headers never forwarded: identity headers only the gateway sets, and the API key. */
  private readonly stripHeaders: ReadonlySet<string>;
  private readonly endpoints: Map<string, GatewayEndpoint>;
  private readonly events: EventSink | undefined;
  private readonly audit: { isFull(): boolean } | undefined;
  /** Headers added to the gateway's own answers (HSTS on HTTPS). */
  private readonly problemHeaders: Record<string, string> | undefined;

  constructor(config: GatewayConfig, deps: GatewayDeps) {
    this.config = config;
    this.logger = deps.logger;
    this.accessLog = config.log.access;
    this.resolveClient = createClientIpResolver(config.listen.trustedProxies);
    this.router = FindMyWay({ caseSensitive: true, ignoreTrailingSlash: false, maxParamLength: 1000 });
    for (const [name, settings] of Object.entries(config.upstreams)) {
      this.upstreams.set(name, createUpstream(settings, config.tls.upstreams[name]));
    }
    const hsts = config.tls.listener?.hsts;
    // Every response of an HTTPS listener carries HSTS (RFC 6797 §7.1); the redirect listener never does.
    this.problemHeaders = hsts ? { 'strict-transport-security': hstsHeaderValue(hsts) } : undefined;
    const identity = config.auth.identityHeaders;
    this.stripHeaders = new Set([
      identity.subject,
      identity.kind,
      identity.scopes,
      identity.roles,
      identity.tenant,
      ...(config.auth.apiKeys ? [config.auth.apiKeys.header] : []),
    ]);
    this.endpoints = new Map((deps.endpoints ?? []).map((e) => [`${e.method} ${e.path}`, e]));
    this.events = deps.events;
    this.audit = deps.audit;
    const buildDeps: BuildDeps = {
      config,
      logger: deps.logger,
      store: deps.store,
      auth: deps.auth,
      blocklist: deps.blocklist,
      rateLimit: deps.rateLimit,
    };
    const methods = new Set<string>();
    for (const settings of config.routes) {
      const stages = buildRouteStages(settings, buildDeps);
      // A filtered response must arrive uncompressed to be read.
      const strip = stages.some((s) => s.response)
        ? new Set([...this.stripHeaders, 'accept-encoding'])
        : this.stripHeaders;
      const route: CompiledRoute = {
        settings,
        stages,
        filters: stages.flatMap((s) => (s.response ? [s.response] : [])),
        stripHeaders: strip,
        stripWithBody: new Set([...strip, 'content-length']),
        upstream: this.upstreams.get(settings.upstream)!,
        stripQueryParam: settings.apiKeyInQuery ? config.auth.apiKeys?.queryParam : undefined,
        responseHeaders: [
          'x-content-type-options',
          'nosniff',
          'cache-control',
          settings.cacheControl,
          'content-security-policy',
          "default-src 'none'; frame-ancestors 'none'",
          'referrer-policy',
          'no-referrer',
          ...(this.problemHeaders
            ? ['strict-transport-security', this.problemHeaders['strict-transport-security']!]
            : []),
        ],
      };
      for (const m of settings.methods) {
        this.router.on(m as FindMyWay.HTTPMethod, settings.routerPath, () => {}, route);
        methods.add(m);
      }
    }
    this.methods = [...methods];
  }

  /** Handles one request end to end. Never throws; every failure becomes a problem response. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const startedAt = performance.now();
    const incomingId = req.headers['x-request-id'];
    const id =
      typeof incomingId === 'string' && REQUEST_ID.test(incomingId) ? incomingId : `req_${randomUUID()}`;
    if (this.accessLog) this.logOnFinish(req, res, id, startedAt);
    const seen: { ctx: RequestContext | undefined; path: string | undefined } | undefined = this.events
      ? { ctx: undefined, path: undefined }
      : undefined;
    if (seen !== undefined) res.once('close', () => this.emitEvent(req, res, id, startedAt, seen));
    if (this.audit?.isFull()) {
      this.reject(
        req,
        res,
        id,
        gatewayError('unavailable', { internal: 'audit queue full (audit.overflow: block)' }),
      );
      return;
    }
    if (req.headers.host === undefined && req.httpVersionMinor === 1) {
      // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
      this.reject(req, res, id, gatewayError('badRequest', { internal: 'missing Host header' }));
      return;
    }
    let path: string;
    let query: string;
    try {
      ({ path, query } = normaliseTarget(req.url ?? ''));
    } catch (err) {
      const reason = err instanceof BadPathError ? err.reason : String(err);
      this.reject(req, res, id, gatewayError('badPath', { internal: reason }));
      return;
    }
    const method = req.method ?? 'GET';
    if (seen !== undefined) seen.path = path;
    if (this.endpoints.size > 0) {
      const endpoint = this.endpoints.get(`${method} ${path}`);
      if (endpoint !== undefined) {
        const clientIp = this.resolveClient(req).ip;
        endpoint.handle(req, res, { clientIp, requestId: id }).catch((err) => {
          if (!(err instanceof GatewayError)) this.logger.error({ requestId: id, err }, 'unexpected error');
          this.reject(req, res, id, err instanceof GatewayError ? err : gatewayError('internal'));
        });
        return;
      }
    }
    const found = this.router.find(method as FindMyWay.HTTPMethod, path);
    if (found === null) {
      this.answerUnrouted(req, res, id, method, path);
      return;
    }
    const route = found.store as CompiledRoute;
    const client = this.resolveClient(req);
    const ctx: RequestContext = {
      id,
      req,
      res,
      startedAt,
      clientIp: client.ip,
      method,
      path,
      query,
      route: route.settings,
      params: found.params,
      principal: undefined,
      upstreamHeaders: {},
      body: undefined,
      parsedBody: undefined,
      responseHeaders: [],
      shadowDenials: [],
      stage: undefined,
      upstreamStartedAt: undefined,
      upstreamEndedAt: undefined,
      credentialId: undefined,
      traceparent: undefined,
    };
    if (seen !== undefined) seen.ctx = ctx;
    let pending: Promise<void> | undefined;
    try {
      pending = this.runStages(ctx, route.stages, 0);
    } catch (err) {
      this.fail(ctx, err);
      return;
    }
    if (pending === undefined) {
      this.proxy(ctx, route, client).catch((err) => this.fail(ctx, err));
    } else {
      pending.then(() => this.proxy(ctx, route, client)).catch((err) => this.fail(ctx, err));
    }
  };

  /** Runs stages synchronously until one returns a promise; then continues asynchronously. */
  private runStages(ctx: RequestContext, stages: readonly Stage[], from: number): Promise<void> | undefined {
    for (let i = from; i < stages.length; i++) {
      ctx.stage = stages[i]!.name;
      const pending = stages[i]!.handle(ctx);
      if (pending !== undefined) return pending.then(() => this.runStages(ctx, stages, i + 1));
    }
    ctx.stage = undefined;
    return undefined;
  }

  private async proxy(ctx: RequestContext, route: CompiledRoute, client: ClientAddress): Promise<void> {
    const { req, res } = ctx;
    let body: Readable | Buffer | undefined;
    let bodyHeaders: string[] = [];
    let strip = route.stripHeaders;
    if (ctx.body !== undefined) {
      // A stage read the body (and may have transformed it): send exactly those bytes, framed by length.
      body = ctx.body;
      bodyHeaders = ['content-length', String(ctx.body.length)];
      strip = route.stripWithBody;
    } else {
      const limit = route.settings.bodyLimit;
      const length = req.headers['content-length'];
      if (length !== undefined) {
        // llhttp has already rejected malformed and conflicting Content-Length values.
        const n = Number(length);
        if (n > limit) throw gatewayError('bodyTooLarge', { internal: `content-length ${n} > ${limit}` });
        body = n > 0 ? req : undefined;
      } else if (req.headers['transfer-encoding'] !== undefined) {
        body = Number.isFinite(limit) ? limitBody(req, limit) : req;
      }
      if (body !== undefined && req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
    }

    ctx.traceparent = traceparentFor(req, ctx.id);
    const extra: string[] = [
      'x-forwarded-for',
      client.forwardedFor,
      'x-forwarded-proto',
      forwardedProto(req, client.peerTrusted),
      'x-forwarded-host',
      (client.peerTrusted ? firstValue(req.headers['x-forwarded-host']) : undefined) ??
        req.headers.host ??
        '',
      'x-request-id',
      ctx.id,
      'traceparent',
      ctx.traceparent,
    ];
    for (const name in ctx.upstreamHeaders) extra.push(name, ctx.upstreamHeaders[name]!);
    for (const h of bodyHeaders) extra.push(h);
    ctx.stage = 'proxy';
    ctx.upstreamStartedAt = performance.now();
    const query =
      route.stripQueryParam === undefined ? ctx.query : withoutParam(ctx.query, route.stripQueryParam);
    await forward(route.upstream, res, {
      path: route.upstream.settings.basePath + ctx.path + (query === '' ? '' : `?${query}`),
      method: ctx.method,
      headers: buildUpstreamHeaders(req, strip, extra),
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
                this.writeHead(ctx, route, response.status, headers);
                res.end(response.body);
              },
            };
          }
        }
        this.writeHead(ctx, route, status, out);
        return undefined;
      },
    });
  }

  /** Writes the response head: the upstream's headers plus everything the gateway owns. */
  private writeHead(ctx: RequestContext, route: CompiledRoute, status: number, headers: string[]): void {
    headers.push(...route.responseHeaders, 'x-request-id', ctx.id);
    if (ctx.responseHeaders.length > 0) headers.push(...ctx.responseHeaders);
    const cors = route.settings.cors;
    if (cors !== undefined) headers.push(...corsResponseHeaders(cors, ctx.req.headers.origin));
    ctx.res.writeHead(status, headers);
  }

  private fail(ctx: RequestContext, err: unknown): void {
    if (err instanceof GatewayError) {
      if (err.status >= 500) {
        this.logger.warn(
          { requestId: ctx.id, route: ctx.route.name, code: err.code, reason: err.internal },
          'request failed',
        );
      }
      this.reject(ctx.req, ctx.res, ctx.id, err);
      return;
    }
    this.logger.error({ requestId: ctx.id, route: ctx.route.name, err }, 'unexpected error');
    this.reject(ctx.req, ctx.res, ctx.id, gatewayError('internal'));
  }

  /** Sends a problem; a request whose body was not read closes the connection afterwards. */
  private reject(req: IncomingMessage, res: ServerResponse, id: string, err: GatewayError): void {
    if (this.events) rejections.set(res, err);
    const unreadBody =
      !req.readableEnded &&
      (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0);
    if (unreadBody) closeWhenDone(req, res);
    sendProblem(res, err, id, this.problemHeaders);
  }

  private answerUnrouted(
    req: IncomingMessage,
    res: ServerResponse,
    id: string,
    method: string,
    path: string,
  ): void {
    const allowed = this.allowedMethods(path);
    if (allowed.length === 0) {
      this.reject(req, res, id, gatewayError('notFound', { internal: `${method} ${path}` }));
      return;
    }
    const requested = req.headers['access-control-request-method'];
    if (method === 'OPTIONS' && req.headers.origin !== undefined && requested !== undefined) {
      const found = this.router.find(requested as FindMyWay.HTTPMethod, path);
      const cors = (found?.store as CompiledRoute | undefined)?.settings.cors;
      if (cors !== undefined) {
        const headers = preflightHeaders(cors, req);
        if (headers === undefined) {
          this.reject(req, res, id, gatewayError('corsRejected'));
          return;
        }
        res.writeHead(204, {
          ...headers,
          'x-request-id': id,
          'cache-control': 'no-store',
          'content-length': 0,
        });
        res.end();
        return;
      }
    }
    this.reject(
      req,
      res,
      id,
      gatewayError('methodNotAllowed', {
        headers: { allow: allowed.join(', ') },
        internal: `${method} ${path}`,
      }),
    );
  }

  /**
   * Which route a canonical path and method reach: the route and its
   * parameters, the allowed methods (405), or nothing (404). The same
   * lookup the request path uses; `portcullis explain` relies on it.
   */
  match(
    method: string,
    path: string,
  ):
    | { route: RouteSettings; params: Record<string, string | undefined> }
    | { allowed: string[] }
    | undefined {
    const found = this.router.find(method as FindMyWay.HTTPMethod, path);
    if (found !== null) return { route: (found.store as CompiledRoute).settings, params: found.params };
    const allowed = this.allowedMethods(path);
    return allowed.length > 0 ? { allowed } : undefined;
  }

  private allowedMethods(path: string): string[] {
    return this.methods.filter((m) => this.router.find(m as FindMyWay.HTTPMethod, path) !== null);
  }

  private emitEvent(
    req: IncomingMessage,
    res: ServerResponse,
    id: string,
    startedAt: number,
    seen: { ctx: RequestContext | undefined; path: string | undefined },
  ): void {
    const err = rejections.get(res);
    const ctx = seen.ctx;
    const p = ctx?.principal;
    const status = err?.status ?? (res.headersSent ? res.statusCode : 0);
    const event: RequestEvent = {
      type: 'request',
      time: new Date(Date.now() - (performance.now() - startedAt)).toISOString(),
      requestId: id,
      // The trace id sent upstream when there was one; otherwise derived the same way.
      traceId: ctx?.traceparent?.slice(3, 35) ?? traceIdOf(req, id),
      clientIp: ctx?.clientIp ?? this.resolveClient(req).ip,
      method: req.method ?? '',
      path: seen.path ?? '',
      route: ctx?.route.name,
      principal: p === undefined ? undefined : { kind: p.kind, id: p.id, tenant: p.tenant },
      decision: err === undefined ? (status === 0 ? 'error' : 'allow') : err.status >= 500 ? 'error' : 'deny',
      reason: err?.code ?? (status === 0 ? 'client.closed' : 'ok'),
      detail: err?.internal,
      status,
      latencyMs: performance.now() - startedAt,
      upstreamMs:
        ctx?.upstreamStartedAt === undefined
          ? undefined
          : (ctx.upstreamEndedAt ?? performance.now()) - ctx.upstreamStartedAt,
      stage: err === undefined ? undefined : (ctx?.stage ?? 'route'),
      shadowDenials: ctx?.shadowDenials ?? [],
      objectId:
        ctx === undefined || ctx.route.params.length === 0
          ? undefined
          : ctx.route.params
              .map((name) => ctx.params[name] ?? '')
              .join('/')
              .slice(0, 200),
      credentialId: ctx?.credentialId,
    };
    this.events!.emit(event);
  }

  private logOnFinish(req: IncomingMessage, res: ServerResponse, id: string, startedAt: number): void {
    res.once('finish', () => {
      this.logger.info(
        {
          requestId: id,
          method: req.method,
          path: req.url?.split('?')[0],
          status: res.statusCode,
          ms: Math.round((performance.now() - startedAt) * 100) / 100,
        },
        'request',
      );
    });
  }

  /** Closes the upstream pools once their in-flight requests finish (or after `graceMs`). */
  async close(graceMs = 10_000): Promise<void> {
    const pools = [...this.upstreams.values()];
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
      timer.unref();
    });
    await Promise.race([Promise.all(pools.map((u) => u.close())), timeout]);
    clearTimeout(timer);
    await Promise.all(pools.map((u) => u.pool.destroy()));
  }
}

/** The query string without any occurrence of parameter `name`. */
function withoutParam(query: string, name: string): string {
  if (!query.includes(name)) return query;
  return query
    .split('&')
    .filter((part) => (part.includes('=') ? part.slice(0, part.indexOf('=')) : part) !== name)
    .join('&');
}

/** The answer the gateway itself gave to a request, for its security event. */
const rejections = new WeakMap<ServerResponse, GatewayError>();

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** The W3C trace id: the caller's, or one derived from the request id. */
function traceIdOf(req: IncomingMessage, requestId: string): string {
  const header = req.headers.traceparent;
  const m = typeof header === 'string' ? TRACEPARENT.exec(header) : null;
  if (m && m[1] !== '00000000000000000000000000000000') return m[1]!;
  // Our own request ids are random UUIDs already: reuse their 122 random bits.
  if (requestId.length === 40 && requestId.startsWith('req_')) return requestId.slice(4).replaceAll('-', '');
  return createHash('sha256').update(requestId).digest('hex').slice(0, 32);
}

/** The `traceparent` for the upstream: the caller's when valid, else a new trace (W3C Trace Context §3.2). */
function traceparentFor(req: IncomingMessage, requestId: string): string {
  const header = req.headers.traceparent;
  if (typeof header === 'string' && TRACEPARENT.test(header)) return header;
  const trace = traceIdOf(req, requestId);
  return `00-${trace}-${trace.slice(0, 16)}-01`;
}

/** Headers that describe the framing of a body the gateway has replaced. */
const BODY_FRAMING = new Set(['content-length', 'transfer-encoding', 'content-encoding', 'etag']);

function withoutHeaders(pairs: readonly string[], names: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < pairs.length; i += 2) if (!names.has(pairs[i]!)) out.push(pairs[i]!, pairs[i + 1]!);
  return out;
}

function firstValue(header: string | string[] | undefined): string | undefined {
  return Array.isArray(header) ? header[0] : header;
}

function forwardedProto(req: IncomingMessage, peerTrusted: boolean): string {
  const own = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
  if (!peerTrusted) return own;
  const claimed = req.headers['x-forwarded-proto'];
  return claimed === 'https' || claimed === 'http' ? claimed : own;
}

/**
 * Streams a chunked body, failing with 413 as soon as it passes `limit`.
 * `pipe` (not `pipeline` or async iteration) on purpose: on failure the
 * client's request must stay open so the 413 can be written to it.
 */
function limitBody(req: IncomingMessage, limit: number): Transform {
  let seen = 0;
  const limiter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > limit) {
        req.unpipe(limiter);
        callback(gatewayError('bodyTooLarge', { internal: `chunked body passed ${limit} bytes` }));
      } else callback(null, chunk);
    },
  });
  req.pipe(limiter);
  return limiter;
}

/**
 * After answering a request whose body was not (fully) read, close the
 * connection instead of reading the rest: the rest may be gigabytes.
 *
 * Node closes a `Connection: close` socket with `destroySoon()`, which closes
 * the descriptor while the client is still sending; the kernel then answers
 * with a reset that can discard our response before the client reads it.
 * So, for this socket only, closing becomes a lingering close (as nginx
 * does): half-close, discard what still arrives for a moment, then destroy.
 */
function closeWhenDone(req: IncomingMessage, res: ServerResponse): void {
  res.shouldKeepAlive = false;
  const socket = req.socket as (Socket & { destroySoon?: () => void }) | null;
  if (!socket) return;
  socket.destroySoon = () => {
    socket.end();
    socket.resume();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  };
}

const LINGER_MS = 2000;
