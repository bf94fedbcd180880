/**
 * The order of the pipeline lives here and only here. The transport stages
 * (bound, normalise, route) run in the server for every request; the route
 * stages below are built once per route and run in this order. Config may
 * switch a stage off for a route (its factory returns undefined); it never
 * reorders them.
 */
import type { Blocklist } from '../alerts/index.js';
import type { AuthServices } from '../auth/services.js';
import type { GatewayConfig, RouteSettings } from '../config/types.js';
import type { Logger } from '../log.js';
import { admissionStage, type RateLimitService, rateLimitStage } from '../ratelimit/index.js';
import { authenticateStage } from '../stages/authenticate/index.js';
import { authorizeStage } from '../stages/authorize/index.js';
import { clientCertStage } from '../stages/client-cert/index.js';
import { filterStage } from '../stages/filter/index.js';
import { inspectStage } from '../stages/inspect/index.js';
import { preAuthStage } from '../stages/pre-auth/index.js';
import { validateStage } from '../stages/validate/index.js';
import type { Store } from '../store/types.js';
import type { Stage } from './context.js';

export const ROUTE_STAGE_ORDER = [
  'pre-auth',
  'client-cert',
  'authenticate',
  'authorize',
  'rate-limit',
  'validate',
  'inspect',
  'filter',
] as const;

export type RouteStageName = (typeof ROUTE_STAGE_ORDER)[number];

/** What a stage factory may use while it builds. */
export interface BuildDeps {
  config: GatewayConfig;
  logger: Logger;
  store: Store | undefined;
  auth: AuthServices;
  /** Blocked IPs, keys and principals; undefined where blocks are not used. */
  blocklist?: Blocklist | undefined;
  /** Rate limiters, quotas and concurrency counters; a route with limits needs it. */
  rateLimit?: RateLimitService | undefined;
}

export interface StageFactory {
  readonly name: RouteStageName;
  /** Builds the stage for one route, or returns undefined when it is off there. */
  create(route: RouteSettings, deps: BuildDeps): Stage | undefined;
}

/** The factories, in pipeline order. Features add theirs here. */
export const STAGE_FACTORIES: readonly StageFactory[] = [
  admissionStage,
  preAuthStage,
  clientCertStage,
  authenticateStage,
  authorizeStage,
  rateLimitStage,
  validateStage,
  inspectStage,
  filterStage,
];

for (const [i, f] of STAGE_FACTORIES.entries()) {
  if (ROUTE_STAGE_ORDER.indexOf(f.name) < ROUTE_STAGE_ORDER.indexOf(STAGE_FACTORIES[i - 1]?.name ?? f.name)) {
    throw new Error(`stage ${f.name} is out of pipeline order`);
  }
}

/** The stages of one route, in order, with the ones it switches off left out. */
export function buildRouteStages(route: RouteSettings, deps: BuildDeps): Stage[] {
  const stages: Stage[] = [];
  for (const factory of STAGE_FACTORIES) {
    const stage = factory.create(route, deps);
    if (stage) stages.push(stage);
  }
  return stages;
}
