/**
 * The order of the pipeline lives here and only here (DESIGN.md, "One
 * request, end to end"). The transport steps (bound, normalise, route) run
 * in the driver for every request, in `TRANSPORT_STAGES` order; the route
 * stages below are built once per route and run in this order. Config may
 * switch a stage off for a route (its factory returns undefined); it never
 * reorders them. Adding a stage is one folder under `src/stages/` and one
 * line here.
 */
import type { RouteSettings } from '../config/types.js';
import type { Stage } from '../contracts/stage.js';
import { admissionStage } from '../stages/admission/index.js';
import { authenticateStage } from '../stages/authenticate/index.js';
import { authorizeStage } from '../stages/authorize/index.js';
import { clientCertStage } from '../stages/client-cert/index.js';
import { filterStage } from '../stages/filter/index.js';
import { inspectStage } from '../stages/inspect/index.js';
import { preAuthStage } from '../stages/pre-auth/index.js';
import { rateLimitStage } from '../stages/rate-limit/index.js';
import { validateStage } from '../stages/validate/index.js';
import { type BuildDeps, ROUTE_STAGE_ORDER, type StageFactory } from './types.js';

export type { BuildDeps, StageFactory } from './types.js';

/** Steps 1–3, run by the driver for every request: `src/stages/{bound,normalise,route}`. */
export const TRANSPORT_STAGES = ['bound', 'normalise', 'route'] as const;

/** The route stages, in pipeline order (steps 4–11; the proxy call sits between inspect and filter). */
export const STAGE_FACTORIES: readonly StageFactory[] = [
  admissionStage, //   4  overload shedding, before anything costs
  preAuthStage, //     4  blocks and brute-force lockout, before any cryptography
  clientCertStage, //  5  mutual TLS
  authenticateStage, //5  JWT, introspection, API key → Principal
  authorizeStage, //   6  scopes, roles, claims, ownership, tenant
  rateLimitStage, //   7  per principal, key, route; quotas; concurrency
  validateStage, //    8  parameters and body against the API description
  inspectStage, //     9  injection detection on every input
  filterStage, //     10  response side: filter to the declared schema
];

for (const [i, f] of STAGE_FACTORIES.entries()) {
  if (ROUTE_STAGE_ORDER.indexOf(f.name) !== i) throw new Error(`stage ${f.name} is out of pipeline order`);
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
