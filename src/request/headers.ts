/**
 * Reading the request headers once, from Node's raw header list: Node's
 * `req.headers` keeps the first of some duplicates (Authorization,
 * Content-Type, Host) and joins others, while upstreams may keep the last,
 * so the gateway never reads `req.headers` for a decision.
 *
 * - A singleton header (Host, Authorization, Content-Type, Content-Length,
 *   Cookie — RFC 6265 §5.4 allows one — and the API-key header) that
 *   appears twice is refused.
 * - A header name with `_` is dropped: CGI and WSGI upstreams fold `_` and
 *   `-` into one name (`x_portcullis_roles` reaches them as the identity
 *   header the gateway sets). nginx drops them by default for this reason.
 * - Headers that make an upstream re-route or re-identify a request
 *   (`X-Original-URL`, `X-HTTP-Method-Override`, `X-Real-IP`, …) are
 *   dropped: the route and the client were decided here.
 */
import type { HeaderView, Pair } from '../contracts/request.js';

/** Headers that must appear at most once on every request. */
export const SINGLETON_HEADERS: readonly string[] = [
  'host',
  'authorization',
  'proxy-authorization',
  'content-type',
  'content-length',
  'content-encoding',
  'cookie',
  'origin',
];

/**
 * Headers some upstream servers or frameworks use to override the method,
 * the path or the client address. Never forwarded and never read.
 */
export const OVERRIDE_HEADERS: readonly string[] = [
  'x-original-url',
  'x-rewrite-url',
  'x-original-uri',
  'x-override-url',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'x-cluster-client-ip',
  'forwarded',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-server',
  'x-original-host',
  'x-host',
];

export type HeaderResult = { ok: true; view: HeaderView; dropped: number } | { ok: false; reason: string };

class Headers implements HeaderView {
  constructor(
    readonly pairs: readonly Pair[],
    private readonly byName: Map<string, string[]>,
  ) {}

  get(name: string): string | undefined {
    return this.byName.get(name)?.[0];
  }

  all(name: string): readonly string[] {
    return this.byName.get(name) ?? NONE;
  }
}

const NONE: readonly string[] = [];

/** Reads a raw header list; refuses a repeated singleton; leaves out dropped names. */
export function readHeaders(
  raw: readonly string[],
  singletons: ReadonlySet<string>,
  dropped: ReadonlySet<string>,
): HeaderResult {
  const pairs: Pair[] = [];
  const byName = new Map<string, string[]>();
  let drops = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name.includes('_') || dropped.has(name)) {
      drops++;
      continue;
    }
    const value = raw[i + 1]!;
    pairs.push([name, value]);
    const list = byName.get(name);
    if (list === undefined) byName.set(name, [value]);
    else {
      if (singletons.has(name)) return { ok: false, reason: `repeated ${name} header` };
      list.push(value);
    }
  }
  return { ok: true, view: new Headers(pairs, byName), dropped: drops };
}

/** Whether a header name is forwarded: not dropped by the rules above. */
export function isForwardable(name: string, dropped: ReadonlySet<string>): boolean {
  return !name.includes('_') && !dropped.has(name);
}
