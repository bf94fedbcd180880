/**
 * Authenticate: turns the request's credential into a Principal, or rejects
 * it with 401. Which credentials a route accepts is its `auth` list; a route
 * without `auth: none` always requires one (default deny).
 *
 * The client learns nothing about why a credential failed (RFC 6750 §3.1:
 * `error="invalid_token"` and nothing more specific); the reason goes to the
 * log and, later, the audit trail.
 */
import { AuthFailure, AuthUnavailable } from '../../auth/types.js';
import type { AuthMethod } from '../../config/types.js';
import type { Principal } from '../../contracts/principal.js';
import type { QueryView } from '../../contracts/request.js';
import type { RequestContext } from '../../contracts/stage.js';
import { gatewayError } from '../../errors.js';
import type { StageFactory } from '../../pipeline/types.js';
import { checkTokenBinding, clientCertificatePrincipal } from '../../tls/client-auth.js';

const CHALLENGE = 'Bearer realm="portcullis"';
const INVALID_TOKEN = 'Bearer realm="portcullis", error="invalid_token"';

/** The token of `Authorization: Bearer <token>` (RFC 6750 §2.1), or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined || header.length < 8) return undefined;
  if (header.slice(0, 7).toLowerCase() !== 'bearer ') return undefined;
  const token = header.slice(7).trim();
  return token === '' ? undefined : token;
}

/** The API key in the query string: one value under one spelling, or the request is refused. */
function queryKey(query: QueryView, name: string): string | undefined {
  const values = query.values(name);
  if (values.length === 0) return undefined;
  if (values.length > 1 || query.spellings(name).length > 0) {
    throw gatewayError('ambiguousParameter', { internal: `query ${name}` });
  }
  return values[0];
}

export const authenticateStage: StageFactory = {
  name: 'authenticate',
  create(route, deps) {
    if (route.auth === 'none') return undefined;
    const methods: readonly AuthMethod[] = route.auth;
    const { jwt, introspection, apiKeys, guard, revocations } = deps.auth;
    const providers = route.providers === undefined ? undefined : new Set(route.providers);
    const keySettings = deps.config.auth.apiKeys;
    const keyHeader = keySettings?.header;
    const useJwt = methods.includes('jwt') && jwt !== undefined;
    const useIntrospection = methods.includes('introspection') && introspection !== undefined;
    const useKeys = methods.includes('api_key') && apiKeys !== undefined;
    const clientAuth = deps.config.tls.listener?.clientAuth;
    const useMtls = methods.includes('mtls') && clientAuth !== undefined && clientAuth.mode !== 'off';
    const bindingRequired = clientAuth?.tokenBinding === 'required';
    const headers = deps.config.auth.identityHeaders;
    const blocklist = deps.blocklist;
    const logger = deps.logger;

    const fail = (
      ctx: RequestContext,
      err: unknown,
      credentialId: string | undefined,
      kind: string,
    ): never => {
      if (err instanceof AuthFailure) {
        ctx.credentialId = err.credentialId ?? credentialId;
        // Only guess-like failures count (src/auth/brute-force.ts).
        guard.recordFailure(ctx.clientIp, ctx.credentialId, err.reason);
        logger.info(
          { requestId: ctx.id, route: route.name, method: kind, reason: err.reason },
          'authentication failed',
        );
        throw gatewayError('authInvalid', {
          headers: { 'www-authenticate': INVALID_TOKEN },
          internal: `${kind}: ${err.reason}`,
        });
      }
      if (err instanceof AuthUnavailable) {
        logger.warn(
          { requestId: ctx.id, route: route.name, method: kind, reason: err.reason },
          'authentication unavailable',
        );
        throw err.status === 401
          ? gatewayError('authInvalid', {
              headers: { 'www-authenticate': INVALID_TOKEN },
              internal: err.reason,
            })
          : gatewayError('authUnavailable', { headers: { 'retry-after': '5' }, internal: err.reason });
      }
      throw err;
    };

    /** RFC 8705: a certificate-bound token is only good over the connection with that certificate. */
    const bound = (ctx: RequestContext, principal: Principal): Principal => {
      const binding = checkTokenBinding(principal, ctx.req.socket, { required: bindingRequired });
      if (!binding.ok) throw new AuthFailure(`token_binding_${binding.reason}`);
      return principal;
    };

    /** The route's provider restriction, and the kill switch: on every request, cache hits included, O(1). */
    const admit = (principal: Principal): Principal => {
      if (providers !== undefined && principal.provider !== undefined) {
        const name = principal.provider.slice(principal.provider.indexOf(':') + 1);
        if (!providers.has(name)) throw new AuthFailure('provider_not_allowed');
      }
      if (revocations?.isRevoked(principal)) throw new AuthFailure('token_revoked');
      return principal;
    };

    const accept = (ctx: RequestContext, principal: Principal, credentialId: string | undefined): void => {
      guard.recordSuccess(ctx.clientIp, credentialId);
      ctx.principal = principal;
      blocklist?.checkPrincipal(principal);
      const up = ctx.upstreamHeaders;
      up[headers.subject] = principal.id;
      up[headers.kind] = principal.kind;
      if (principal.scopes.length > 0) up[headers.scopes] = principal.scopes.join(' ');
      if (principal.roles.length > 0) up[headers.roles] = principal.roles.join(',');
      if (principal.tenant !== undefined) up[headers.tenant] = principal.tenant;
    };

    return {
      name: 'authenticate',
      async handle(ctx) {
        // Asked only before the expensive check of a credential not known to be good.
        const gate = (credentialId: string | undefined) => guard.check(ctx.clientIp, credentialId);
        const token = useJwt || useIntrospection ? bearerToken(ctx.headers.get('authorization')) : undefined;
        if (token !== undefined) {
          // A compact JWS has exactly two dots; anything else is an opaque token.
          const isJwt = token.split('.').length === 3;
          if (isJwt && useJwt) {
            try {
              return accept(ctx, admit(bound(ctx, await jwt!.verify(token, gate))), undefined);
            } catch (err) {
              return fail(ctx, err, undefined, 'jwt');
            }
          }
          if (useIntrospection) {
            try {
              return accept(ctx, admit(bound(ctx, await introspection!.introspect(token, gate))), undefined);
            } catch (err) {
              return fail(ctx, err, undefined, 'introspection');
            }
          }
          return fail(ctx, new AuthFailure('unsupported_token'), undefined, 'bearer');
        }
        if (useKeys) {
          let raw = ctx.headers.get(keyHeader!);
          if (raw === undefined && route.apiKeyInQuery) raw = queryKey(ctx.query, keySettings!.queryParam);
          if (raw !== undefined) {
            const id = apiKeys!.keyId(raw);
            try {
              return accept(ctx, admit(await apiKeys!.authenticate(raw, gate, route.name)), id);
            } catch (err) {
              return fail(ctx, err, id, 'api_key');
            }
          }
        }
        if (useMtls) {
          const principal = clientCertificatePrincipal(ctx.req.socket, clientAuth.principal);
          if (principal !== undefined) return accept(ctx, principal, undefined);
        }
        throw gatewayError('authRequired', {
          headers: { 'www-authenticate': CHALLENGE },
          internal: 'no credentials',
        });
      },
    };
  },
};
