/**
 * The driver: one immutable gateway built from one config, running the
 * pipeline table (`src/pipeline/index.ts`) over each request. A reload
 * builds a new one and swaps it in; the old one finishes its requests and
 * closes. Steps 1–3 (bound, normalise, route) build the request view; the
 * route's stages run synchronously until one needs to wait; then the
 * proxy call and the response side.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Blocklist } from './alerts/index.js';
import type { AuthServices } from './auth/services.js';
import type { GatewayConfig, RouteSettings } from './config/types.js';
import type { RequestContext, Stage } from './contracts/stage.js';
import { GatewayError, gatewayError, sendProblem } from './errors.js';
import { createEventEmitter, type RequestSeen, rejections } from './events/request-event.js';
import type { EventSink } from './events/types.js';
import { type ClientAddress, createClientIpResolver } from './http/client-ip.js';
import { corsResponseHeaders, preflightHeaders } from './http/cors.js';
import type { Logger } from './log.js';
import { type BuildDeps, buildRouteStages } from './pipeline/index.js';
import { createUpstream, type Upstream } from './proxy/upstream.js';
import type { RateLimitService } from './ratelimit/index.js';
import { closeWhenDone, hasUnreadBody } from './stages/bound/index.js';
import { securityHeaders } from './stages/headers/index.js';
import {
  createHeadReader,
  type ReadHead,
  type RequestHead,
  withoutParams,
} from './stages/normalise/index.js';
import { type ProxyRoute, proxyRequest } from './stages/proxy/index.js';
import { createRouteTable, type Match, type RouteTable } from './stages/route/index.js';
import type { Store } from './store/types.js';
import { hstsHeaderValue } from './tls/listener.js';

export interface CompiledRoute extends ProxyRoute {
  readonly settings: RouteSettings;
  readonly stages: readonly Stage[];
  /** Security headers added to every response of this route, as flat pairs. */
  readonly responseHeaders: readonly string[];
  /** A query parameter never forwarded (the API key, on routes that accept it there). */
  readonly stripQueryParam: string | undefined;
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

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

export class Gateway {
  readonly config: GatewayConfig;
  private readonly routes: RouteTable<CompiledRoute>;
  private readonly upstreams = new Map<string, Upstream>();
  private readonly resolveClient: (req: IncomingMessage) => ClientAddress;
  private readonly readHead: ReadHead;
  private readonly logger: Logger;
  private readonly accessLog: boolean;
  private readonly endpoints: Map<string, GatewayEndpoint>;
  private readonly events:
    | ((req: IncomingMessage, res: ServerResponse, seen: RequestSeen) => void)
    | undefined;
  private readonly audit: { isFull(): boolean } | undefined;
  /** Headers added to the gateway's own answers (HSTS on HTTPS). */
  private readonly problemHeaders: Record<string, string> | undefined;

  constructor(config: GatewayConfig, deps: GatewayDeps) {
    this.config = config;
    this.logger = deps.logger;
    this.accessLog = config.log.access;
    this.resolveClient = createClientIpResolver(config.listen.trustedProxies);
    this.readHead = createHeadReader(config);
    for (const [name, settings] of Object.entries(config.upstreams)) {
      this.upstreams.set(name, createUpstream(settings, config.tls.upstreams[name]));
    }
    const hsts = config.tls.listener?.hsts;
    // Every response of an HTTPS listener carries HSTS (RFC 6797 §7.1); the redirect listener never does.
    const hstsValue = hsts ? hstsHeaderValue(hsts) : undefined;
    this.problemHeaders = hstsValue ? { 'strict-transport-security': hstsValue } : undefined;
    const identity = config.auth.identityHeaders;
    // Identity headers only the gateway sets, and the API key: never forwarded.
    const strip = new Set([
      identity.subject,
      identity.kind,
      identity.scopes,
      identity.roles,
      identity.tenant,
      ...(config.auth.apiKeys ? [config.auth.apiKeys.header] : []),
    ]);
    this.endpoints = new Map((deps.endpoints ?? []).map((e) => [`${e.method} ${e.path}`, e]));
    this.events = deps.events ? createEventEmitter(deps.events, this.resolveClient) : undefined;
    this.audit = deps.audit;
    const buildDeps: BuildDeps = {
      config,
      logger: deps.logger,
      store: deps.store,
      auth: deps.auth,
      blocklist: deps.blocklist,
      rateLimit: deps.rateLimit,
    };
    this.routes = createRouteTable(
      config.routes.map((settings) => {
        const stages = buildRouteStages(settings, buildDeps);
        const route: CompiledRoute = {
          settings,
          stages,
          filters: stages.flatMap((s) => (s.response ? [s.response] : [])),
          // A filtered response must arrive uncompressed to be read.
          stripHeaders: stages.some((s) => s.response) ? new Set([...strip, 'accept-encoding']) : strip,
          upstream: this.upstreams.get(settings.upstream)!,
          bodyLimit: settings.bodyLimit,
          stripQueryParam: settings.apiKeyInQuery ? config.auth.apiKeys?.queryParam : undefined,
          responseHeaders: securityHeaders(settings.cacheControl, hstsValue),
        };
        return { methods: settings.methods, routerPath: settings.routerPath, route };
      }),
    );
  }

