/**
 * The admin REST API, served under `/admin/` by the admin listener.
 *
 * - **Authentication:** `Authorization: Bearer pcla_…`, an admin token made
 *   with `portcullis admin tokens create` (or `POST /admin/tokens`). Failed
 *   attempts count per client IP in a brute-force guard of the same kind as
 *   the public side's (`auth.brute_force`); a locked-out IP gets 429.
 *   Optionally (`admin.auth`), a JWT from one of the gateway's providers
 *   whose role claim maps to a role, or a verified client certificate
 *   mapped to a role (see `../principal.ts`).
 * - **Roles:** `viewer` reads; `operator` also manages API keys, blocks and
 *   token revocations; `admin` also manages admin tokens and reloads.
 * - **Protections:** bodies are JSON objects of at most `admin.api.max_body`,
 *   strictly parsed (415, 413, 400); every error is problem+json; no answer
 *   ever holds a secret except the one a create or rotate makes, once.
 * - **Audit:** every state-changing act is an admin event in the audit
 *   chain, with the admin's id, name and role (token, JWT or certificate).
 *
 * The operations are listed once in {@link OPERATIONS}; `openapi.ts`
 * describes them, and a test keeps the two in step.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Blocklist } from '../../alerts/blocklist.js';
import {
  BLOCK_KINDS,
  BlockError,
  type BlockKind,
  blockJson,
  createAlertStore,
  createBlockStore,
} from '../../alerts/store.js';
import type { AuditLog } from '../../audit/audit-log.js';
import { isSensitiveName } from '../../audit/redact.js';
import { resolveAuditSigner } from '../../audit/signing.js';
import { verifyAuditLog } from '../../audit/verify.js';
import { createBruteForceGuard } from '../../auth/brute-force.js';
import { buildAuth } from '../../auth/build.js';
import type { AuthServices } from '../../auth/services.js';
import { AuthFailure, AuthUnavailable } from '../../auth/types.js';
import { explainRequest } from '../../authz/explain.js';
import { requestClusterReload } from '../../cluster.js';
import { loadConfig } from '../../config/load.js';
import type { GatewayConfig, RouteSettings } from '../../config/types.js';
import { GatewayError } from '../../errors.js';
import type { AdminEvent, EventBus } from '../../events/types.js';
import { ClientRepository, type OAuthClient } from '../../issuer/clients.js';
import { IssuerError } from '../../issuer/errors.js';
import { resolvePepper } from '../../keys/authenticator.js';
import { ApiKeyError, apiKeyJson, createApiKeyStore } from '../../keys/store.js';
import { createLogger, type Logger } from '../../log.js';
import { listRevocations, recordRevocation, signalBlockChange } from '../../revocation/feed.js';
import type { Store } from '../../store/types.js';
import { certificatePrincipalId, verifiedClientCertificate } from '../../tls/client-auth.js';
import { LruCache } from '../../util/lru.js';
import { parseDuration } from '../../util/units.js';
import { mountConsole } from '../console/api.js';
import type { ConsoleSession } from '../console/sessions.js';
import {
  type AdminPrincipal,
  actorOf,
  certificateAdmin,
  claimValues,
  highestRole,
  jwtAdmin,
} from '../principal.js';
import type { AdminServer } from '../server.js';
import { tokenJson } from '../tokens/cli.js';
import {
  type AdminRole,
  AdminTokenError,
  createAdminTokenStore,
  isAdminRole,
  roleAllows,
} from '../tokens/store.js';
import {
  ApiProblem,
  hasBody,
  onlyMembers,
  optionalString,
  problems,
  readJsonObject,
  requiredString,
  sendApiProblem,
  sendJson,
} from './http.js';
import { adminOpenApiDocument } from './openapi.js';

/** What the admin API works on: the running gateway's parts. */
export interface AdminApiDeps {
  admin: AdminServer;
  store: Store;
  /** The configuration in force (it changes on reload). */
  config: () => GatewayConfig;
  blocklist: Blocklist;
  events: EventBus;
  audit: AuditLog;
  authServices: () => AuthServices;
  /** Loads the configuration again from its source and swaps it in (SIGHUP's effect). */
  reload: () => Promise<void>;
  logger: Logger;
}

/** The caller of an operation, once authenticated. */
interface Caller {
  /** The admin: an admin token's record, or a JWT or certificate admin (`admin.auth`). */
  token: AdminPrincipal;
  ip: string;
  /** The console session the call came with (cookie), when not with a bearer token. */
  session?: ConsoleSession | undefined;
}

interface Context {
  caller: Caller;
  params: Record<string, string>;
  query: URLSearchParams;
  body: () => Promise<Record<string, unknown>>;
  req: IncomingMessage;
}

type Handler = (ctx: Context) => Promise<{
  status: number;
  body: unknown;
  /** Extra response headers (the console's session cookie). */
  headers?: Record<string, string>;
  /** Takes the response over instead of a JSON body (the live event stream). */
  stream?: (req: IncomingMessage, res: ServerResponse) => void;
}>;

/** One operation of the API: what `openapi.ts` must describe. */
export interface AdminOperation {
  method: 'GET' | 'POST' | 'DELETE';
  /** OpenAPI path template, e.g. `/admin/keys/{id}/revoke`. */
  path: string;
  operationId: string;
  role: AdminRole;
  /** The query parameters it accepts; any other, or one given twice, is refused (400). */
  query: readonly string[];
}

const op = (
  method: AdminOperation['method'],
  path: string,
  operationId: string,
  role: AdminRole,
  query: readonly string[] = [],
): AdminOperation => ({ method, path, operationId, role, query });

