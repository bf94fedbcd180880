/**
 * The driver: one immutable gateway built from one config, running the
 * pipeline (`src/pipeline/`) over each request. A reload builds a new one
 * and swaps it in; the old one finishes its requests and closes. Steps 1–3
 * (bound, normalise, route) build the request view; the route's stages run
 * synchronously until one needs to wait; then the proxy call and the
 * response side. Nothing here decides about a request: the stages do.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Blocklist } from './alerts/index.js';
import type { AuthServices } from './auth/services.js';
import type { GatewayConfig, RouteSettings } from './config/types.js';
import type { RequestContext, Stage } from './contracts/stage.js';
import { GatewayError, gatewayError, sendProblem } from './errors.js';
import { logOnFinish } from './events/access-log.js';
import { createEventEmitter, type RequestSeen, rejections } from './events/request-event.js';
import type { EventSink } from './events/types.js';
import { type ClientAddress, createClientIpResolver } from './http/client-ip.js';
import { corsResponseHeaders } from './http/cors.js';
import type { Logger } from './log.js';
import { buildGate, type Gate, type GateLane } from './pipeline/gate.js';
import { type CompiledRoute, type CompiledRoutes, closeUpstreams, compileRoutes } from './pipeline/routes.js';
import { type Arrival, newContext, type RouteContext, runStages } from './pipeline/run.js';
import type { RateLimitService } from './ratelimit/index.js';
import { closeWhenDone, hasUnreadBody } from './stages/bound/index.js';
import { createHeadReader, type ReadHead, withoutParams } from './stages/normalise/index.js';
import { proxyRequest, type WriteHead } from './stages/proxy/index.js';
import { answerUnrouted } from './stages/route/unrouted.js';
import type { Store } from './store/types.js';

export type { CompiledRoute } from './pipeline/routes.js';

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
  /** A dry run (`portcullis explain`): every stage runs, the upstream is never called. */
  dryRun?: DryRun;
}

/** What a dry run puts in place of the upstream, and what it watches. */
export interface DryRun {
  /** The client address the request is explained for. */
  clientIp: string;
  /** Called instead of the upstream call, with the context every stage passed; the answer is an empty 200. */
  forwarded(ctx: RouteContext): void;
  /** Called with every refusal, and the context when the request reached a route or the gate. */
  refused(id: string, err: GatewayError, ctx: RouteContext | undefined): void;
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

/** Builds one request's context for a route (or a gate lane's stand-in route). */
type Arrive = (route: RouteSettings, params: Arrival['params'], trail: Arrival['trail']) => RouteContext;

/** What the driver saw of a request, with what its 'close' listener needs to emit the event. */
interface Seen extends RequestSeen {
  readonly req: IncomingMessage;
  readonly emit: (req: IncomingMessage, res: ServerResponse, seen: RequestSeen) => void;
}
const kSeen = Symbol('portcullis.seen');
type WithSeen = ServerResponse & { [kSeen]?: Seen | undefined };

/**
 * The 'close' listener of every response: one shared function reading the
 * request from the response, rather than a closure and a `once` wrapper per
 * request. Emits the request's event once.
 */
function emitSeen(this: WithSeen): void {
  const seen = this[kSeen];
  if (seen === undefined) return;
  this[kSeen] = undefined;
  seen.emit(seen.req, this, seen);
}

export class Gateway {
  readonly config: GatewayConfig;
  private readonly routes: CompiledRoutes;
  private readonly gate: Gate;
  private readonly resolveClient: (req: IncomingMessage) => ClientAddress;
  private readonly readHead: ReadHead;
  private readonly logger: Logger;
  private readonly endpoints: Map<string, GatewayEndpoint>;
  private readonly events:
    | ((req: IncomingMessage, res: ServerResponse, seen: RequestSeen) => void)
    | undefined;
  private readonly deps: GatewayDeps;
  private readonly timeStages: boolean;
  /** Headers added to the gateway's own answers (HSTS on HTTPS). */
  private readonly problemHeaders: Record<string, string> | undefined;

