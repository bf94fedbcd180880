/**
 * Running a route's stages over one request: the context they share and
 * the loop that runs them synchronously until one has to wait.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { RouteSettings } from '../config/types.js';
import type { RequestHead } from '../contracts/request.js';
import type { DecisionEntry, RequestContext, Stage } from '../contracts/stage.js';

/** Runs stages synchronously until one returns a promise; then continues asynchronously. */
export function runStages(
  ctx: RequestContext,
  stages: readonly Stage[],
  from: number,
): Promise<void> | undefined {
  const times = ctx.stageTimes;
  if (times !== undefined) return runTimedStages(ctx, times, stages, from);
  for (let i = from; i < stages.length; i++) {
    ctx.stage = stages[i]!.name;
    const pending = stages[i]!.handle(ctx);
    if (pending !== undefined) return pending.then(() => runStages(ctx, stages, i + 1));
  }
  ctx.stage = undefined;
  return undefined;
}

/** {@link runStages} recording each stage's start and end (traces on); a stage that throws has no end. */
function runTimedStages(
  ctx: RequestContext,
  times: Array<string | number>,
  stages: readonly Stage[],
  from: number,
): Promise<void> | undefined {
  for (let i = from; i < stages.length; i++) {
    ctx.stage = stages[i]!.name;
    const at = times.length;
    times.push(stages[i]!.name, performance.now(), Number.NaN);
    const pending = stages[i]!.handle(ctx);
    if (pending !== undefined) {
      return pending.then(() => {
        times[at + 2] = performance.now();
        return runStages(ctx, stages, i + 1);
      });
    }
    times[at + 2] = performance.now();
  }
  ctx.stage = undefined;
  return undefined;
}

/** Who the request is and where it goes: what the driver knows before any stage runs. */
export interface Arrival {
  id: string;
  req: IncomingMessage;
  res: ServerResponse;
  startedAt: number;
  clientIp: string;
  method: string;
  head: RequestHead;
  route: RouteSettings;
  params: Readonly<Record<string, string | undefined>>;
  /** An array only when the request is explained (a dry run). */
  trail?: DecisionEntry[] | undefined;
  /** Record each stage's start and end (traces on). */
  timeStages?: boolean | undefined;
}

/** A context as the driver builds it: the route is the whole of its settings. */
export type RouteContext = RequestContext & { readonly route: RouteSettings };

/** The request context every stage works on, from the request view. */
export function newContext(a: Arrival): RouteContext {
  return {
    id: a.id,
    req: a.req,
    res: a.res,
    startedAt: a.startedAt,
    clientIp: a.clientIp,
    method: a.method,
    path: a.head.path,
    query: a.head.query,
    headers: a.head.headers,
    contentType: a.head.contentType,
    route: a.route,
    params: a.params,
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
    trail: a.trail,
    stageTimes: a.timeStages === true ? [] : undefined,
  };
}
