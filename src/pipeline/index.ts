/**
 * The order of the pipeline lives here and only here. The transport stages
 * (bound, normalise, route) run in the server for every request; the route
 * stages below are built once per route and run in this order. Config may
 * switch a stage off for a route (its factory returns undefined); it never
 * reorders them.
 */
import type { RouteSettings } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/types.js';
import type { Stage } from './context.js';

export const ROUTE_STAGE_ORDER = [
  'pre-auth',
  'authenticate',
  'authorize',
  'rate-limit',
  'validate',
  'inspect',
] as const;

export type RouteStageName = (typeof ROUTE_STAGE_ORDER)[number];

/** What a stage factory may use while it builds. */
export interface BuildDeps {
  logger: Logger;
  store: Store | undefined;
}

export interface StageFactory {
  readonly name: RouteStageName;
  /** Builds the stage for one route, or returns undefined when it is off there. */
  create(route: RouteSettings, deps: BuildDeps): Stage | undefined;
}

/** The factories, in pipeline order. Features add theirs here. */
export const STAGE_FACTORIES: readonly StageFactory[] = [];

/** The stages of one route, in order, with the ones it switches off left out. */
export function buildRouteStages(route: RouteSettings, deps: BuildDeps): Stage[] {
  const stages: Stage[] = [];
  for (const factory of STAGE_FACTORIES) {
    const stage = factory.create(route, deps);
    if (stage) stages.push(stage);
  }
  return stages;
}