/** Every operation, with the least role that may call it. */
export const OPERATIONS: readonly AdminOperation[] = [
  op('GET', '/admin/openapi.json', 'getOpenApi', 'viewer'),
  op('GET', '/admin/whoami', 'whoami', 'viewer'),
  op('GET', '/admin/status', 'getStatus', 'viewer'),
  op('GET', '/admin/routes', 'listRoutes', 'viewer'),
  op('POST', '/admin/explain', 'explain', 'viewer'),
  op('GET', '/admin/keys', 'listKeys', 'viewer'),
  op('POST', '/admin/keys', 'createKey', 'operator'),
  op('POST', '/admin/keys/{id}/revoke', 'revokeKey', 'operator'),
  op('POST', '/admin/keys/{id}/rotate', 'rotateKey', 'operator'),
  op('GET', '/admin/clients', 'listClients', 'viewer'),
  op('POST', '/admin/clients', 'createClient', 'operator'),
  op('POST', '/admin/clients/{id}/revoke', 'revokeClient', 'operator'),
  op('GET', '/admin/blocks', 'listBlocks', 'viewer', ['all', 'limit']),
  op('POST', '/admin/blocks', 'addBlock', 'operator'),
  op('DELETE', '/admin/blocks/{id}', 'liftBlock', 'operator'),
  op('GET', '/admin/revocations', 'listRevocations', 'viewer'),
  op('POST', '/admin/revocations', 'revokeTokens', 'operator'),
  op('GET', '/admin/alerts', 'listAlerts', 'viewer', ['since', 'limit']),
  op('GET', '/admin/audit/events', 'searchAudit', 'viewer', [
    'principal',
    'decision',
    'route',
    'ip',
    'type',
    'action',
    'since',
    'limit',
  ]),
  op('GET', '/admin/audit/verify', 'verifyAudit', 'viewer'),
  op('POST', '/admin/reload', 'reload', 'admin'),
  op('GET', '/admin/tokens', 'listAdminTokens', 'admin'),
  op('POST', '/admin/tokens', 'createAdminToken', 'admin'),
  op('DELETE', '/admin/tokens/{id}', 'revokeAdminToken', 'admin'),
  // The web console's own: its session, the overview's time series and the live stream.
  op('POST', '/admin/session', 'login', 'viewer'),
  op('GET', '/admin/session', 'getSession', 'viewer'),
  op('DELETE', '/admin/session', 'logout', 'viewer'),
  op('GET', '/admin/metrics/timeseries', 'getTimeSeries', 'viewer', ['minutes']),
  op('GET', '/admin/events/stream', 'streamEvents', 'viewer', [
    'type',
    'decision',
    'route',
    'principal',
    'ip',
  ]),
];

/** The operations that read a JSON body; every other one refuses a body. */
export const BODY_OPERATIONS: ReadonlySet<string> = new Set([
  'explain',
  'createKey',
  'rotateKey',
  'createClient',
  'addBlock',
  'revokeTokens',
  'createAdminToken',
]);

const KEY_SIGNAL_TTL_MS = 60 * 60_000;
const MAX_DURATION_MS = 36_500 * 86_400_000;
const MAX_LIST = 1000;

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

function clientJson(c: OAuthClient) {
  return {
    id: c.id,
    name: c.name,
    scopes: c.scopes,
    tenant: c.tenant ?? null,
    createdAt: c.createdAt,
    revokedAt: c.revokedAt ?? null,
    status: c.revokedAt === undefined ? 'active' : 'revoked',
  };
}

/** The body's `scopes`: 1 to 100 strings, or a 400. */
function nameList(body: Record<string, unknown>, member: 'scopes' | 'routes'): string[] {
  const list = body[member];
  if (
    !Array.isArray(list) ||
    list.length === 0 ||
    list.length > 100 ||
    !list.every((s) => typeof s === 'string')
  ) {
    throw problems.invalid(`${member} must be a list of 1 to 100 strings`);
  }
  return list;
}

const scopeList = (body: Record<string, unknown>) => nameList(body, 'scopes');

function duration(body: Record<string, unknown>, name: string, allowZero = false): number | undefined {
  const text = optionalString(body, name, 20);
  if (text === undefined) return undefined;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch {
    throw problems.invalid(`${name} must be a duration such as 30s, 15m, 24h or 90d`);
  }
  if ((!allowZero && ms <= 0) || ms > MAX_DURATION_MS) {
    throw problems.invalid(
      `${name} must be ${allowZero ? 'zero or more' : 'more than zero'} and at most 36500d`,
    );
  }
  return ms;
}

function queryDuration(query: URLSearchParams, name: string, dflt: number): number {
  const text = query.get(name);
  if (text === null) return dflt;
  try {
    const ms = parseDuration(text);
    if (ms <= MAX_DURATION_MS) return ms;
  } catch {}
  throw problems.invalid(`${name} must be a duration such as 1h or 7d`);
}

function queryLimit(query: URLSearchParams, dflt = 100): number {
  const text = query.get('limit');
  if (text === null) return dflt;
  if (!/^\d{1,4}$/.test(text) || Number(text) < 1 || Number(text) > MAX_LIST) {
    throw problems.invalid(`limit must be 1 to ${MAX_LIST}`);
  }
  return Number(text);
}

/**
 * A JSON-safe copy of configuration values with secrets removed: members
 * whose name says secret (`secret`, `token`, `password`, `pepper`, `key`…)
 * are replaced, functions and cycles dropped, depth bounded.
 */
export function redactSettings(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value !== 'object' || depth > 8) return undefined;
  if (seen.has(value)) return undefined;
  seen.add(value);
  if (value instanceof RegExp) return String(value);
  if (value instanceof Set) return [...value].map((v) => redactSettings(v, depth + 1, seen));
  if (Array.isArray(value)) return value.map((v) => redactSettings(v, depth + 1, seen));
  const out: Record<string, unknown> = {};
  const entries = value instanceof Map ? [...value] : Object.entries(value);
  for (const [k, v] of entries) {
    const key = String(k);
    if (typeof v === 'function') continue;
    if (isSensitiveName(key) || /pepper|private|credential/i.test(key)) {
      if (v !== undefined) out[key] = '[redacted]';
      continue;
    }
    const copy = redactSettings(v, depth + 1, seen);
    if (copy !== undefined) out[key] = copy;
  }
  return out;
}

