/**
 * `portcullis explain`: the decision trail for one request, computed by the
 * same routing, authentication and policy code the gateway runs — without
 * calling the upstream.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { AuthServices } from '../auth/services.js';
import { AuthFailure, AuthUnavailable } from '../auth/types.js';
import type { GatewayConfig, RouteSettings } from '../config/types.js';
import type { Principal } from '../contracts/principal.js';
import type { RequestBody } from '../contracts/request.js';
import { ERRORS } from '../errors.js';
import type { Gateway } from '../gateway.js';
import { readHeaders } from '../request/headers.js';
import { parseQuery } from '../request/query.js';
import { BadPathError, normaliseTarget } from '../stages/normalise/path.js';
import {
  compilePolicy,
  documentPolicies,
  evaluatePolicy,
  networkCheck,
  type PolicyInput,
  readPath,
  type TrailEntry,
  UnreadableBinding,
} from './policy.js';

export interface ExplainInput {
  method: string;
  /** Request target: path and optional query. */
  target: string;
  headers: IncomingHttpHeaders;
  token?: string;
  key?: string;
  /** Claims of a hypothetical JWT principal (no signature involved). */
  claims?: Record<string, unknown>;
  clientIp: string;
  body?: unknown;
}

export interface Explanation {
  request: string;
  canonicalPath?: string;
  route?: string;
  upstream?: string;
  principal?: {
    kind: string;
    id: string;
    scopes: readonly string[];
    roles: readonly string[];
    tenant?: string;
  };
  authentication: string;
  rules: TrailEntry[];
  decision: 'allow' | 'deny';
  status: number;
  code?: string;
}

/** A Principal from bare claims, read the way the matching JWT provider would. */
export function principalFromClaims(config: GatewayConfig, claims: Record<string, unknown>): Principal {
  const provider =
    config.auth.jwt?.providers.find((p) => p.issuer === claims.iss) ?? config.auth.jwt?.providers[0];
  const list = (v: unknown): string[] =>
    typeof v === 'string' ? v.split(/[ ,]/).filter(Boolean) : Array.isArray(v) ? v.map(String) : [];
  const tenant = readPath(claims, provider?.tenantClaim ?? 'tenant');
  return {
    kind: 'jwt',
    id: String(claims.sub ?? ''),
    scopes: list(readPath(claims, provider?.scopesClaim ?? 'scope')),
    roles: list(readPath(claims, provider?.rolesClaim ?? 'roles')),
    claims,
    tenant: typeof tenant === 'string' ? tenant : undefined,
  };
}

