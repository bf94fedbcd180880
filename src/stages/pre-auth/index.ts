/**
 * Pre-auth: refuses a client IP that is blocked (an automatic response to an
 * attack, or an operator's block) or locked out for repeated failed
 * authentication, before any cryptographic work is spent on it.
 */
import type { StageFactory } from '../../pipeline/types.js';

export const preAuthStage: StageFactory = {
  name: 'pre-auth',
  create(route, deps) {
    const blocklist = deps.blocklist;
    if (route.auth === 'none') {
      // A blocked client is refused on public routes too.
      return blocklist === undefined
        ? undefined
        : { name: 'pre-auth', handle: (ctx) => blocklist.checkIp(ctx.clientIp) };
    }
    const guard = deps.auth.guard;
    return {
      name: 'pre-auth',
      handle(ctx) {
        blocklist?.checkIp(ctx.clientIp);
        guard.check(ctx.clientIp, undefined);
      },
    };
  },
};
