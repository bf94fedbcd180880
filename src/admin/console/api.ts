/**
 * The web console's part of the admin API: its sessions (log in, the
 * session, log out), the overview's time series and the live stream, plus
 * its files at `/`. `../api/index.ts` routes, authenticates and audits these
 * operations like every other one; this module holds what is the console's own.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EventBus } from '../../events/types.js';
import type { Logger } from '../../log.js';
import { ApiProblem, problems } from '../api/http.js';
import type { AdminPrincipal } from '../principal.js';
import type { AdminServer } from '../server.js';
import type { AdminTokenStore } from '../tokens/store.js';
import { LiveHub } from './live.js';
import {
  CLEAR_COOKIE,
  type ConsoleSession,
  CSRF_HEADER,
  SessionStore,
  sameSecret,
  sessionIdOf,
} from './sessions.js';
import { consoleAssets } from './static.js';
import { TrafficSeries } from './timeseries.js';

/** How often a session (and a live stream) checks that its admin token is still active. */
const TOKEN_RECHECK_MS = 15_000;

/** The caller of a console operation, as the admin API authenticated it. */
export interface ConsoleCaller {
  /** The admin: an admin token's record, or a JWT or certificate admin. */
  token: AdminPrincipal;
  ip: string;
  session?: ConsoleSession | undefined;
}

export interface ConsoleDeps {
  admin: AdminServer;
  events: EventBus;
  tokens: AdminTokenStore;
  logger: Logger;
  /** Records an act in the audit chain with the caller's identity (the admin API's own). */
  audit: (
    caller: ConsoleCaller,
    action: string,
    target: string | undefined,
    detail?: Record<string, string | number | boolean>,
  ) => void;
  /**
   * Whether a JWT or certificate admin's session may go on (token kill
   * switch, configuration reloaded); admin tokens are checked here.
   */
  stillActive?: (admin: AdminPrincipal) => Promise<boolean>;
}

interface ConsoleContext {
  caller: ConsoleCaller;
  query: URLSearchParams;
  req: IncomingMessage;
}

export interface ConsoleResult {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  stream?: (req: IncomingMessage, res: ServerResponse) => void;
}

export type ConsoleOperation = 'login' | 'getSession' | 'logout' | 'getTimeSeries' | 'streamEvents';

export interface WebConsole {
  handlers: Record<ConsoleOperation, (ctx: ConsoleContext) => Promise<ConsoleResult>>;
  /**
   * The session of a request that carries the session cookie: undefined
   * without one; 401 (clearing the cookie) when it has ended or its admin
   * token was revoked.
   */
  sessionOf(req: IncomingMessage): Promise<ConsoleSession | undefined>;
  /** Throws 403 unless the request repeats the session's CSRF token. */
  checkCsrf(session: ConsoleSession, req: IncomingMessage): void;
  /** Audits a failed login: the client and the token's public id, never the secret. */
  loginFailed(req: IncomingMessage, ip: string, err: ApiProblem): void;
  /** Ends the sessions and streams of an admin token just revoked. */
  tokenRevoked(id: string): void;
}

