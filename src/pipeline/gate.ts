/**
 * The gate: what every request passes, including those no route takes —
 * unrouted requests, CORS preflights and the gateway's own endpoints (the
 * built-in issuer). Load shedding, blocks, the global network rules and the
 * `all_routes` rate limits apply to them as to any route, so a blocked
 * client gets no tokens and a flood of 404s is limited like any other.
 * The stages are the route stages themselves, built for a route that
 * stands for "no route".
 */
import type { GatewayConfig, RouteSettings } from '../config/types.js';
import type { Stage } from '../contracts/stage.js';
import type { LimitSettings, RouteRateLimits } from '../ratelimit/types.js';
import { admissionStage } from '../stages/admission/index.js';
import { authorizeStage } from '../stages/authorize/index.js';
import { preAuthStage } from '../stages/pre-auth/index.js';
import { rateLimitStage } from '../stages/rate-limit/index.js';
import type { BuildDeps, StageFactory } from './types.js';

/** In pipeline order: a subset of `STAGE_FACTORIES`. */
const GATE_FACTORIES: readonly StageFactory[] = [
  admissionStage,
  preAuthStage,
  authorizeStage,
  rateLimitStage,
];

export interface GateLane {
  /** What the request is logged and keyed under (`route` in a rate-limit key). */
  readonly route: RouteSettings;
  readonly stages: readonly Stage[];
}

export interface Gate {
  /** Requests no route takes: 404, 405 and CORS preflights. */
  readonly unrouted: GateLane;
  /** The gateway's own endpoints, with their own per-IP limit. */
  readonly endpoints: GateLane;
}

export function buildGate(config: GatewayConfig, deps: BuildDeps): Gate {
  const every = config.rateLimit.everyRoute;
  const issuer = config.auth.issuer?.rateLimit;
  const endpointLimit: LimitSettings | undefined = issuer && {
    type: 'rate',
    name: 'issuer',
    key: [{ kind: 'ip' }],
    mode: 'enforce',
    count: issuer.count,
    periodMs: issuer.periodMs,
    burst: issuer.count * 2,
  };
  const endpointLimits: RouteRateLimits | undefined = endpointLimit
    ? {
        limits: [...(every?.limits ?? []), endpointLimit],
        quotas: every?.quotas ?? [],
        concurrency: every?.concurrency ?? [],
        cost: 1,
      }
    : every;
  return {
    unrouted: lane('(unrouted)', every, deps),
    endpoints: lane('(gateway endpoints)', endpointLimits, deps),
  };
}

function lane(name: string, rateLimits: RouteRateLimits | undefined, deps: BuildDeps): GateLane {
  // No authentication, no policy of its own: the authorize stage keeps only the global network rules.
  const route = {
    index: -1,
    name,
    template: '',
    routerPath: '',
    params: [],
    methods: [],
    upstream: '',
    auth: 'none',
    authorize: undefined,
    operations: undefined,
    rateLimits,
    apiKeyInQuery: false,
    bodyLimit: 0,
    cacheControl: 'no-store',
    cors: undefined,
  } as unknown as RouteSettings;
  const stages: Stage[] = [];
  for (const factory of GATE_FACTORIES) {
    const stage = factory.create(route, deps);
    if (stage !== undefined) stages.push(stage);
  }
  return { route, stages };
}
