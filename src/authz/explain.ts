/**
 * `portcullis explain`: the decision trail for one request, from a dry run
 * of the gateway itself — the same pipeline, stage for stage — without
 * calling the upstream.
 */
import { createServer, type IncomingHttpHeaders, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuthServices } from '../auth/services.js';
import { AuthFailure } from '../auth/types.js';
import type { GatewayConfig } from '../config/types.js';
import type { Principal } from '../contracts/principal.js';
import type { GatewayError } from '../errors.js';
import { Gateway } from '../gateway.js';
import { createLogger } from '../log.js';
import type { RouteContext } from '../pipeline/run.js';
import { buildRateLimit } from '../ratelimit/index.js';
import type { Store } from '../store/types.js';
import { readPath, type TrailEntry } from './policy.js';

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
  /** The body as sent; Content-Type defaults to application/json when the headers give none. */
  body?: string;
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

/** What explain builds its dry-run gateway from. */
export interface ExplainDeps {
  store: Store | undefined;
  auth: AuthServices;
}

/** The token that stands for `--claims` in the dry run: three dot-separated parts, as a JWT has. */
const CLAIMS_TOKEN = 'explain.assumed.claims';

/**
 * Explains one request by running it through a gateway built from the same
 * config, in a dry run: every step and stage runs as it would for a real
 * request (path, headers, query, body, routing, authentication,
 * authorization, rate limits from a fresh budget, validation, inspection),
 * and where the upstream would be called the gateway answers itself.
 * Nothing is decided here: the stages record their rules on the request,
 * and the gateway's answer is the decision.
 */
export async function explainRequest(
  config: GatewayConfig,
  deps: ExplainDeps,
  input: ExplainInput,
): Promise<Explanation> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(input.headers)) if (value !== undefined) headers[name] = value;
  let auth = deps.auth;
  if (input.claims !== undefined) {
    const assumed = principalFromClaims(config, input.claims);
    const jwt = deps.auth.jwt;
    auth = {
      ...deps.auth,
      jwt: {
        verify: async (token, before) => {
          if (token === CLAIMS_TOKEN) return assumed;
          if (jwt === undefined) throw new AuthFailure('no JWT providers configured');
          return jwt.verify(token, before);
        },
      },
    };
    headers.authorization = `Bearer ${CLAIMS_TOKEN}`;
  } else if (input.token !== undefined) {
    headers.authorization = `Bearer ${input.token}`;
  } else if (input.key !== undefined && config.auth.apiKeys) {
    headers[config.auth.apiKeys.header] = input.key;
  }
  const body = input.body === undefined ? undefined : Buffer.from(input.body);
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  const logger = createLogger({ level: 'silent' });
  // Limits start from a fresh in-memory budget: explaining a request never spends a real one.
  const rateLimit = await buildRateLimit(
    { ...config.rateLimit, backend: 'memory' },
    { logger, store: undefined },
  );
  const seen: { ctx?: RouteContext; error?: GatewayError } = {};
  const gateway = new Gateway(config, {
    logger,
    store: deps.store,
    auth,
    rateLimit,
    dryRun: {
      clientIp: input.clientIp,
      forwarded: (ctx) => {
        seen.ctx = ctx;
      },
      refused: (_id, err, ctx) => {
        seen.error = err;
        seen.ctx = ctx;
      },
    },
  });
  const server = createServer(gateway.handle);
  try {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const reply = await send(port, input.method, input.target, headers, body);
    return explanation(input, reply, seen);
  } finally {
    server.closeAllConnections();
    server.close();
    await gateway.close(0);
    await rateLimit.close();
  }
}

type Reply = { status: number; code: string | undefined } | { clientError: string };

/** One request over a real loopback connection, as a client would send it. */
function send(
  port: number,
  method: string,
  target: string,
  headers: Record<string, string | string[]>,
  body: Buffer | undefined,
): Promise<Reply> {
  return new Promise((resolve) => {
    let req: ReturnType<typeof request>;
    try {
      req = request({ host: '127.0.0.1', port, method, path: target, headers, agent: false });
    } catch (err) {
      // The HTTP client itself refuses the target (a space, a control character): so would any client.
      resolve({ clientError: (err as Error).message });
      return;
    }
    req.on('error', (err) => resolve({ clientError: err.message }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let code: string | undefined;
        if (String(res.headers['content-type']).startsWith('application/problem+json')) {
          code = (JSON.parse(Buffer.concat(chunks).toString()) as { code?: string }).code;
        }
        resolve({ status: res.statusCode ?? 0, code });
      });
    });
    req.end(body);
  });
}

function explanation(
  input: ExplainInput,
  reply: Reply,
  seen: { ctx?: RouteContext; error?: GatewayError },
): Explanation {
  const out: Explanation = {
    request: `${input.method} ${input.target}`,
    authentication: 'not reached',
    rules: [],
    decision: 'deny',
    status: 0,
  };
  if ('clientError' in reply) {
    const detail = reply.clientError;
    return { ...out, status: 400, code: 'request.bad_path', rules: [{ rule: 'path', pass: false, detail }] };
  }
  const { ctx, error } = seen;
  // The gate's stand-in routes (unrouted requests, the gateway's endpoints) have no index.
  const route = ctx !== undefined && ctx.route.index >= 0 ? ctx.route : undefined;
  if (ctx !== undefined && route !== undefined) {
    out.canonicalPath = ctx.path;
    out.route = `${route.name} (routes[${route.index}])`;
    out.upstream = route.upstream;
    out.rules.push(...(ctx.trail ?? []));
    const p = ctx.principal;
    if (route.auth === 'none') out.authentication = 'not needed';
    else if (p !== undefined) {
      out.principal = {
        kind: p.kind,
        id: p.id,
        scopes: p.scopes,
        roles: p.roles,
        ...(p.tenant === undefined ? {} : { tenant: p.tenant }),
      };
      out.authentication =
        input.claims !== undefined ? 'assumed from --claims (no signature checked)' : `${p.kind} verified`;
    } else if (error?.code.startsWith('auth.')) {
      out.authentication = `failed: ${error.internal ?? error.code}`;
    }
  }
  if (error !== undefined && !(ctx?.stage === 'authorize' && error.code === 'authz.forbidden')) {
    // A refusal outside the policy trail: say which step refused and why.
    const detail = error.internal ?? error.code;
    out.rules.push({ rule: ctx?.stage ?? 'request', pass: false, detail: `${error.code}: ${detail}` });
  }
  const allowed = error === undefined && reply.status === 200;
  return allowed
    ? { ...out, decision: 'allow', status: 200 }
    : { ...out, decision: 'deny', status: reply.status, ...(reply.code ? { code: reply.code } : {}) };
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
