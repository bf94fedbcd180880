/**
 * The answer to a request no route takes: 404, or 405 with `Allow`, or —
 * for a CORS preflight (`OPTIONS` with `Origin` and
 * `Access-Control-Request-Method`) — the preflight answer of the route the
 * real request would reach, when that route allows CORS.
 */
import type { CorsSettings } from '../../config/types.js';
import type { RequestHead } from '../../contracts/request.js';
import { type GatewayError, gatewayError } from '../../errors.js';
import { preflightHeaders } from '../../http/cors.js';
import type { Match, RouteTable } from './index.js';

/** The headers of a 204 preflight answer, or the problem to send. */
export type Unrouted = { preflight: Record<string, string> } | GatewayError;

export function answerUnrouted<R extends { readonly settings: { readonly cors: CorsSettings | undefined } }>(
  routes: RouteTable<R>,
  method: string,
  head: RequestHead,
  found: Match<R>,
): Unrouted {
  if (found === undefined || !('allowed' in found)) {
    return gatewayError('notFound', { internal: `${method} ${head.path}` });
  }
  const requested = head.headers.get('access-control-request-method');
  const origin = head.headers.get('origin');
  if (method === 'OPTIONS' && origin !== undefined && requested !== undefined) {
    const target = routes.match(requested, head.path);
    const cors = target !== undefined && 'route' in target ? target.route.settings.cors : undefined;
    if (cors !== undefined) {
      const headers = preflightHeaders(cors, head.headers);
      return headers === undefined ? gatewayError('corsRejected') : { preflight: headers };
    }
  }
  return gatewayError('methodNotAllowed', {
    headers: { allow: found.allowed.join(', ') },
    internal: `${method} ${head.path}`,
  });
}
