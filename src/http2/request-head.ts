/**
 * An HTTP/2 request's header list as the HTTP/1.1 one it stands for, so the
 * normalise stage builds the one request view from it exactly as from an
 * HTTP/1.1 request (src/stages/normalise/index.ts), and every stage reads
 * the same view for both protocols.
 *
 * RFC 9113 §8.2 and §8.3 checks, on top of what nghttp2 already refuses
 * with RST_STREAM PROTOCOL_ERROR (kept here too, so the view never depends
 * on the library version): a malformed request gets 400 problem+json.
 * - Pseudo-header fields leave the list: `:method` and `:path` are already
 *   the request's method and target (`req.method`, `req.url`); `:scheme` is
 *   that of the TLS listener; `:authority` becomes `host`. An unknown one,
 *   or `:protocol` (extended CONNECT, RFC 8441), is refused.
 * - `:authority` and `host`, when both are present, must agree (§8.3.1).
 * - Names are lower case (§8.2.1); connection-specific fields
 *   (`connection`, `keep-alive`, `proxy-connection`, `transfer-encoding`,
 *   `upgrade`) and a `te` other than `trailers` are malformed (§8.2.2).
 * - `cookie` crumbs are joined with "; " into one field (§8.2.3), as the
 *   HTTP/1.1 request they stand for has it.
 */

export type Http2HeadResult =
  | { ok: true; raw: string[] }
  | { ok: false; error: 'badHeader' | 'badHost'; reason: string };

/** Fields that describe an HTTP/1.1 connection and have no meaning in HTTP/2 (RFC 9113 §8.2.2). */
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);
const KNOWN_PSEUDO = new Set([':method', ':path', ':scheme', ':authority']);
const UPPER = /[A-Z]/;

/** Maps the raw header list of an HTTP/2 request (pseudo-headers included, as Node gives it) onto HTTP/1.1's. */
export function http1HeaderList(raw: readonly string[]): Http2HeadResult {
  let authority: string | undefined;
  let host: string | undefined;
  const cookies: string[] = [];
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name.startsWith(':')) {
      if (!KNOWN_PSEUDO.has(name)) {
        return {
          ok: false,
          error: 'badHeader',
          reason: `pseudo-header ${JSON.stringify(name.slice(0, 40))}`,
        };
      }
      if (name === ':authority') authority = value;
      continue;
    }
    if (UPPER.test(name))
      return { ok: false, error: 'badHeader', reason: 'upper-case header name in HTTP/2' };
    if (CONNECTION_SPECIFIC.has(name)) {
      return { ok: false, error: 'badHeader', reason: `connection-specific header ${name} in HTTP/2` };
    }
    if (name === 'te' && value.trim().toLowerCase() !== 'trailers') {
      return { ok: false, error: 'badHeader', reason: 'te other than trailers in HTTP/2' };
    }
    if (name === 'cookie') {
      cookies.push(value);
      continue;
    }
    if (name === 'host') {
      if (host !== undefined) return { ok: false, error: 'badHeader', reason: 'repeated host header' };
      host = value;
      continue;
    }
    out.push(name, value);
  }
  if (authority !== undefined && host !== undefined && authority.toLowerCase() !== host.toLowerCase()) {
    return { ok: false, error: 'badHost', reason: ':authority and host disagree' };
  }
  const head: string[] = [];
  const effectiveHost = authority ?? host;
  if (effectiveHost !== undefined) head.push('host', effectiveHost);
  if (cookies.length > 0) head.push('cookie', cookies.join('; '));
  return { ok: true, raw: head.length === 0 ? out : [...head, ...out] };
}
