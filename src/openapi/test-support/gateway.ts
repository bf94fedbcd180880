/**
 * Test harness for this feature until the config loader knows the `api`
 * section: a real gateway (runtime, store, listener) whose routes are
 * compiled here, with the validate, inspect and filter stages registered.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { loadConfig } from '../../config/load.js';
import type { GatewayConfig, RouteSettings } from '../../config/types.js';
import type { RequestContext } from '../../contracts/stage.js';
import { newContext } from '../../gateway.js';
import { createLogger } from '../../log.js';
import { type BuildDeps, STAGE_FACTORIES, type StageFactory } from '../../pipeline/index.js';
import { parseBody } from '../../request/body.js';
import { OVERRIDE_HEADERS, readHeaders, SINGLETON_HEADERS } from '../../request/headers.js';
import { parseMediaType } from '../../request/media-type.js';
import { parseQuery } from '../../request/query.js';
import { type Running, startGateway } from '../../runtime.js';
import { filterStage } from '../../stages/filter/index.js';
import { inspectStage } from '../../stages/inspect/index.js';
import { validateStage } from '../../stages/validate/index.js';
import { type LoadedApiDocument, loadApiDocument } from '../document.js';
import { type ApiRoute, type ConfigRouteInput, configRoute, toRouteSettings } from '../route-settings.js';
import type { RawApi } from '../schema.js';

/**
 * Adds the stages of this feature to the pipeline, after those already
 * there, unless the integrator has registered them. Idempotent.
 */
export function registerApiStages(): void {
  const factories = STAGE_FACTORIES as StageFactory[];
  for (const stage of [validateStage, inspectStage, filterStage as unknown as StageFactory]) {
    if (!factories.some((f) => f.name === stage.name)) factories.push(stage);
  }
}

export interface ApiGateway {
  running: Running;
  url: string;
  port: number;
  logs: Record<string, unknown>[];
  document: LoadedApiDocument | undefined;
  routes: readonly ApiRoute[];
  close(): Promise<void>;
}

export interface ApiGatewayOptions {
  /** The upstream every route goes to. */
  upstream: string;
  /** An OpenAPI document whose operations become routes (auth: none on all of them). */
  document?: string;
  /** The `api` section's other keys (operations, base_path). */
  api?: Partial<RawApi>;
  /** Routes as in the config's `routes` (described by the document where they match). */
  routes?: Omit<ConfigRouteInput, 'upstream'>[];
  /** Extra config (auth, log…) for the base config file. */
  config?: Record<string, unknown>;
  logLevel?: string;
}

/** Starts a gateway on an ephemeral port with this feature's stages on its routes. */
export async function startApiGateway(options: ApiGatewayOptions): Promise<ApiGateway> {
  registerApiStages();
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-api-test-'));
  const configFile = join(dataDir, 'portcullis.yaml');
  writeFileSync(
    configFile,
    stringify({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { enabled: false },
      log: { level: options.logLevel ?? 'debug' },
      upstreams: { api: { url: options.upstream } },
      routes: [{ path: '/__placeholder', methods: ['GET'], upstream: 'api', auth: 'none' }],
      ...options.config,
    }),
  );
  const { config: loaded } = await loadConfig(configFile, {
    env: { ...process.env, PORTCULLIS_DATA: dataDir },
  });
  const document = options.document === undefined ? undefined : await loadApiDocument(options.document);
  const routes: ApiRoute[] = [];
  if (options.routes !== undefined) {
    options.routes.forEach((r, i) => {
      routes.push(configRoute({ ...r, upstream: 'api' }, i, document, options.api?.base_path ?? ''));
    });
  } else if (document !== undefined) {
    const compiled = toRouteSettings(document, { upstream: 'api', ...options.api }, { authMethods: [] });
    // One upstream; authentication and authorization are other stages' business: these routes are public here.
    for (const r of compiled)
      routes.push({ ...r, upstream: 'api', auth: 'none', authorize: undefined } as ApiRoute);
  }
  const config = { ...loaded, routes: routes as readonly RouteSettings[] } as GatewayConfig;
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line));
      cb();
    },
  });
  const logger = createLogger({ level: config.log.level, redact: config.log.redact }, sink);
  const running = await startGateway(config, { logger });
  return {
    running,
    url: `http://127.0.0.1:${running.port}`,
    port: running.port,
    logs,
    document,
    routes,
    async close() {
      await running.close(1000);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A log sink that keeps parsed lines. */
export function memoryLogger(level = 'debug'): {
  logger: ReturnType<typeof createLogger>;
  logs: Record<string, unknown>[];
} {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line));
      cb();
    },
  });
  return { logger: createLogger({ level }, sink), logs };
}

export interface FakeRequest {
  method?: string;
  params?: Record<string, string>;
  query?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/**
 * A request context without a socket, for calling a stage directly: the
 * body is already read (`ctx.body`), so `readBody` returns it.
 */
export function fakeContext(route: RouteSettings, request: FakeRequest = {}): RequestContext {
  const headers: Record<string, string> = { ...request.headers };
  const body = request.body === undefined ? undefined : Buffer.from(request.body);
  if (body !== undefined && headers['content-length'] === undefined)
    headers['content-length'] = String(body.length);
  const rawHeaders = Object.entries(headers).flat();
  // The same readers the normalise stage uses: the stage under test sees the one request view.
  const read = readHeaders(rawHeaders, new Set(SINGLETON_HEADERS), new Set(OVERRIDE_HEADERS));
  if (!read.ok) throw new Error(read.reason);
  const query = parseQuery(request.query ?? '');
  if (query === undefined) throw new Error('undecodable query');
  const typeHeader = read.view.get('content-type');
  const contentType = typeHeader === undefined ? undefined : parseMediaType(typeHeader);
  const ctx = newContext(
    'req_test',
    { headers, rawHeaders, method: request.method ?? 'GET' } as unknown as IncomingMessage,
    {} as ServerResponse,
    0,
    '127.0.0.1',
    request.method ?? 'GET',
    { path: '/', query, forwardQuery: query.raw, headers: read.view, contentType },
    route,
    request.params ?? {},
  );
  ctx.body = body;
  ctx.requestBody =
    body === undefined ? undefined : parseBody(body, contentType, route.validation.jsonLimits);
  return ctx;
}

/** Build dependencies for calling a stage factory directly. */
export function fakeDeps(logger = memoryLogger().logger): BuildDeps {
  return {
    config: { auth: { apiKeys: undefined } },
    logger,
    store: undefined,
    auth: {},
  } as unknown as BuildDeps;
}
