/**
 * Test harness: the rate-limit stages behind a real HTTP server, answering
 * as the gateway does (problem+json through `sendProblem`, a 200 otherwise),
 * until the stages are wired into the gateway itself. The test chooses the
 * client address and the principal with two test-only request headers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RouteSettings } from '../../config/types.js';
import type { Principal } from '../../contracts/principal.js';
import type { RequestContext, Stage } from '../../contracts/stage.js';
import { sendProblem } from '../../errors.js';

export { captureLogger } from '../../test-support/log.js';

/** A route with just what the rate-limit stages read (other features add fields of their own). */
export function testRoute(name: string): RouteSettings {
  return {
    index: 0,
    name,
    template: '/x',
    routerPath: '/x',
    params: [],
    methods: ['GET'],
    upstream: 'u',
    auth: 'none',
    apiKeyInQuery: false,
    bodyLimit: 1024,
    cacheControl: 'no-store',
    cors: undefined,
  } as unknown as RouteSettings;
}

export function principal(kind: Principal['kind'], id: string, extra: Partial<Principal> = {}): Principal {
  return { kind, id, scopes: [], roles: [], claims: {}, tenant: undefined, ...extra };
}

/**
 * A context as the gateway builds it, for calling a stage directly: the
 * fields the rate-limit stages use (other features add fields of their own).
 */
export function makeContext(
  req: IncomingMessage,
  res: ServerResponse,
  options: { route: RouteSettings; clientIp: string; principal?: Principal | undefined },
): RequestContext {
  return {
    id: `req_${Math.random().toString(36).slice(2)}`,
    req,
    res,
    startedAt: performance.now(),
    clientIp: options.clientIp,
    method: req.method ?? 'GET',
    path: '/x',
    query: '',
    route: options.route,
    params: {},
    principal: options.principal,
    upstreamHeaders: {},
    body: undefined,
    parsedBody: undefined,
    responseHeaders: [],
    shadowDenials: [],
  } as unknown as RequestContext;
}

export interface StageServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/**
 * Serves `stages` for each route: the path `/<route name>` picks the route,
 * `x-test-ip` sets the client address, `x-test-principal` (JSON) the principal.
 * `hold` (ms, query `?hold=`) keeps a request in flight before answering.
 */
export async function startStageServer(routes: Record<string, Stage[]>): Promise<StageServer> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const name = decodeURIComponent(url.pathname.slice(1));
    const stages = routes[name];
    if (!stages) {
      res.writeHead(404).end();
      return;
    }
    const p = req.headers['x-test-principal'];
    const ctx = makeContext(req, res, {
      route: testRoute(name),
      clientIp: (req.headers['x-test-ip'] as string | undefined) ?? '127.0.0.1',
      principal: typeof p === 'string' ? (JSON.parse(p) as Principal) : undefined,
    });
    const hold = Number(url.searchParams.get('hold') ?? 0);
    (async () => {
      for (const s of stages) await s.handle(ctx);
      if (hold > 0) await new Promise((r) => setTimeout(r, hold));
      const body = JSON.stringify({ ok: true });
      res.writeHead(200, [
        'content-type',
        'application/json',
        'content-length',
        String(Buffer.byteLength(body)),
        ...ctx.responseHeaders,
      ]);
      res.end(body);
    })().catch((err) => sendProblem(res, err, ctx.id));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