  constructor(config: GatewayConfig, deps: GatewayDeps) {
    this.config = config;
    this.deps = deps;
    this.logger = deps.logger;
    const dryRun = deps.dryRun;
    const resolve = createClientIpResolver(config.listen.trustedProxies);
    this.resolveClient = dryRun ? (req) => ({ ...resolve(req), ip: dryRun.clientIp }) : resolve;
    this.readHead = createHeadReader(config);
    this.endpoints = new Map((deps.endpoints ?? []).map((e) => [`${e.method} ${e.path}`, e]));
    this.events = deps.events ? createEventEmitter(deps.events, this.resolveClient) : undefined;
    // Stage durations feed the trace spans only: not measured when traces are off.
    this.timeStages = config.telemetry?.traces.enabled === true && this.events !== undefined;
    this.routes = compileRoutes(config, { ...deps, config });
    this.gate = buildGate(config, { ...deps, config });
    const hsts = this.routes.hsts;
    this.problemHeaders = hsts ? { 'strict-transport-security': hsts } : undefined;
  }

  /** Handles one request end to end. Never throws; every failure becomes a problem response. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const startedAt = performance.now();
    const incomingId = req.headers['x-request-id'];
    const id =
      typeof incomingId === 'string' && REQUEST_ID.test(incomingId) ? incomingId : `req_${randomUUID()}`;
    if (this.config.log.access) logOnFinish(this.logger, req, res, id, startedAt);
    const seen: Seen | undefined = this.events
      ? { id, startedAt, ctx: undefined, path: undefined, req, emit: this.events }
      : undefined;
    if (seen !== undefined) {
      (res as WithSeen)[kSeen] = seen;
      res.on('close', emitSeen);
    }
    if (this.deps.audit?.isFull()) {
      const internal = 'audit queue full (audit.overflow: block)';
      this.reject(req, res, id, gatewayError('unavailable', { internal }));
      return;
    }
    const head = this.readHead(req);
    if (head instanceof GatewayError) {
      this.reject(req, res, id, head);
      return;
    }
    const method = req.method ?? 'GET';
    if (seen !== undefined) seen.path = head.path;
    const client = this.resolveClient(req);
    // The context, for a route or a gate lane: built directly, no arrival object copied into it.
    const arrive: Arrive = (route, params, trail) =>
      newContext({
        id,
        req,
        res,
        startedAt,
        clientIp: client.ip,
        method,
        head,
        route,
        params,
        trail,
        timeStages: this.timeStages,
      });
    const endpoint = this.endpoints.size > 0 ? this.endpoints.get(`${method} ${head.path}`) : undefined;
    if (endpoint !== undefined) {
      this.admit(this.gate.endpoints, arrive, () => this.serveEndpoint(endpoint, req, res, id, client.ip));
      return;
    }
    const found = this.routes.table.match(method, head.path);
    if (found === undefined || !('route' in found)) {
      this.admit(this.gate.unrouted, arrive, () => {
        const answer = answerUnrouted(this.routes.table, method, head, found);
        if (answer instanceof GatewayError) this.reject(req, res, id, answer);
        else {
          const headers = { ...answer.preflight, 'x-request-id': id, 'cache-control': 'no-store' };
          res.writeHead(204, { ...headers, 'content-length': 0 }).end();
        }
      });
      return;
    }
    const route = found.route;
    const ctx = arrive(route.settings, found.params, this.deps.dryRun ? [] : undefined);
    if (seen !== undefined) seen.ctx = ctx;
    const forwardQuery =
      route.stripQueryParam === undefined
        ? head.forwardQuery
        : withoutParams(head.query, [route.stripQueryParam]);
    const proxy = this.deps.dryRun
      ? async () => this.forwardDry(ctx)
      : () => proxyRequest(ctx, route, client, forwardQuery, this.headWriter(route));
    this.run(ctx, route.stages, proxy);
  };

  /** Runs a gate lane (`src/pipeline/gate.ts`) over a request no route takes, then `next`. */
  private admit(lane: GateLane, arrive: Arrive, next: () => void): void {
    this.run(arrive(lane.route, {}, undefined), lane.stages, next);
  }

