/**
 * Client certificates per route (`routes[].mtls`): a route that requires
 * one refuses a request without a verified certificate from an accepted CA,
 * before any token is looked at. The TLS layer did the verification; this
 * only reads its verdict.
 */
import { gatewayError } from '../../errors.js';
import type { StageFactory } from '../../pipeline/types.js';
import { createRouteMtlsCheck } from '../../tls/client-auth.js';

export const clientCertStage: StageFactory = {
  name: 'client-cert',
  create(route, deps) {
    const settings = deps.config.tls.routes[route.index];
    if (settings === undefined) return undefined;
    const check = createRouteMtlsCheck(settings);
    const guard = deps.auth.guard;
    return {
      name: 'client-cert',
      handle(ctx) {
        const result = check.check(ctx.req.socket);
        if (result.ok) return;
        if (result.reason !== 'no_certificate') guard.recordFailure(ctx.clientIp, undefined);
        throw gatewayError('clientCertificateRequired', { internal: `client certificate: ${result.reason}` });
      },
    };
  },
};
