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
      time: new Date(Date.now() - (performance.now() - startedAt)).toISOString(),
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