  /**
   * Runs stages synchronously until one has to wait, then `next`; a refusal
   * or failure anywhere is answered. The common path takes no extra tick.
   */
  private run(ctx: RouteContext, stages: readonly Stage[], next: () => unknown): void {
    let pending: Promise<void> | undefined;
    try {
      pending = runStages(ctx, stages, 0);
    } catch (err) {
      this.fail(ctx, err);
      return;
    }
    // Stages that finished synchronously go straight on: no wrapper function and no extra promise.
    if (pending === undefined) this.proceed(ctx, next);
    else
      pending.then(
        () => this.proceed(ctx, next),
        (err: unknown) => this.fail(ctx, err),
      );
  }

  /** Calls `next`; a failure it throws or rejects with is answered. */
  private proceed(ctx: RouteContext, next: () => unknown): void {
    let result: unknown;
    try {
      result = next();
    } catch (err) {
      this.fail(ctx, err);
      return;
    }
    if (result instanceof Promise) result.catch((err: unknown) => this.fail(ctx, err));
  }

  private serveEndpoint(
    endpoint: GatewayEndpoint,
    req: IncomingMessage,
    res: ServerResponse,
    id: string,
    clientIp: string,
  ) {
    endpoint.handle(req, res, { clientIp, requestId: id }).catch((err) => {
      if (!(err instanceof GatewayError)) this.logger.error({ requestId: id, err }, 'unexpected error');
      this.reject(req, res, id, err instanceof GatewayError ? err : gatewayError('internal'));
    });
  }

  /** Each route's head writer, made on its first request rather than for every request. */
  private readonly headWriters = new WeakMap<CompiledRoute, WriteHead>();

  private headWriter(route: CompiledRoute): WriteHead {
    let writer = this.headWriters.get(route);
    if (writer === undefined) {
      writer = this.writeHead(route);
      this.headWriters.set(route, writer);
    }
    return writer;
  }

  /** Writes a route's response head: the upstream's headers plus everything the gateway owns. */
  private writeHead(route: CompiledRoute): WriteHead {
    const own = route.responseHeaders;
    const cors = route.settings.cors;
    return (ctx: RequestContext, status: number, headers: string[]): void => {
      // A loop, not push(...spread): no argument list copied per request.
      for (let i = 0; i < own.length; i++) headers.push(own[i]!);
      headers.push('x-request-id', ctx.id);
      const extra = ctx.responseHeaders;
      for (let i = 0; i < extra.length; i++) headers.push(extra[i]!);
      if (cors !== undefined) headers.push(...corsResponseHeaders(cors, ctx.headers.get('origin')));
      ctx.res.writeHead(status, headers);
    };
  }

  /** A dry run's stand-in for the upstream: report, then an empty 200. */
  private forwardDry(ctx: RouteContext): void {
    this.deps.dryRun!.forwarded(ctx);
    ctx.res.writeHead(200, { 'x-request-id': ctx.id, 'content-length': 0 }).end();
  }

  private fail(ctx: RouteContext, err: unknown): void {
    if (err instanceof GatewayError) {
      // A 503 is a policy answer (overload, a fail-closed dependency) whose cause is logged, rate-limited, where it is.
      if (err.status >= 500 && err.status !== 503) {
        this.logger.warn(
          { requestId: ctx.id, route: ctx.route.name, code: err.code, reason: err.internal },
          'request failed',
        );
      }
      this.reject(ctx.req, ctx.res, ctx.id, err, ctx);
      return;
    }
    this.logger.error({ requestId: ctx.id, route: ctx.route.name, err }, 'unexpected error');
    this.reject(ctx.req, ctx.res, ctx.id, gatewayError('internal'), ctx);
  }

  /** Sends a problem; a request whose body was not read closes the connection afterwards. */
  private reject(
    req: IncomingMessage,
    res: ServerResponse,
    id: string,
    err: GatewayError,
    ctx?: RouteContext,
  ): void {
    if (this.events) rejections.set(res, err);
    this.deps.dryRun?.refused(id, err, ctx);
    // HTTP/2 resets only the stream whose body is left unread (src/http2/server.ts), never the connection.
    if (req.httpVersionMajor !== 2 && hasUnreadBody(req)) closeWhenDone(req, res);
    sendProblem(res, err, id, this.problemHeaders);
  }

  /** Closes the upstream pools once their in-flight requests finish (or after `graceMs`). */
  close(graceMs = 10_000): Promise<void> {
    return closeUpstreams(this.routes.upstreams, graceMs);
  }
}