function routeJson(r: RouteSettings, config: GatewayConfig) {
  const upstream = config.upstreams[r.upstream];
  return {
    name: r.name,
    path: r.template,
    methods: r.methods,
    upstream: { name: r.upstream, origin: upstream?.origin ?? null, basePath: upstream?.basePath ?? '' },
    auth: r.auth,
    apiKeyInQuery: r.apiKeyInQuery,
    providers: r.providers ?? null,
    authorize: redactSettings(r.authorize) ?? null,
    rateLimits: redactSettings(r.rateLimits) ?? null,
    bodyLimit: Number.isFinite(r.bodyLimit) ? r.bodyLimit : null,
    cacheControl: r.cacheControl,
    cors: redactSettings(r.cors) ?? null,
    // The API description's operation of each method: its id and where it is described.
    operations: Object.fromEntries(
      Object.entries(r.operations).map(([m, o]) => [m, { id: o.id, source: o.source }]),
    ),
    validation: redactSettings(r.validation) ?? null,
    inspection: redactSettings(r.inspection) ?? null,
    responses: redactSettings(r.responses) ?? null,
  };
}

/** A short, stable fingerprint of the config file in force (its bytes), or undefined when unreadable. */
function configVersion(file: string): string | undefined {
  try {
    return `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16)}`;
  } catch {
    return undefined;
  }
}

function match(template: string, path: string): Record<string, string> | undefined {
  const a = template.split('/');
  const b = path.split('/');
  if (a.length !== b.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    const t = a[i]!;
    if (t.startsWith('{') && t.endsWith('}')) {
      if (b[i] === '' || !/^[A-Za-z0-9_.:-]{1,200}$/.test(b[i]!)) return undefined;
      params[t.slice(1, -1)] = b[i]!;
    } else if (t !== b[i]) return undefined;
  }
  return params;
}

/** A compact JWS: three base64url parts (an admin token, `pcla_…`, has no dots). */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Refuses (403) a request a browser marks as sent from another site: with a
 * client certificate as the only credential, a cross-site form could
 * otherwise act as the admin. Clients that are not browsers send neither header.
 */
function refuseCrossSite(req: IncomingMessage): void {
  const site = req.headers['sec-fetch-site'];
  const origin = req.headers.origin;
  let foreignOrigin = false;
  if (origin !== undefined) {
    try {
      foreignOrigin = new URL(origin).host !== req.headers.host;
    } catch {
      foreignOrigin = true;
    }
  }
  if (site === 'cross-site' || site === 'same-site' || foreignOrigin) {
    throw new ApiProblem(
      403,
      'csrf.cross_site',
      'A state-changing call authenticated by a client certificate must not come from another site.',
    );
  }
}

