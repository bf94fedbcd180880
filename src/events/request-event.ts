/**
 * The security event of one completed request, built from what the driver
 * saw of it: the context (when the request was routed) and the gateway's
 * own answer, if it rejected the request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { RouteSettings } from '../config/types.js';
import type { RequestContext } from '../contracts/stage.js';
import type { GatewayError } from '../errors.js';
import type { ClientAddress } from '../http/client-ip.js';
import { traceIdOf } from '../stages/proxy/index.js';
import type { EventSink, RequestEvent, StageTiming } from './types.js';

/** What the driver records of a request while it runs. */
export interface RequestSeen {
  readonly id: string;
  readonly startedAt: number;
  ctx: (RequestContext & { route: RouteSettings }) | undefined;
  path: string | undefined;
}

/** The answer the gateway itself gave to a request, set by the driver when it rejects one. */
export const rejections = new WeakMap<ServerResponse, GatewayError>();

/**
 * A denial recorded under a more precise reason than the code the client
 * sees: a response that does not belong to the caller is answered as a
 * plain 404 (`route.not_found`) but audited as `authz.bola`.
 */
export interface AuditedAs {
  readonly auditReason: string;
}

function auditReasonOf(err: GatewayError | undefined): string | undefined {
  const reason = (err as Partial<AuditedAs> | undefined)?.auditReason;
  return typeof reason === 'string' ? reason : undefined;
}

function stageTimings(ctx: RequestContext, startedAt: number): StageTiming[] {
  const times = ctx.stageTimes!;
  const out: StageTiming[] = [];
  for (let i = 0; i + 2 < times.length; i += 3) {
    const start = times[i + 1] as number;
    const end = times[i + 2] as number;
    out.push({
      name: times[i] as string,
      offsetMs: start - startedAt,
      durationMs: Number.isNaN(end) ? undefined : end - start,
    });
  }
  return out;
}

/** Last second formatted by {@link isoTime}, and its `YYYY-MM-DDTHH:MM:SS.` prefix. */
let isoSecond = Number.NaN;
let isoPrefix = '';
/** Years 0000–9999 (ms since the epoch): the range where `toISOString` has this fixed shape. */
const ISO_FIXED_MIN = -62_167_219_200_000;
const ISO_FIXED_MAX = 253_402_300_800_000;

/**
 * `new Date(ms).toISOString()`, with the part up to the second formatted
 * once per second: requests in the same second only append their
 * milliseconds (about 0.2 µs a request less, and one Date fewer).
 */
export function isoTime(ms: number): string {
  const t = Math.trunc(ms);
  if (!(t >= ISO_FIXED_MIN && t < ISO_FIXED_MAX)) return new Date(ms).toISOString();
  const second = Math.floor(t / 1000);
  if (second !== isoSecond) {
    isoPrefix = new Date(second * 1000).toISOString().slice(0, 20);
    isoSecond = second;
  }
  const milli = t - second * 1000;
  return `${isoPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}

/** Emits one event per request to `sink`, when its response closes. */
export function createEventEmitter(
  sink: EventSink,
  resolveClient: (req: IncomingMessage) => ClientAddress,
): (req: IncomingMessage, res: ServerResponse, seen: RequestSeen) => void {
  return (req, res, seen) => {
    const err = rejections.get(res);
    const { ctx, id, startedAt } = seen;
    const p = ctx?.principal;
    const status = err?.status ?? (res.headersSent ? res.statusCode : 0);
    const traceparent = req.headers.traceparent;
    const event: RequestEvent = {
      type: 'request',
      time: isoTime(Date.now() - (performance.now() - startedAt)),
      requestId: id,
      // The trace id sent upstream when there was one; otherwise derived the same way.
      traceId:
        ctx?.traceparent?.slice(3, 35) ??
        traceIdOf(typeof traceparent === 'string' ? traceparent : undefined, id),
      traceparent: ctx?.traceparent,
      clientIp: ctx?.clientIp ?? resolveClient(req).ip,
      method: req.method ?? '',
      path: seen.path ?? '',
      route: ctx?.route.name,
      principal: p === undefined ? undefined : { kind: p.kind, id: p.id, tenant: p.tenant },
      decision: err === undefined ? (status === 0 ? 'error' : 'allow') : err.status >= 500 ? 'error' : 'deny',
      reason: auditReasonOf(err) ?? err?.code ?? (status === 0 ? 'client.closed' : 'ok'),
      detail: err?.internal,
      status,
      latencyMs: performance.now() - startedAt,
      upstreamMs:
        ctx?.upstreamStartedAt === undefined
          ? undefined
          : (ctx.upstreamEndedAt ?? performance.now()) - ctx.upstreamStartedAt,
      upstreamOffsetMs: ctx?.upstreamStartedAt === undefined ? undefined : ctx.upstreamStartedAt - startedAt,
      stages: ctx?.stageTimes === undefined ? undefined : stageTimings(ctx, startedAt),
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
    sink.emit(event);
  };
}
