/** CORS per route from an allow-list (Fetch standard §3.2): preflights are answered by the gateway. */
import type { CorsSettings } from '../config/types.js';
import type { HeaderView } from '../contracts/request.js';

function originAllowed(cors: CorsSettings, origin: string): boolean {
  return cors.anyOrigin || cors.origins.has(origin);
}

/** Header pairs to add to an actual (non-preflight) response, or none. */
export function corsResponseHeaders(cors: CorsSettings, origin: string | undefined): string[] {
  if (origin === undefined || !originAllowed(cors, origin)) return [];
  const out = [
    'access-control-allow-origin',
    cors.anyOrigin && !cors.credentials ? '*' : origin,
    'vary',
    'Origin',
  ];
  if (cors.credentials) out.push('access-control-allow-credentials', 'true');
  if (cors.exposeHeaders !== '') out.push('access-control-expose-headers', cors.exposeHeaders);
  return out;
}

/**
 * Answers a preflight: the headers of a 204 when the origin, method and
 * headers are all allowed, or undefined when the preflight must be refused.
 */
export function preflightHeaders(cors: CorsSettings, view: HeaderView): Record<string, string> | undefined {
  // Read from the one request view; a repeated method header is one no browser sends.
  const origin = view.get('origin');
  const methods = view.all('access-control-request-method');
  if (origin === undefined || methods.length !== 1) return undefined;
  const method = methods[0]!;
  if (!originAllowed(cors, origin)) return undefined;
  if (!cors.allowMethods.split(', ').includes(method)) return undefined;
  const requested = view
    .all('access-control-request-headers')
    .join(',')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== '');
  if (!requested.every((h) => cors.allowHeaders.includes(h))) return undefined;
  const headers: Record<string, string> = {
    'access-control-allow-origin': cors.anyOrigin && !cors.credentials ? '*' : origin,
    'access-control-allow-methods': cors.allowMethods,
    'access-control-max-age': String(cors.maxAgeSeconds),
    vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
  };
  if (requested.length > 0) headers['access-control-allow-headers'] = requested.join(', ');
  if (cors.credentials) headers['access-control-allow-credentials'] = 'true';
  return headers;
}