/** Builds the API and serves it on the admin listener. */
export function mountAdminApi(deps: AdminApiDeps): void {
  const { admin, store, events, logger } = deps;
  const initial = deps.config();
  const dataDir = initial.store.dataDir;
  const pepper = () => resolvePepper(deps.config().auth.apiKeys, dataDir);
  const tokens = createAdminTokenStore(store, { pepper });
  const keys = createApiKeyStore(store, { pepper, logger });
  const blocks = createBlockStore(store);
  const alerts = createAlertStore(store);
  const clients = () => new ClientRepository(store, { tokenTtlMs: deps.config().auth.issuer?.tokenTtlMs });
  // Failed admin credentials count per client IP, as on the public side; a separate guard, same settings.
  const guard = createBruteForceGuard(initial.auth.bruteForce, {
    ipv6Prefix: initial.listen.ipv6Prefix,
    onLockout: (key, until) =>
      logger.warn({ key, until: new Date(until).toISOString() }, 'admin API brute-force lockout'),
  });
  let version = configVersion(initial.file);
  let loadedAt = Date.now();
  events.subscribe({
    emit(event) {
      if (event.type === 'admin' && event.action === 'config.reloaded') {
        version = configVersion(deps.config().file);
        loadedAt = Date.now();
      }
    },
  });

  /** Records an act in the audit chain with the caller's identity. */
  const audit = (
    caller: Caller,
    action: string,
    target: string | undefined,
    detail: Record<string, string | number | boolean> = {},
  ) => {
    const event: AdminEvent = {
      type: 'admin',
      time: new Date().toISOString(),
      action,
      actor: actorOf(caller.token),
      target,
      detail: {
        ...detail,
        admin_id: caller.token.id,
        admin_name: caller.token.name,
        admin_role: caller.token.role,
        client_ip: caller.ip,
        // "session" reads as a secret's name to the audit redactor: the console is named by `via`.
        ...(caller.session === undefined ? {} : { via: 'console' }),
      },
    };
    events.emit(event);
  };

  /**
   * Refusals an auditor looks for that anyone can repeat at will, audited
   * at most once a minute per actor and action, so that one token (or one
   * forged page in an admin's browser) sent in a loop cannot flood the
   * chain:
   * - `admin.no_role`: a verified identity (a JWT from an admin provider, a
   *   client certificate the admin CA signed) that maps to no admin role;
   * - `admin.csrf_refused`: a state-changing call on an admin's console
   *   session without its CSRF token, or with a client certificate from
   *   another site (a cross-site request forgery on its way).
   */
  const refusalsAudited = new LruCache<string, true>(1_000);
  const auditRefusal = (
    action: 'admin.no_role' | 'admin.csrf_refused',
    actor: string,
    ip: string,
    detail: Record<string, string>,
  ) => {
    const key = `${action} ${actor}`;
    if (refusalsAudited.get(key) !== undefined) return;
    refusalsAudited.set(key, true, Date.now() + 60_000);
    events.emit({
      type: 'admin',
      time: new Date().toISOString(),
      action,
      actor,
      target: undefined,
      detail: { ...detail, client_ip: ip },
    });
  };

  // The web console: its files at `/`, its sessions, time series and live stream.
  /** Whether a JWT or certificate admin may go on (a console session): still configured, not killed. */
  const stillActive = async (p: AdminPrincipal): Promise<boolean> => {
    const auth = deps.config().admin.auth;
    if (p.kind === 'jwt') {
      const provider = p.source?.provider?.replace(/^jwt:/, '');
      return (
        p.source !== undefined &&
        provider !== undefined &&
        auth?.jwt?.providers.includes(provider) === true &&
        !(deps.authServices().revocations?.isRevoked(p.source) ?? false)
      );
    }
    if (p.kind === 'mtls') {
      const identity = p.id.slice('mtls:'.length);
      return (
        auth?.mtls !== undefined &&
        Object.hasOwn(auth.mtls.roles, identity) &&
        auth.mtls.roles[identity] === p.role
      );
    }
    return true;
  };
  const webConsole = mountConsole({ admin, events, tokens, logger, audit, stillActive });

  const refreshBlocks = async (caller: Caller, target: string) => {
    await deps.blocklist.refresh();
    await signalBlockChange(store, target, actorOf(caller.token)).catch((err: unknown) =>
      logger.warn({ err }, 'could not tell other instances about a block'),
    );
  };

  const handlers: Record<string, Handler> = {
    getOpenApi: async () => ({ status: 200, body: adminOpenApiDocument() }),

    whoami: async ({ caller }) => ({
      status: 200,
      body: {
        id: caller.token.id,
        name: caller.token.name,
        role: caller.token.role,
        kind: caller.token.kind ?? 'token',
        ...(typeof caller.token.expiresAt === 'number'
          ? { expires_at: new Date(caller.token.expiresAt).toISOString() }
          : {}),
      },
    }),

    async getStatus() {
      const results = await admin.evaluate();
      const ready = ![...results.values()].some((r) => r.state === 'down');
      const config = deps.config();
      return {
        status: 200,
        body: {
          ready,
          checks: Object.fromEntries(
            [...results].map(([name, r]) => [name, { state: r.state, note: r.note }]),
          ),
          config: {
            file: config.file,
            version: version ?? null,
            loadedAt: iso(loadedAt),
            mode: config.mode,
            routes: config.routes.length,
          },
        },
      };
    },

    async listRoutes() {
      const config = deps.config();
      return { status: 200, body: { routes: config.routes.map((r) => routeJson(r, config)) } };
    },

    async explain({ body }) {
      const b = await body();
      onlyMembers(b, ['method', 'target', 'headers', 'token', 'key', 'claims', 'body', 'ip']);
      const method = requiredString(b, 'method', 20);
      if (!/^[A-Z]+$/.test(method)) throw problems.invalid('method must be an upper-case HTTP method');
      const target = requiredString(b, 'target', 8192);
      if (!target.startsWith('/')) throw problems.invalid('target must be a path, with an optional query');
      const headers: Record<string, string> = {};
      if (b.headers !== undefined) {
        if (typeof b.headers !== 'object' || b.headers === null || Array.isArray(b.headers)) {
          throw problems.invalid('headers must be an object of strings');
        }
        for (const [name, value] of Object.entries(b.headers)) {
          if (typeof value !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/.test(name)) {
            throw problems.invalid('headers must be an object of strings, keyed by header names');
          }
          headers[name.toLowerCase()] = value;
        }
      }
      const given = ['token', 'key', 'claims'].filter((k) => b[k] !== undefined);
      if (given.length > 1) throw problems.invalid('give at most one of token, key and claims');
      if (
        b.claims !== undefined &&
        (typeof b.claims !== 'object' || b.claims === null || Array.isArray(b.claims))
      ) {
        throw problems.invalid('claims must be an object');
      }
      const token = optionalString(b, 'token', 16_384);
      const key = optionalString(b, 'key', 200);
      const requestBody = b.body === undefined ? undefined : optionalString(b, 'body', 60_000);
      const ip = optionalString(b, 'ip', 45) ?? '127.0.0.1';
      if (isIP(ip) === 0) throw problems.invalid('ip must be an IP address');
      const config = deps.config();
      // A dry run with its own authentication: explaining never counts towards anyone's lockout.
      const auth = await buildAuth(config, {
        logger: createLogger({ level: 'silent' }),
        store,
        guard: createBruteForceGuard({ ...config.auth.bruteForce, enabled: false }),
      });
      try {
        const explanation = await explainRequest(
          config,
          { store, auth: auth.services },
          {
            method,
            target,
            headers,
            clientIp: ip,
            ...(token === undefined ? {} : { token }),
            ...(key === undefined ? {} : { key }),
            ...(b.claims === undefined ? {} : { claims: b.claims as Record<string, unknown> }),
            ...(requestBody === undefined ? {} : { body: requestBody }),
          },
        );
        return { status: 200, body: explanation };
      } finally {
        auth.close();
      }
    },

    async listKeys() {
      const now = Date.now();
      return { status: 200, body: { keys: (await keys.list()).map((r) => apiKeyJson(r, now)) } };
    },

    async createKey({ caller, body }) {
      const b = await body();
      onlyMembers(b, ['name', 'scopes', 'tenant', 'expires_in', 'routes']);
      const name = requiredString(b, 'name', 200);
      const scopes = scopeList(b);
      const tenant = optionalString(b, 'tenant', 200);
      const lifetime = duration(b, 'expires_in');
      const routes = b.routes === undefined ? undefined : nameList(b, 'routes');
      // A misspelt route name would make a key that works nowhere: refuse it.
      const unknownRoute = routes?.find((r) => !deps.config().routes.some((route) => route.name === r));
      if (unknownRoute !== undefined) {
        throw problems.invalid(`routes: no route is named ${JSON.stringify(unknownRoute.slice(0, 200))}`);
      }
      const { record, key } = await keys.create({
        name,
        scopes,
        tenant,
        expiresAt: lifetime === undefined ? undefined : Date.now() + lifetime,
        routes,
      });
      audit(caller, 'key.created', record.id, { name: record.name, scopes: record.scopes.join(' ') });
      return { status: 201, body: { key, record: apiKeyJson(record, Date.now()) } };
    },

    async revokeKey({ caller, params }) {
      const { record, alreadyRevoked } = await keys.revoke(params.id!);
      if (!alreadyRevoked) {
        deps.authServices().apiKeys?.invalidate?.(record.id);
        await recordRevocation(store, {
          kind: 'key',
          subject: record.id,
          expiresAt: Date.now() + KEY_SIGNAL_TTL_MS,
          actor: actorOf(caller.token),
          reason: 'key revoked',
        });
        audit(caller, 'key.revoked', record.id);
      }
      return { status: 200, body: { alreadyRevoked, record: apiKeyJson(record, Date.now()) } };
    },

    async rotateKey({ caller, params, body }) {
      const b = await body();
      onlyMembers(b, ['overlap', 'expires_in']);
      const overlapMs = duration(b, 'overlap', true) ?? 24 * 60 * 60_000;
      const lifetime = duration(b, 'expires_in');
      const { previous, next, key } = await keys.rotate(
        params.id!,
        lifetime === undefined ? { overlapMs } : { overlapMs, expiresAt: Date.now() + lifetime },
      );
      deps.authServices().apiKeys?.invalidate?.(previous.id);
      await recordRevocation(store, {
        kind: 'key',
        subject: previous.id,
        expiresAt: Date.now() + KEY_SIGNAL_TTL_MS,
        actor: actorOf(caller.token),
        reason: 'key rotated',
      });
      audit(caller, 'key.rotated', previous.id, { successor: next.id });
      const now = Date.now();
      return {
        status: 201,
        body: { key, record: apiKeyJson(next, now), previous: apiKeyJson(previous, now) },
      };
    },

    async listClients() {
      return { status: 200, body: { clients: (await clients().list()).map(clientJson) } };
    },

    async createClient({ caller, body }) {
      const b = await body();
      onlyMembers(b, ['name', 'scopes', 'tenant']);
      const name = requiredString(b, 'name', 100);
      const scopes = scopeList(b);
      const tenant = optionalString(b, 'tenant', 128);
      const { client, secret } = await clients().create({ name, scopes, tenant });
      audit(caller, 'client.created', client.id, { name: client.name, scopes: client.scopes.join(' ') });
      const issuer = deps.config().auth.issuer;
      return {
        status: 201,
        body: {
          client_secret: secret,
          client: clientJson(client),
          token_endpoint: issuer === undefined ? null : `${issuer.issuer}/oauth2/token`,
        },
      };
    },

    async revokeClient({ caller, params }) {
      const outcome = await clients().revoke(params.id!, actorOf(caller.token));
      if (outcome === 'not_found') throw problems.notFound();
      if (outcome === 'revoked') audit(caller, 'client.revoked', params.id!);
      return { status: 200, body: { alreadyRevoked: outcome === 'already_revoked', id: params.id } };
    },

    async listBlocks({ query }) {
      const all = query.get('all');
      if (all !== null && all !== 'true' && all !== 'false')
        throw problems.invalid('all must be true or false');
      const now = Date.now();
      const rows = await blocks.list({ all: all === 'true', limit: queryLimit(query) });
      return { status: 200, body: { blocks: rows.map((r) => blockJson(r, now)) } };
    },

    async addBlock({ caller, body }) {
      const b = await body();
      onlyMembers(b, ['kind', 'subject', 'duration', 'status', 'reason']);
      const kind = b.kind;
      if (typeof kind !== 'string' || !(BLOCK_KINDS as readonly string[]).includes(kind)) {
        throw problems.invalid(`kind must be one of ${BLOCK_KINDS.join(', ')}`);
      }
      const subject = requiredString(b, 'subject', 200);
      const durationMs = duration(b, 'duration');
      if (durationMs === undefined) throw problems.invalid('duration is required, e.g. "1h"');
      const status = b.status ?? 429;
      if (status !== 429 && status !== 403) throw problems.invalid('status must be 429 or 403');
      const reason = optionalString(b, 'reason', 500) ?? 'added with the admin API';
      const record = await blocks.add({
        kind: kind as BlockKind,
        subject,
        status,
        durationMs,
        reason,
        createdBy: actorOf(caller.token),
      });
      const target = `${record.kind}:${record.subject}`;
      audit(caller, 'block.added', target, {
        block: record.id,
        status: record.status,
        expires_at: new Date(record.expiresAt).toISOString(),
        reason: record.reason,
      });
      await refreshBlocks(caller, target);
      return { status: 201, body: { block: blockJson(record, Date.now()) } };
    },

    async liftBlock({ caller, params }) {
      const { record, wasActive } = await blocks.lift(params.id!, actorOf(caller.token));
      if (!wasActive)
        throw problems.conflict('blocks.not_active', 'the block is not active; nothing to lift');
      const target = `${record.kind}:${record.subject}`;
      audit(caller, 'block.lifted', target, { block: record.id });
      await refreshBlocks(caller, target);
      return { status: 200, body: { block: blockJson(record, Date.now()) } };
    },

    async listRevocations() {
      const rows = (await listRevocations(store)).filter((r) => r.kind !== 'key' && r.kind !== 'block');
      return {
        status: 200,
        body: {
          revocations: rows.map((r) => ({
            kind: r.kind,
            subject: r.subject,
            issuer: r.issuer || null,
            revokedAt: iso(r.revokedAt),
            expiresAt: iso(r.expiresAt),
            actor: r.actor,
            reason: r.reason || null,
          })),
        },
      };
    },

    async revokeTokens({ caller, body }) {
      const b = await body();
      onlyMembers(b, ['kind', 'subject', 'issuer', 'issued_before', 'expires_at', 'reason']);
      const kind = b.kind;
      if (kind !== 'jti' && kind !== 'sub' && kind !== 'client' && kind !== 'before') {
        throw problems.invalid('kind must be jti, sub, client or before');
      }
      const issuer = optionalString(b, 'issuer', 500) ?? '';
      const reason = optionalString(b, 'reason', 500);
      const now = Date.now();
      const retainMs = deps.config().auth.revocations.retainMs;
      let subject = '';
      let revokedAt = now;
      let expiresAt = now + retainMs;
      if (kind === 'before') {
        if (b.subject !== undefined) throw problems.invalid('kind before takes issued_before, not subject');
        const text = requiredString(b, 'issued_before', 40);
        const at = text === 'now' ? now : Date.parse(text);
        if (!Number.isFinite(at) || at > now) {
          throw problems.invalid('issued_before must be an ISO 8601 time, not in the future, or "now"');
        }
        revokedAt = at;
        expiresAt = at + retainMs;
      } else {
        if (b.issued_before !== undefined) throw problems.invalid('issued_before goes with kind before');
        subject = requiredString(b, 'subject', 500);
        if (b.expires_at !== undefined) {
          if (kind !== 'jti') throw problems.invalid('expires_at goes with kind jti (the token exp)');
          const at = Date.parse(requiredString(b, 'expires_at', 40));
          if (!Number.isFinite(at)) throw problems.invalid('expires_at must be an ISO 8601 time');
          expiresAt = at;
        }
      }
      await recordRevocation(store, {
        kind,
        subject,
        issuer,
        revokedAt,
        expiresAt,
        actor: actorOf(caller.token),
        reason,
      });
      audit(caller, 'token.revoked', `${kind}:${subject}`, {
        kind,
        issuer: issuer || '(any)',
        revoked_at: new Date(revokedAt).toISOString(),
        expires_at: new Date(expiresAt).toISOString(),
        ...(reason ? { reason } : {}),
      });
      return {
        status: 201,
        body: {
          revocation: {
            kind,
            subject,
            issuer: issuer || null,
            revokedAt: iso(revokedAt),
            expiresAt: iso(expiresAt),
            reason: reason ?? null,
          },
        },
      };
    },

    async listAlerts({ query }) {
      const since = Date.now() - queryDuration(query, 'since', 24 * 60 * 60_000);
      const rows = await alerts.list({ since, limit: queryLimit(query) });
      return {
        status: 200,
        body: {
          alerts: rows.map((a) => ({
            id: a.id,
            detector: a.detector,
            severity: a.severity,
            subject: a.subject,
            summary: a.summary,
            evidence: redactSettings(a.evidence),
            firstSeen: iso(a.firstSeen),
            lastSeen: iso(a.lastSeen),
            count: a.count,
            delivery: a.delivery,
          })),
        },
      };
    },

    async searchAudit({ query }) {
      const filter: Record<string, string> = {};
      for (const name of ['principal', 'decision', 'route', 'ip', 'type', 'action'] as const) {
        const v = query.get(name);
        if (v !== null) {
          if (v.length === 0 || v.length > 200) throw problems.invalid(`${name} must be 1 to 200 characters`);
          filter[name] = v;
        }
      }
      if (query.has('since')) {
        filter.since = new Date(Date.now() - queryDuration(query, 'since', 0)).toISOString();
      }
      await deps.audit.flush().catch(() => {});
      const rows = await deps.audit.repository.search(filter, queryLimit(query));
      return { status: 200, body: { events: rows } };
    },

    async verifyAudit() {
      const config = deps.config();
      await deps.audit.flush().catch(() => {});
      const signer = resolveAuditSigner(config.audit.signingKey, dataDir);
      const result = await verifyAuditLog(deps.audit.repository, { publicKeys: [signer.publicKey] });
      return { status: 200, body: { ...result, anchor: result.anchor ?? null } };
    },

    async reload({ caller }) {
      // In cluster mode the primary reloads every worker, as for SIGHUP; the answer cannot wait for them.
      if (requestClusterReload()) {
        audit(caller, 'config.reload_requested', deps.config().file, { cluster: true });
        return { status: 202, body: { reloaded: false, requested: true } };
      }
      try {
        await deps.reload();
      } catch (err) {
        audit(caller, 'config.reload_failed', deps.config().file);
        logger.error(
          { err },
          'reload through the admin API failed; the previous configuration keeps serving',
        );
        throw new ApiProblem(
          409,
          'config.reload_failed',
          'The configuration could not be reloaded; the previous one keeps serving.',
          'see the gateway log for the reasons',
        );
      }
      audit(caller, 'config.reload_requested', deps.config().file);
      return {
        status: 200,
        body: {
          reloaded: true,
          requested: true,
          version: version ?? null,
          routes: deps.config().routes.length,
        },
      };
    },

    async listAdminTokens() {
      return { status: 200, body: { tokens: (await tokens.list()).map(tokenJson) } };
    },

    async createAdminToken({ caller, body }) {
      const b = await body();
      onlyMembers(b, ['name', 'role']);
      if (!isAdminRole(b.role)) throw problems.invalid('role must be viewer, operator or admin');
      const name = optionalString(b, 'name', 200) ?? `${b.role} token`;
      const { record, token } = await tokens.create({ name, role: b.role, createdBy: caller.token.id });
      audit(caller, 'admin_token.created', record.id, { name: record.name, role: record.role });
      return { status: 201, body: { token, record: tokenJson(record) } };
    },

    async revokeAdminToken({ caller, params }) {
      const { record, alreadyRevoked } = await tokens.revoke(params.id!);
      webConsole.tokenRevoked(record.id);
      if (!alreadyRevoked)
        audit(caller, 'admin_token.revoked', record.id, { name: record.name, role: record.role });
      return { status: 200, body: { alreadyRevoked, record: tokenJson(record) } };
    },

    ...webConsole.handlers,
  };

  for (const o of OPERATIONS) {
    if (!handlers[o.operationId]) throw new Error(`admin API: no handler for ${o.operationId}`);
  }

  /**
   * A JWT admin (`admin.auth.jwt`): the token is verified by the gateway's
   * own JWT verifier (issuer, audience, algorithms, keys, jti revocations),
   * must come from a listed provider and pass the token kill switch; its
   * role claim gives the role. A refused token counts in the guard like a
   * bad admin token (401); a good one without a mapped role is 403.
   */
  const jwtCaller = async (presented: string, ip: string): Promise<AdminPrincipal> => {
    const settings = deps.config().admin.auth!.jwt!;
    const services = deps.authServices();
    guard.check(ip, undefined);
    const refuse = (credentialId: string | undefined, reason: string) => {
      guard.recordFailure(ip, credentialId, reason);
      return problems.invalidToken();
    };
    if (services.jwt === undefined) throw refuse(undefined, 'jwt_not_configured');
    let principal: Awaited<ReturnType<NonNullable<AuthServices['jwt']>['verify']>>;
    try {
      principal = await services.jwt.verify(presented, (credentialId) => guard.check(ip, credentialId));
    } catch (err) {
      if (err instanceof AuthFailure) throw refuse(err.credentialId, err.reason);
      if (err instanceof AuthUnavailable) {
        logger.warn({ reason: err.reason }, 'admin API: a JWT admin could not be verified now');
        throw new ApiProblem(503, 'auth.unavailable', 'The token cannot be verified now; try again later.');
      }
      throw err;
    }
    const credentialId = createHash('sha256').update(presented).digest('base64url').slice(0, 16);
    const provider = principal.provider?.replace(/^jwt:/, '');
    if (provider === undefined || !settings.providers.includes(provider)) {
      throw refuse(credentialId, 'provider_not_admin');
    }
    if (services.revocations?.isRevoked(principal)) throw refuse(credentialId, 'token_revoked');
    guard.recordSuccess(ip, credentialId);
    const role = highestRole(claimValues(principal.claims, settings.roleClaim), settings.roles);
    if (role === undefined) {
      auditRefusal('admin.no_role', `admin-jwt:${provider}:${principal.id}`, ip, { kind: 'jwt', provider });
      throw new ApiProblem(
        403,
        'authz.forbidden',
        'Your token does not carry an admin role.',
        `its ${settings.roleClaim} claim maps to no role in admin.auth.jwt.roles`,
      );
    }
    return jwtAdmin(principal, role);
  };

  /**
   * A certificate admin (`admin.auth.mtls`): the connection's client
   * certificate, if the TLS layer verified it against `admin.tls.client_ca`;
   * undefined without one (or with an unverified one), 403 when its identity
   * maps to no role.
   */
  const certificateCaller = (req: IncomingMessage, ip: string): AdminPrincipal | undefined => {
    const settings = deps.config().admin.auth?.mtls;
    if (settings === undefined || !admin.tls) return undefined;
    const verified = verifiedClientCertificate(req.socket);
    if (!verified.ok) return undefined;
    const identity = certificatePrincipalId(verified.certificate, settings.principal);
    const role =
      identity !== undefined && Object.hasOwn(settings.roles, identity)
        ? settings.roles[identity]
        : undefined;
    if (identity === undefined || role === undefined) {
      auditRefusal('admin.no_role', `admin-mtls:${identity ?? verified.certificate.fingerprint256}`, ip, {
        kind: 'mtls',
      });
      throw new ApiProblem(
        403,
        'authz.forbidden',
        'Your client certificate does not map to an admin role.',
        `admin.auth.mtls.roles has no entry for its ${settings.principal}`,
      );
    }
    return certificateAdmin(verified.certificate, identity, role);
  };

  const authenticate = async (
    req: IncomingMessage,
    ip: string,
  ): Promise<{ token: AdminPrincipal; session?: ConsoleSession }> => {
    const header = req.headers.authorization;
    // Without a bearer token, the console's session cookie (a session that ended: 401).
    const session = header === undefined ? await webConsole.sessionOf(req) : undefined;
    if (session !== undefined) return { token: session.token, session };
    if (header === undefined) {
      guard.check(ip, undefined);
      // Then a verified client certificate, when certificate admins are configured.
      const byCertificate = certificateCaller(req, ip);
      if (byCertificate !== undefined) return { token: byCertificate };
      throw problems.unauthenticated();
    }
    const m = /^Bearer ([\x21-\x7e]{1,16384})$/i.exec(header);
    const jwtSettings = deps.config().admin.auth?.jwt;
    if (m && jwtSettings !== undefined && JWT_SHAPE.test(m[1]!)) return { token: await jwtCaller(m[1]!, ip) };
    if (!m || m[1]!.length > 200) {
      guard.check(ip, undefined);
      guard.recordFailure(ip, undefined, 'malformed_key');
      throw problems.invalidToken();
    }
    const presented = m[1]!;
    // Only the public id goes to the guard, never the secret.
    const id = /^pcla_([0-9A-Za-z]{16})_/.exec(presented)?.[1];
    const credentialId = id === undefined ? undefined : `adt_${id}`;
    guard.check(ip, credentialId);
    const result = await tokens.verify(presented);
    if ('failure' in result) {
      const reason =
        result.failure === 'malformed'
          ? 'malformed_key'
          : result.failure === 'unknown'
            ? 'key_unknown'
            : result.failure === 'mismatch'
              ? 'key_mismatch'
              : 'key_revoked';
      guard.recordFailure(ip, result.id, reason);
      throw problems.invalidToken();
    }
    guard.recordSuccess(ip, result.record.id);
    return { token: result.record };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const ip = req.socket.remoteAddress ?? 'unknown';
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const rawPath = q < 0 ? target : target.slice(0, q);
    const rawQuery = q < 0 ? '' : target.slice(q + 1);
    const path = rawPath.length > 1 && rawPath.endsWith('/') ? rawPath.slice(0, -1) : rawPath;
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    let closeAfter = false;
    // Never framed, whatever the answer (the console's own pages say the same).
    res.setHeader('x-frame-options', 'DENY');
    try {
      // Authentication comes first: nothing is revealed, and no body read, before it.
      let auth: { token: AdminPrincipal; session?: ConsoleSession };
      try {
        auth = await authenticate(req, ip);
      } catch (err) {
        // Failed logins are audited; a locked-out IP's further attempts (429) are not, so they cannot flood the chain.
        if (
          path === '/admin/session' &&
          method === 'POST' &&
          err instanceof ApiProblem &&
          err.status === 401
        ) {
          webConsole.loginFailed(req, ip, err);
        }
        throw err;
      }
      const { token, session } = auth;
      const candidates = OPERATIONS.map((o) => ({ o, params: match(o.path, path) })).filter(
        (c) => c.params !== undefined,
      );
      if (candidates.length === 0) throw problems.notFound();
      const found = candidates.find((c) => c.o.method === method);
      if (!found) throw problems.methodNotAllowed([...new Set(candidates.map((c) => c.o.method))]);
      try {
        // A call carried by the session cookie that changes state must repeat the session's CSRF token.
        if (session !== undefined && method !== 'GET') webConsole.checkCsrf(session, req);
        // A browser presents a client certificate by itself, as it does a cookie: no cross-site writes with one.
        if (session === undefined && token.kind === 'mtls' && method !== 'GET') refuseCrossSite(req);
      } catch (err) {
        if (err instanceof ApiProblem) {
          auditRefusal('admin.csrf_refused', actorOf(token), ip, {
            code: err.code,
            operation: found.o.operationId,
          });
        }
        throw err;
      }
      if (!roleAllows(token.role, found.o.role)) {
        // An authenticated admin reaching above its role is the act an auditor looks for first.
        audit({ token, ip, session }, 'admin.forbidden', found.o.operationId, { needed_role: found.o.role });
        throw problems.forbidden(found.o.role);
      }
      if (!BODY_OPERATIONS.has(found.o.operationId) && hasBody(req)) {
        throw problems.invalid('this operation takes no body');
      }
      const query = new URLSearchParams(rawQuery);
      const names = [...query.keys()];
      if (new Set(names).size !== names.length) throw problems.invalid('a query parameter is repeated');
      if (names.some((n) => !found.o.query.includes(n))) {
        throw problems.invalid(`unknown query parameter; accepted: ${found.o.query.join(', ') || '(none)'}`);
      }
      const { status, body, headers, stream } = await handlers[found.o.operationId]!({
        caller: { token, ip, session },
        params: found.params!,
        query,
        req,
        body: () =>
          readJsonObject(req, deps.config().admin.api.maxBodyBytes).catch((err: unknown) => {
            if (err instanceof ApiProblem && err.status === 413) closeAfter = true;
            throw err;
          }),
      });
      for (const [name, value] of Object.entries(headers ?? {})) res.setHeader(name, value);
      if (stream !== undefined) {
        stream(req, res);
        return;
      }
      sendJson(res, status, body, req.method === 'HEAD');
    } catch (err) {
      // A body left unread (refused before reading it) is not drained: the connection closes instead.
      sendApiProblem(res, toProblem(err, logger), closeAfter || (hasBody(req) && !req.readableEnded));
    }
  };

  admin.setApi((req, res) => {
    void handle(req, res);
  });
}