export async function explainRequest(
  config: GatewayConfig,
  gateway: Gateway,
  services: AuthServices,
  input: ExplainInput,
): Promise<Explanation> {
  const out: Explanation = {
    request: `${input.method} ${input.target}`,
    authentication: 'not needed',
    rules: [],
    decision: 'deny',
    status: 0,
  };
  let target: { path: string; query: string };
  try {
    target = normaliseTarget(input.target);
  } catch (err) {
    return {
      ...out,
      authentication: 'not reached',
      status: 400,
      code: 'request.bad_path',
      rules: [{ rule: 'path', pass: false, detail: err instanceof BadPathError ? err.reason : 'bad path' }],
    };
  }
  out.canonicalPath = target.path;
  const matched = gateway.match(input.method, target.path);
  if (matched === undefined)
    return { ...out, authentication: 'not reached', status: 404, code: 'route.not_found' };
  if ('allowed' in matched) {
    return { ...out, authentication: 'not reached', status: 405, code: 'route.method_not_allowed' };
  }
  const { route, params } = matched;
  out.route = `${route.name} (routes[${route.index}])`;
  out.upstream = route.upstream;

  let principal: Principal | undefined;
  if (route.auth !== 'none') {
    try {
      if (input.claims) {
        principal = principalFromClaims(config, input.claims);
        out.authentication = 'assumed from --claims (no signature checked)';
      } else if (input.token && services.jwt && route.auth.includes('jwt')) {
        principal = await services.jwt.verify(input.token);
        out.authentication = 'jwt verified';
      } else if (input.token && services.introspection && route.auth.includes('introspection')) {
        principal = await services.introspection.introspect(input.token);
        out.authentication = 'token introspected';
      } else if (input.key && services.apiKeys && route.auth.includes('api_key')) {
        principal = await services.apiKeys.authenticate(input.key);
        out.authentication = 'api key verified';
      } else {
        return { ...out, authentication: 'no accepted credential given', status: 401, code: 'auth.required' };
      }
    } catch (err) {
      const reason =
        err instanceof AuthFailure || err instanceof AuthUnavailable ? err.reason : String(err as Error);
      return { ...out, authentication: `failed: ${reason}`, status: 401, code: 'auth.invalid_credentials' };
    }
    out.principal = {
      kind: principal.kind,
      id: principal.id,
      scopes: principal.scopes,
      roles: principal.roles,
      ...(principal.tenant === undefined ? {} : { tenant: principal.tenant }),
    };
  }
  const raw: string[] = [];
  for (const [name, value] of Object.entries(input.headers)) {
    for (const v of [value ?? []].flat()) raw.push(name, String(v));
  }
  const headers = readHeaders(raw, new Set(), new Set());
  const query = parseQuery(target.query);
  if (!headers.ok || query === undefined) {
    return { ...out, status: 400, code: query === undefined ? 'request.bad_query' : 'request.bad_header' };
  }
  const body: RequestBody | undefined =
    input.body === undefined
      ? undefined
      : { kind: 'json', bytes: Buffer.from(JSON.stringify(input.body)), value: input.body };
  const facts = {
    principal,
    params,
    query,
    headers: headers.view,
    body,
    clientIp: input.clientIp,
  };
  try {
    return decide(config, route, input.method, facts, out);
  } catch (err) {
    if (!(err instanceof UnreadableBinding)) throw err;
    const spec = ERRORS[err.error];
    return {
      ...out,
      status: spec.status,
      code: spec.code,
      rules: [{ rule: 'body', pass: false, detail: err.reason }],
    };
  }
}

function decide(
  config: GatewayConfig,
  route: RouteSettings,
  method: string,
  facts: PolicyInput,
  out: Explanation,
): Explanation {
  let allowed = true;
  if (config.authorization.network) {
    const r = networkCheck('global network', config.authorization.network).evaluate(facts);
    out.rules.push({ rule: 'global network', ...r });
    allowed &&= r.pass;
  }
  const stated = route.auth === 'none' ? undefined : documentPolicies(route.operations ?? {}).get(method);
  if (stated) {
    const d = evaluatePolicy(stated, facts);
    out.rules.push(...d.trail.map((t) => ({ ...t, rule: `document security ${t.rule}` })));
    if (!d.allowed) allowed = false;
  }
  const policy = route.authorize === undefined ? undefined : compilePolicy(route.authorize);
  if (policy) {
    const decision = evaluatePolicy(policy, facts);
    out.rules.push(...decision.trail);
    if (!decision.allowed && policy.mode === 'enforce') allowed = false;
    if (!decision.allowed && policy.mode === 'shadow')
      out.rules.push({ rule: 'mode', pass: true, detail: 'shadow: the denial is only reported' });
  } else if (route.authorize === 'any-authenticated') {
    out.rules.push({ rule: 'any-authenticated', pass: true, detail: 'any authenticated principal' });
  }
  return allowed
    ? { ...out, decision: 'allow', status: 200 }
    : { ...out, decision: 'deny', status: 403, code: 'authz.forbidden' };
}

/** The human form of an explanation. */
export function formatExplanation(e: Explanation): string {
  const lines = [`request    ${e.request}${e.canonicalPath ? `  (canonical path ${e.canonicalPath})` : ''}`];
  if (e.route) lines.push(`route      ${e.route} → upstream ${e.upstream}`);
  if (e.principal) {
    const p = e.principal;
    lines.push(
      `principal  ${p.kind} ${p.id}  scopes [${p.scopes.join(' ')}]  roles [${p.roles.join(' ')}]${p.tenant ? `  tenant ${p.tenant}` : ''}`,
    );
  }
  lines.push(`auth       ${e.authentication}`);
  for (const r of e.rules) lines.push(`  ${r.pass ? 'pass' : 'FAIL'}  ${r.rule}: ${r.detail}`);
  lines.push(
    `decision   ${e.decision.toUpperCase()} → ${e.status}${e.code ? ` ${e.code}` : ' (the request would go to the upstream)'}`,
  );
  return lines.join('\n');
}
