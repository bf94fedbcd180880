/**
 * Compiling a config's routes once per gateway: each route's stages in
 * pipeline order, its upstream pool, the headers it never forwards and the
 * security headers of its responses, in a routing table.
 */
import type { GatewayConfig, RouteSettings } from '../config/types.js';
import type { Stage } from '../contracts/stage.js';
import { createUpstream, type Upstream } from '../proxy/upstream.js';
import { securityHeaders } from '../stages/headers/index.js';
import type { ProxyRoute } from '../stages/proxy/index.js';
import { createRouteTable, type RouteTable } from '../stages/route/index.js';
import { hstsHeaderValue } from '../tls/types.js';
import { type BuildDeps, buildRouteStages } from './index.js';

export interface CompiledRoute extends ProxyRoute {
  readonly settings: RouteSettings;
  readonly stages: readonly Stage[];
  /** Security headers added to every response of this route, as flat pairs. */
  readonly responseHeaders: readonly string[];
  /** A query parameter never forwarded (the API key, on routes that accept it there). */
  readonly stripQueryParam: string | undefined;
}

export interface CompiledRoutes {
  readonly table: RouteTable<CompiledRoute>;
  /** One keep-alive pool per upstream, shared by the routes that go there. */
  readonly upstreams: ReadonlyMap<string, Upstream>;
  /** HSTS for the gateway's own answers on an HTTPS listener (RFC 6797 §7.1), else undefined. */
  readonly hsts: string | undefined;
}

export function compileRoutes(config: GatewayConfig, deps: BuildDeps): CompiledRoutes {
  const upstreams = new Map<string, Upstream>();
  for (const [name, settings] of Object.entries(config.upstreams)) {
    upstreams.set(name, createUpstream(settings, config.tls.upstreams[name]));
  }
  const hstsSettings = config.tls.listener?.hsts;
  const hsts = hstsSettings ? hstsHeaderValue(hstsSettings) : undefined;
  const identity = config.auth.identityHeaders;
  // Identity headers only the gateway sets, and the API key: never forwarded.
  const strip = new Set([
    identity.subject,
    identity.kind,
    identity.scopes,
    identity.roles,
    identity.tenant,
    ...(config.auth.apiKeys ? [config.auth.apiKeys.header] : []),
  ]);
  const table = createRouteTable(
    config.routes.map((settings) => {
      const stages = buildRouteStages(settings, deps);
      const filtered = stages.some((s) => s.response);
      const route: CompiledRoute = {
        settings,
        stages,
        filters: stages.flatMap((s) => (s.response ? [s.response] : [])),
        // A filtered response must arrive uncompressed to be read.
        stripHeaders: filtered ? new Set([...strip, 'accept-encoding']) : strip,
        upstream: upstreams.get(settings.upstream)!,
        bodyLimit: settings.bodyLimit,
        stripQueryParam: settings.apiKeyInQuery ? config.auth.apiKeys?.queryParam : undefined,
        responseHeaders: securityHeaders(settings.cacheControl, hsts),
      };
      return { methods: settings.methods, routerPath: settings.routerPath, route };
    }),
  );
  return { table, upstreams, hsts };
}

/** Closes the upstream pools once their in-flight requests finish (or after `graceMs`). */
export async function closeUpstreams(
  upstreams: ReadonlyMap<string, Upstream>,
  graceMs: number,
): Promise<void> {
  const pools = [...upstreams.values()];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, graceMs);
    timer.unref();
  });
  await Promise.race([Promise.all(pools.map((u) => u.close())), timeout]);
  clearTimeout(timer);
  await Promise.all(pools.map((u) => u.pool.destroy()));
}