function toProblem(err: unknown, logger: Logger): ApiProblem {
  if (err instanceof ApiProblem) return err;
  if (err instanceof GatewayError) {
    return new ApiProblem(
      err.status,
      err.code,
      err.title,
      undefined,
      err.headers ? { ...err.headers } : undefined,
    );
  }
  if (err instanceof ApiKeyError) {
    if (err.code === 'keys.not_found') return problems.notFound();
    if (err.code === 'keys.invalid_input') return problems.invalid(err.message);
    return problems.conflict(err.code, err.message);
  }
  if (err instanceof BlockError) {
    return err.code === 'blocks.not_found' ? problems.notFound() : problems.invalid(err.message);
  }
  if (err instanceof IssuerError && err.code === 'issuer.invalid_client_input') {
    return problems.invalid(err.message);
  }
  if (err instanceof AdminTokenError) {
    return err.code === 'admin_tokens.not_found' ? problems.notFound() : problems.invalid(err.message);
  }
  logger.error({ err }, 'admin API request failed');
  return new ApiProblem(500, 'gateway.internal', 'An internal error occurred.');
}

/** Loads the config again from its file, as SIGHUP does (the demo passes its own loader). */
export async function reloadFromFile(current: GatewayConfig): Promise<GatewayConfig> {
  const { config } = await loadConfig(current.file, {
    env: { ...process.env, PORTCULLIS_DATA: current.store.dataDir },
  });
  return config;
}
