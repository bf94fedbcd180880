/**
 * Pre-auth: refuses a client IP that is blocked (an automatic response to an
 * attack, or an operator's block), before any cryptographic work is spent on
 * it. Brute-force lockout is not checked here: it applies only before the
 * expensive verification of a credential not already known to be good
 * (the authenticate stage asks the guard then), so a locked-out address
 * does not lock out the valid, already-verified credentials sent from it.
 */
import type { StageFactory } from '../../pipeline/types.js';

export const preAuthStage: StageFactory = {
  name: 'pre-auth',
  create(_route, deps) {
    const blocklist = deps.blocklist;
    // A blocked client is refused on public routes too.
    return blocklist === undefined
      ? undefined
      : { name: 'pre-auth', handle: (ctx) => blocklist.checkIp(ctx.clientIp) };
  },
};
