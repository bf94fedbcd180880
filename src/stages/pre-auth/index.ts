/**
 * Pre-auth: refuses a client IP that is locked out for repeated failed
 * authentication, before any cryptographic work is spent on it.
 */
import type { StageFactory } from '../../pipeline/index.js';

export const preAuthStage: StageFactory = {
  name: 'pre-auth',
  create(route, deps) {
    if (route.auth === 'none') return undefined;
    const guard = deps.auth.guard;
    return {
      name: 'pre-auth',
      handle(ctx) {
        guard.check(ctx.clientIp, undefined);
      },
    };
  },
};
