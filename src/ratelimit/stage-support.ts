/** What the admission and rate-limit stages share: the service lookup and slot release. */
import type { RequestContext } from '../contracts/stage.js';
import type { BuildDeps } from '../pipeline/types.js';
import type { RateLimitService } from './service.js';

/**
 * The service, for a stage that needs it. A route that needs one and has
 * none fails the build: limits configured but not enforced would fail open.
 */
export function serviceOf(deps: BuildDeps): RateLimitService {
  const service = deps.rateLimit;
  if (service === undefined) {
    throw new Error('rate limiting is configured but the gateway was built without its rate-limit service');
  }
  return service;
}

/** Releases one in-flight slot when the response is done (or the client went away). */
export function onResponseDone(ctx: RequestContext, release: () => void): void {
  const res = ctx.res;
  if (res.closed || res.destroyed) release();
  else res.once('close', release);
}
