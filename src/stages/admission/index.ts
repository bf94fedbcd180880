/**
 * Admission (pipeline step 4, before any cryptography): load shedding and
 * the global in-flight cap, answered 503 `gateway.overloaded` with
 * Retry-After. Uses the rate-limit service (`src/ratelimit/`).
 */
import { GatewayError } from '../../errors.js';
import type { StageFactory } from '../../pipeline/types.js';
import { RATE_LIMIT_ERRORS } from '../../ratelimit/errors.js';
import { onResponseDone, serviceOf } from '../../ratelimit/stage-support.js';

export const admissionStage: StageFactory = {
  name: 'admission',
  create(_route, deps) {
    const settings = deps.config.rateLimit;
    if (settings?.loadShedding === undefined && settings?.globalConcurrency === undefined) return undefined;
    const service = serviceOf(deps);
    const overload = service.overload;
    const max = settings.globalConcurrency;
    const retryAfter = String(service.settings.retryAfterSeconds);
    const shed = (reason: string) =>
      new GatewayError(RATE_LIMIT_ERRORS.overloaded, {
        headers: { 'retry-after': retryAfter },
        internal: reason,
      });
    const release = () => {
      service.globalInFlight--;
    };
    return {
      name: 'admission',
      handle(ctx) {
        if (overload?.overloaded) {
          service.shed.eventLoop++;
          throw shed(`event-loop delay ${Math.round(overload.delayMs)} ms`);
        }
        if (max === undefined) return;
        if (service.globalInFlight >= max) {
          service.shed.inFlight++;
          throw shed(`${service.globalInFlight} requests in flight`);
        }
        service.globalInFlight++;
        onResponseDone(ctx, release);
      },
    };
  },
};
