/**
 * Test harness for calling one stage directly: a request context built by
 * the driver's own `newContext` from the same readers the normalise stage
 * uses, a route, build dependencies, and a real HTTP server that runs a
 * list of stages and answers as the gateway does.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RouteSettings } from '../config/types.js';
import type { Principal } from '../contracts/principal.js';
import type { RequestContext, Stage } from '../contracts/stage.js';
import { sendProblem } from '../errors.js';
import type { Logger } from '../log.js';
import type { BuildDeps } from '../pipeline/index.js';
import { newContext } from '../pipeline/run.js';
import { parseBody } from '../request/body.js';
import { OVERRIDE_HEADERS, readHeaders, SINGLETON_HEADERS } from '../request/headers.js';
import { parseMediaType } from '../request/media-type.js';
import { parseQuery } from '../request/query.js';
import { captureLogger } from './log.js';

export { captureLogger } from './log.js';

export interface FakeRequest {
  method?: string;
  params?: Record<string, string>;
  query?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** The request view the normalise stage would build from these header lines and query. */
function requestView(rawHeaders: string[], rawQuery: string) {
  const read = readHeaders(rawHeaders, new Set(SINGLETON_HEADERS), new Set(OVERRIDE_HEADERS));
  if (!read.ok) throw new Error(read.reason);
  const query = parseQuery(rawQuery);
  if (query === undefined) throw new Error('undecodable query');
  const typeHeader = read.view.get('content-type');
  const contentType = typeHeader === undefined ? undefined : parseMediaType(typeHeader);
  return { path: '/', query, forwardQuery: query.raw, headers: read.view, contentType };
}

/**
 * A request context without a socket, for calling a stage directly: the
 * body is already read (`ctx.body`, `ctx.requestBody`).
 */
export function fakeContext(route: RouteSettings, request: FakeRequest = {}): RequestContext {
  const headers: Record<string, string> = { ...request.headers };
  const body = request.body === undefined ? undefined : Buffer.from(request.body);
  if (body !== undefined && headers['content-length'] === undefined)
    headers['content-length'] = String(body.length);
  const rawHeaders = Object.entries(headers).flat();
  const head = requestView(rawHeaders, request.query ?? '');
  const method = request.method ?? 'GET';
  const ctx = newContext({
    id: 'req_test',
    req: { headers, rawHeaders, method } as unknown as IncomingMessage,
    res: {} as ServerResponse,
    startedAt: 0,
    clientIp: '127.0.0.1',
    method,
    head,
    route,
    params: request.params ?? {},
  });
  ctx.body = body;
  ctx.requestBody =
    body === undefined ? undefined : parseBody(body, head.contentType, route.validation.jsonLimits);
  return ctx;
}

/** Build dependencies for calling a stage factory directly. */
export function fakeDeps(logger: Logger = captureLogger().logger): BuildDeps {
  return {
    config: { auth: { apiKeys: undefined } },
    logger,
    store: undefined,
    auth: {},
  } as unknown as BuildDeps;
}

/** A route with just what the transport and rate-limit stages read. */
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

/** A context for a real request on a test server, as the gateway builds it. */
export function makeContext(
  req: IncomingMessage,
  res: ServerResponse,
  options: { route: RouteSettings; clientIp: string; principal?: Principal | undefined },
): RequestContext {
  const ctx = newContext({
    id: `req_${Math.random().toString(36).slice(2)}`,
    req,
    res,
    startedAt: performance.now(),
    clientIp: options.clientIp,
    method: req.method ?? 'GET',
    // A hand-made request may carry only `headers`: read them as the raw list a socket would give.
    head: { ...requestView(req.rawHeaders ?? rawHeadersOf(req.headers), ''), path: '/x' },
    route: options.route,
    params: {},
  });
  ctx.principal = options.principal;
  return ctx;
}

function rawHeadersOf(headers: IncomingMessage['headers']): string[] {
  return Object.entries(headers).flatMap(([name, value]) =>
    [value ?? []].flat().flatMap((v) => [name, String(v)]),
  );
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