/** Sets up the console on the admin listener; the admin API calls the rest. */
export function mountConsole(deps: ConsoleDeps): WebConsole {
  const { events, tokens, logger, audit } = deps;
  const sessions = new SessionStore();
  const series = new TrafficSeries();
  const live = new LiveHub({ logger });
  events.subscribe(series);
  events.subscribe(live);
  deps.admin.setConsole(consoleAssets());

  // While live streams are open, admin tokens revoked elsewhere (the CLI, another instance) end theirs.
  const revokedTokens = new Set<string>();
  let revocationTimer: NodeJS.Timeout | undefined;
  const watchRevocations = () => {
    if (revocationTimer !== undefined) return;
    revocationTimer = setInterval(() => {
      if (live.size === 0) {
        clearInterval(revocationTimer);
        revocationTimer = undefined;
        return;
      }
      tokens.list().then(
        (all) => {
          for (const t of all) {
            if (t.revokedAt === undefined) continue;
            revokedTokens.add(t.id);
            sessions.deleteToken(t.id);
          }
        },
        (err: unknown) => logger.warn({ err }, 'console: could not check admin tokens for revocation'),
      );
    }, TOKEN_RECHECK_MS);
    revocationTimer.unref();
  };

  const sessionJson = (s: ConsoleSession) => ({
    id: s.token.id,
    name: s.token.name,
    role: s.token.role,
    csrfToken: s.csrf,
    expiresAt: new Date(sessions.expiresAt(s)).toISOString(),
    idleTimeoutSeconds: Math.floor(sessions.settings.idleMs / 1000),
  });

  const sessionEnded = () =>
    new ApiProblem(401, 'auth.session_ended', 'The console session has ended; log in again.', undefined, {
      'set-cookie': CLEAR_COOKIE,
    });

  const handlers: WebConsole['handlers'] = {
    async login({ caller, req }) {
      // A session is made from a credential (admin token, JWT, certificate), never from another session.
      if (caller.session !== undefined) throw problems.unauthenticated();
      const previous = sessionIdOf(req);
      const old = previous ? sessions.get(previous) : undefined;
      if (old !== undefined) sessions.delete(old);
      const { id, session } = sessions.create(caller.token);
      audit(caller, 'admin.login', caller.token.id, { via: 'console' });
      return { status: 201, headers: { 'set-cookie': sessions.cookie(id) }, body: sessionJson(session) };
    },

    async getSession({ caller }) {
      if (caller.session !== undefined) return { status: 200, body: sessionJson(caller.session) };
      const t = caller.token;
      return {
        status: 200,
        body: {
          id: t.id,
          name: t.name,
          role: t.role,
          csrfToken: null,
          expiresAt: null,
          idleTimeoutSeconds: null,
        },
      };
    },

    async logout({ caller }) {
      const session = caller.session;
      if (session !== undefined) {
        sessions.delete(session);
        audit(caller, 'admin.logout', caller.token.id, { via: 'console' });
      }
      return {
        status: 200,
        headers: { 'set-cookie': CLEAR_COOKIE },
        body: { loggedOut: session !== undefined },
      };
    },

    async getTimeSeries({ query }) {
      const text = query.get('minutes');
      if (text !== null && (!/^\d{1,2}$/.test(text) || Number(text) < 1 || Number(text) > 60)) {
        throw problems.invalid('minutes must be 1 to 60');
      }
      return { status: 200, body: series.toJSON(text === null ? 15 : Number(text)) };
    },

    async streamEvents({ caller, query, req }) {
      if (!/(^|,)\s*text\/event-stream\s*(;|,|$)/i.test(String(req.headers.accept ?? ''))) {
        throw new ApiProblem(
          406,
          'input.not_acceptable',
          'This resource is a stream of Server-Sent Events.',
          'send Accept: text/event-stream',
        );
      }
      const filter: Record<string, string> = {};
      for (const name of ['type', 'decision', 'route', 'principal', 'ip'] as const) {
        const v = query.get(name);
        if (v === null) continue;
        if (v.length === 0 || v.length > 200) throw problems.invalid(`${name} must be 1 to 200 characters`);
        filter[name] = v;
      }
      if (filter.type !== undefined && filter.type !== 'request' && filter.type !== 'admin') {
        throw problems.invalid('type must be request or admin');
      }
      if (filter.decision !== undefined && !['allow', 'deny', 'error'].includes(filter.decision)) {
        throw problems.invalid('decision must be allow, deny or error');
      }
      if (live.full) {
        throw new ApiProblem(503, 'console.too_many_streams', 'Too many live streams are open; try later.');
      }
      const session = caller.session;
      const tokenId = caller.token.id;
      const credentialEnds = caller.token.expiresAt ?? Number.POSITIVE_INFINITY;
      return {
        status: 200,
        body: undefined,
        stream: (request, res) => {
          if (request.method === 'HEAD') {
            res.writeHead(200, {
              'content-type': 'text/event-stream; charset=utf-8',
              'cache-control': 'no-store',
            });
            res.end();
            return;
          }
          // A stream ends with its session (logout, expiry) or its admin token's revocation; the heartbeat checks.
          live.attach(
            request,
            res,
            filter,
            () =>
              !revokedTokens.has(tokenId) &&
              Date.now() < credentialEnds &&
              (session === undefined || sessions.isLive(session)),
          );
          watchRevocations();
        },
      };
    },
  };

  return {
    handlers,

    async sessionOf(req) {
      const sid = sessionIdOf(req);
      if (sid === undefined) return undefined;
      // A session id is 256 random bits, beyond guessing: an unknown one is a
      // session that ended (its cookie still in the browser), not counted as a failure.
      const session = sid === '' ? undefined : sessions.get(sid);
      if (session === undefined) throw sessionEnded();
      if (Date.now() - session.checkedAt > TOKEN_RECHECK_MS) {
        const admin = session.token;
        let active: boolean;
        if (admin.kind === undefined || admin.kind === 'token') {
          const current = (await tokens.list()).find((t) => t.id === admin.id);
          active = current !== undefined && current.revokedAt === undefined;
        } else {
          active = (await deps.stillActive?.(admin)) ?? true;
        }
        if (!active) {
          sessions.delete(session);
          throw sessionEnded();
        }
        session.checkedAt = Date.now();
      }
      return session;
    },

    checkCsrf(session, req) {
      const presented = req.headers[CSRF_HEADER];
      if (typeof presented !== 'string' || presented === '') {
        throw new ApiProblem(
          403,
          'csrf.missing',
          'A CSRF token is required.',
          `send the session's csrfToken in ${CSRF_HEADER}`,
        );
      }
      if (!sameSecret(presented, session.csrf)) {
        throw new ApiProblem(403, 'csrf.invalid', 'The CSRF token is not valid for this session.');
      }
    },

    loginFailed(req, ip, err) {
      const presented = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
      const id = /^pcla_([0-9A-Za-z]{16})_/.exec(presented)?.[1];
      events.emit({
        type: 'admin',
        time: new Date().toISOString(),
        action: 'admin.login_failed',
        actor: 'admin-api:anonymous',
        target: id === undefined ? undefined : `adt_${id}`,
        detail: { client_ip: ip, via: 'console', reason: err.code },
      });
    },

    tokenRevoked(id) {
      sessions.deleteToken(id);
      revokedTokens.add(id);
    },
  };
}
