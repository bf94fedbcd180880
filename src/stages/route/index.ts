/**
 * Route (pipeline step 3): the canonical path and method against the
 * allowlist of routes, with find-my-way. Unknown → 404, known path with
 * another method → 405 with `Allow`. A path parameter never matches an
 * empty segment (`/pub/{name}` does not match `/pub/`): an empty value is
 * one that no rule bound to it was written for.
 */
import FindMyWay from 'find-my-way';

type Router = FindMyWay.Instance<FindMyWay.HTTPVersion.V1>;

export type Params = Readonly<Record<string, string | undefined>>;

export type Match<R> = { route: R; params: Params } | { allowed: string[] } | undefined;

export interface RouteTable<R> {
  /** The route and its parameters, the allowed methods (405), or nothing (404). */
  match(method: string, path: string): Match<R>;
}

/** Builds the routing table once from `(methods, router path, route)` entries. */
export function createRouteTable<R>(
  entries: readonly { methods: readonly string[]; routerPath: string; route: R }[],
): RouteTable<R> {
  const router: Router = FindMyWay({ caseSensitive: true, ignoreTrailingSlash: false, maxParamLength: 1000 });
  const methods = new Set<string>();
  for (const e of entries) {
    for (const m of e.methods) {
      router.on(m as FindMyWay.HTTPMethod, e.routerPath, () => {}, e.route);
      methods.add(m);
    }
  }
  const all = [...methods];
  const find = (method: string, path: string): { route: R; params: Params } | undefined => {
    const found = router.find(method as FindMyWay.HTTPMethod, path);
    if (found === null) return undefined;
    for (const name in found.params) if (found.params[name] === '') return undefined;
    return { route: found.store as R, params: found.params };
  };
  return {
    match(method, path) {
      const found = find(method, path);
      if (found !== undefined) return found;
      const allowed = all.filter((m) => find(m, path) !== undefined);
      return allowed.length > 0 ? { allowed } : undefined;
    },
  };
}

/** Converts `/users/{id}/orders` to find-my-way's `/users/:id/orders`, or reports why it can't. */
export function toRouterPath(template: string): { path: string; params: string[] } | { error: string } {
  const params: string[] = [];
  const segments = template.split('/').slice(1);
  const out: string[] = [];
  for (const [i, seg] of segments.entries()) {
    if (seg === '*' && i === segments.length - 1) {
      out.push('*');
      continue;
    }
    const m = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(seg);
    if (m) {
      if (params.includes(m[1]!)) return { error: `parameter {${m[1]}} appears twice` };
      params.push(m[1]!);
      out.push(`:${m[1]}`);
      continue;
    }
    if (seg === '' && i !== segments.length - 1) return { error: 'empty segment ("//")' };
    if (seg === '.' || seg === '..') return { error: 'dot segments are not allowed' };
    if (!/^[A-Za-z0-9\-._~!$&'()+,;=@%]*$/.test(seg) || seg.includes('{') || seg.includes('*')) {
      return {
        error: `segment "${seg}" must be literal characters, a whole {param}, or a final "*"`,
      };
    }
    out.push(seg.replace(/:/g, '::'));
  }
  return { path: `/${out.join('/')}`, params };
}
