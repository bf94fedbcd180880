/**
 * The admin listener: health and readiness for orchestrators, on its own
 * port (loopback by default) so it is never reachable through the public one.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import { createSecureContext } from 'node:tls';
import { readCaCertificates } from '../tls/client-auth.js';

/**
 * A named readiness check: resolves when healthy (with a note when it serves
 * degraded, e.g. rate limits falling back to local counters), rejects with
 * the reason when the instance should not get traffic. A resolved string
 * is the note; anything else means ok.
 */
export type ReadinessCheck = () => Promise<unknown>;

export interface AdminServer {
  server: Server;
  /** Adds or replaces a readiness check. */
  setCheck(name: string, check: ReadinessCheck | undefined): void;
  /** Serves GET/HEAD `path` with `handler` (e.g. `/metrics`). */
  addRoute(path: string, handler: (req: IncomingMessage, res: ServerResponse) => void): void;
  /**
   * Serves every method on `/admin` and below with `handler` (the admin API,
   * see `src/admin/api/`); `undefined` removes it.
   */
  setApi(handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined): void;
  /**
   * Serves the web console's files at `/` and `/console/…` with `handler`,
   * which answers false for a path that is not its own; `undefined` removes it.
   */
  setConsole(handler: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined): void;
  /** Whether the listener serves HTTPS (`admin.tls`). */
  readonly tls: boolean;
  /**
   * Reads `tls`'s files again and serves new connections with them (a
   * renewed certificate, a changed client CA); throws, keeping the files in
   * use, when one cannot be read or does not make a TLS context.
   */
  reloadTls(tls: NonNullable<AdminServerOptions['tls']>): void;
  /** Runs every check now: each one's state, as `/healthz/deps` shows it (for metrics). */
  evaluate(): Promise<Map<string, CheckResult>>;
}

/** A check's state: `up`, `degraded` (ready, with a note) or `down` (not ready). */
export interface CheckResult {
  state: 'up' | 'degraded' | 'down';
  note: string;
}

const CHECK_TIMEOUT_MS = 2000;

async function runCheck(check: ReadinessCheck): Promise<{ ok: boolean; note: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const note = await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), CHECK_TIMEOUT_MS);
      }),
    ]);
    return { ok: true, note: typeof note === 'string' && note !== '' ? note : 'ok' };
  } catch (err) {
    return { ok: false, note: (err as Error).message || 'failed' };
  } finally {
    clearTimeout(timer);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * The certificate, key and client CA of `tls`, read now. The CA file is
 * parsed here: OpenSSL skips a PEM block it cannot read without a word, which
 * would leave the listener trusting no client certificate at all.
 */
function secureContextOptions(tls: NonNullable<AdminServerOptions['tls']>): {
  cert: Buffer;
  key: Buffer;
  ca?: string[];
} {
  return {
    cert: readFileSync(tls.cert),
    key: readFileSync(tls.key),
    ...(tls.clientCa === undefined
      ? {}
      : { ca: readCaCertificates([tls.clientCa]).map((c) => c.toString()) }),
  };
}

/** Options of {@link createAdminServer}. */
export interface AdminServerOptions {
  /**
   * Serve HTTPS with these PEM files (absolute paths). With `clientCa`, the
   * listener asks for a client certificate but does not require one: the
   * admin API decides per request (`socket.authorized`) whether it counts.
   */
  tls?: { cert: string; key: string; clientCa?: string | undefined } | undefined;
}

export function createAdminServer(options: AdminServerOptions = {}): AdminServer {
  const checks = new Map<string, ReadinessCheck>();
  const evaluate = async () => {
    const results = await Promise.all(
      [...checks].map(async ([name, check]) => [name, await runCheck(check)] as const),
    );
    return new Map(
      results.map(([name, r]): [string, CheckResult] => [
        name,
        { state: !r.ok ? 'down' : r.note === 'ok' ? 'up' : 'degraded', note: r.note },
      ]),
    );
  };
  const routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
  let api: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  let webConsole: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (api !== undefined && (path === '/admin' || path?.startsWith('/admin/'))) {
      api(req, res);
      return;
    }
    if (webConsole?.(req, res)) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { status: 405, title: 'Method not allowed.' });
      return;
    }
    if (path === '/healthz') {
      sendJson(res, 200, { status: 'alive' });
      return;
    }
    if (path === '/readyz') {
      const results = await Promise.all(
        [...checks].map(async ([name, check]) => [name, await runCheck(check)] as const),
      );
      const failing = results.filter(([, r]) => !r.ok);
      sendJson(res, failing.length === 0 ? 200 : 503, {
        status: failing.length === 0 ? 'ready' : 'not ready',
        checks: Object.fromEntries(results.map(([name, r]) => [name, r.note])),
      });
      return;
    }
    if (path === '/healthz/deps') {
      // Every dependency, whether or not it makes the instance unready: for people and dashboards.
      const results = await evaluate();
      sendJson(res, 200, {
        dependencies: Object.fromEntries(
          [...results].map(([name, r]) => [name, { status: r.state, note: r.note }]),
        ),
      });
      return;
    }
    const route = routes.get(path ?? '');
    if (route) {
      route(req, res);
      return;
    }
    sendJson(res, 404, { status: 404, title: 'No such resource.' });
  };
  const server: Server = options.tls
    ? (createHttpsServer(
        {
          ...secureContextOptions(options.tls),
          minVersion: 'TLSv1.2',
          ...(options.tls.clientCa === undefined ? {} : { requestCert: true, rejectUnauthorized: false }),
        },
        handle,
      ) as unknown as Server)
    : createServer(handle);
  return {
    server,
    tls: options.tls !== undefined,
    reloadTls(tls) {
      if (!(server instanceof HttpsServer)) throw new Error('the admin listener serves plain HTTP');
      // Whether a client certificate is asked for is fixed at start; the CA that verifies it is not.
      const context = { ...secureContextOptions(tls), minVersion: 'TLSv1.2' as const };
      // Built first, so a key that does not match its certificate throws before the server changes.
      createSecureContext(context);
      server.setSecureContext(context);
    },
    setApi(handler) {
      api = handler;
    },
    setConsole(handler) {
      webConsole = handler;
    },
    addRoute(path, handler) {
      routes.set(path, handler);
    },
    evaluate,
    setCheck(name, check) {
      if (check === undefined) checks.delete(name);
      else checks.set(name, check);
    },
  };
}
