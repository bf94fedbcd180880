/**
 * What a stage factory receives and returns. The table (`./index.ts`)
 * imports the stages; the stages import these types, never the table.
 */
import type { Blocklist } from '../alerts/index.js';
import type { AuthServices } from '../auth/services.js';
import type { GatewayConfig, RouteSettings } from '../config/types.js';
import type { Stage } from '../contracts/stage.js';
import type { Logger } from '../log.js';
import type { RateLimitService } from '../ratelimit/index.js';
import type { Store } from '../store/types.js';

/** The route stages, in pipeline order (steps 4–10 of DESIGN.md). */
export const ROUTE_STAGE_ORDER = [
  'admission',
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