  /** Handles one request end to end. Never throws; every failure becomes a problem response. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const startedAt = performance.now();
    const incomingId = req.headers['x-request-id'];
    const id =
      typeof incomingId === 'string' && REQUEST_ID.test(incomingId) ? incomingId : `req_${randomUUID()}`;
    if (this.accessLog) this.logOnFinish(req, res, id, startedAt);
    const seen: RequestSeen | undefined = this.events
      ? { id, startedAt, ctx: undefined, path: undefined }
      : undefined;
    if (seen !== undefined) res.once('close', () => this.events!(req, res, seen));
    if (this.audit?.isFull()) {
      this.reject(
        req,
        res,
        id,
        gatewayError('unavailable', { internal: 'audit queue full (audit.overflow: block)' }),
      );
      return;
    }
    const head = this.readHead(req);
    if (head instanceof GatewayError) {
      this.reject(req, res, id, head);
      return;
    }
    const method = req.method ?? 'GET';
    if (seen !== undefined) seen.path = head.path;
    if (this.endpoints.size > 0) {
      const endpoint = this.endpoints.get(`${method} ${head.path}`);
      if (endpoint !== undefined) {
        const clientIp = this.resolveClient(req).ip;
        endpoint.handle(req, res, { clientIp, requestId: id }).catch((err) => {
          if (!(err instanceof GatewayError)) this.logger.error({ requestId: id, err }, 'unexpected error');
          this.reject(req, res, id, err instanceof GatewayError ? err : gatewayError('internal'));
        });
        return;
      }
    }
    const found = this.routes.match(method, head.path);
    if (found === undefined || !('route' in found)) {
      this.answerUnrouted(req, res, id, method, head, found);
      return;
    }
    const route = found.route;
    const client = this.resolveClient(req);
    const ctx = newContext(id, req, res, startedAt, client.ip, method, head, route.settings, found.params);
    if (seen !== undefined) seen.ctx = ctx;
    const forwardQuery =
      route.stripQueryParam === undefined
        ? head.forwardQuery
        : withoutParams(head.query, [route.stripQueryParam]);
    const proxy = () => proxyRequest(ctx, route, client, forwardQuery, this.writeHead(route));
    let pending: Promise<void> | undefined;
    try {
      pending = runStages(ctx, route.stages, 0);
    } catch (err) {
      this.fail(ctx, err);
      return;
    }
    if (pending === undefined) proxy().catch((err) => this.fail(ctx, err));
    else pending.then(proxy).catch((err) => this.fail(ctx, err));
  };

  /** Writes a route's response head: the upstream's headers plus everything the gateway owns. */
  private writeHead(route: CompiledRoute) {
    return (ctx: RequestContext, status: number, headers: string[]): void => {
      headers.push(...route.responseHeaders, 'x-request-id', ctx.id);
      if (ctx.responseHeaders.length > 0) headers.push(...ctx.responseHeaders);
      const cors = route.settings.cors;
      if (cors !== undefined) headers.push(...corsResponseHeaders(cors, ctx.headers.get('origin')));
      ctx.res.writeHead(status, headers);
    };
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
    if (hasUnreadBody(req)) closeWhenDone(req, res);
    sendProblem(res, err, id, this.problemHeaders);
  }

  private answerUnrouted(
    req: IncomingMessage,
    res: ServerResponse,
    id: string,
    method: string,
    head: RequestHead,
    found: Match<CompiledRoute>,
  ): void {
    if (found === undefined || !('allowed' in found)) {
      this.reject(req, res, id, gatewayError('notFound', { internal: `${method} ${head.path}` }));
      return;
    }
    const requested = head.headers.get('access-control-request-method');
    const origin = head.headers.get('origin');
    if (method === 'OPTIONS' && origin !== undefined && requested !== undefined) {
      const target = this.routes.match(requested, head.path);
      const cors = target !== undefined && 'route' in target ? target.route.settings.cors : undefined;
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
        headers: { allow: found.allowed.join(', ') },
        internal: `${method} ${head.path}`,
      }),
    );
  }

  /**
   * Which route a canonical path and method reach: the route and its
   * parameters, the allowed methods (405), or nothing (404). The same
   * lookup the request path uses.
   */
  match(method: string, path: string): Match<RouteSettings> {
    const found = this.routes.match(method, path);
    return found !== undefined && 'route' in found
      ? { route: found.route.settings, params: found.params }
      : found;
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

/** Runs stages synchronously until one returns a promise; then continues asynchronously. */
export function runStages(
  ctx: RequestContext,
  stages: readonly Stage[],
  from: number,
): Promise<void> | undefined {
  for (let i = from; i < stages.length; i++) {
    ctx.stage = stages[i]!.name;
    const pending = stages[i]!.handle(ctx);
    if (pending !== undefined) return pending.then(() => runStages(ctx, stages, i + 1));
  }
  ctx.stage = undefined;
  return undefined;
}

/** The request context every stage works on, from the request view. */
export function newContext(
  id: string,
  req: IncomingMessage,
  res: ServerResponse,
  startedAt: number,
  clientIp: string,
  method: string,
  head: RequestHead,
  route: RouteSettings,
  params: Readonly<Record<string, string | undefined>>,
): RequestContext & { route: RouteSettings } {
  return {
    id,
    req,
    res,
    startedAt,
    clientIp,
    method,
    path: head.path,
    query: head.query,
    headers: head.headers,
    contentType: head.contentType,
    route,
    params,
    principal: undefined,
    upstreamHeaders: {},
    body: undefined,
    requestBody: undefined,
    parsedBody: undefined,
    responseHeaders: [],
    shadowDenials: [],
    stage: undefined,
    upstreamStartedAt: undefined,
    upstreamEndedAt: undefined,
    credentialId: undefined,
    traceparent: undefined,
  };
}
