/**
 * Headers (pipeline step 11): the security headers of every proxied
 * response, compiled once per route. The proxy replaces an upstream's
 * value of these (`OWNED_RESPONSE_HEADERS` in `src/proxy/upstream.ts`).
 */

/** The security headers of one route's responses, as flat pairs. */
export function securityHeaders(cacheControl: string, hsts: string | undefined): string[] {
  return [
    'x-content-type-options',
    'nosniff',
    'cache-control',
    cacheControl,
    'content-security-policy',
    "default-src 'none'; frame-ancestors 'none'",
    'referrer-policy',
    'no-referrer',
    ...(hsts === undefined ? [] : ['strict-transport-security', hsts]),
  ];
}
