/**
 * Rate limiting's counters and service: GCRA limits, quotas, concurrency,
 * load shedding, in memory or Redis. The stages that use them are
 * `src/stages/admission/` and `src/stages/rate-limit/`.
 */
export { buildRateLimit, RateLimitService } from './service.js';
export type { RateLimitSettings, RouteRateLimits } from './types.js';
