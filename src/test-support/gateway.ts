/** Test harness: a real gateway on an ephemeral port in front of a real upstream. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../config/load.js';
import type { GatewayConfig, RouteSettings } from '../config/types.js';
import { type LoadedApiDocument, loadApiDocument } from '../openapi/document.js';
import {
  type ApiRoute,
  type ConfigRouteInput,
  configRoute,
  toRouteSettings,
} from '../openapi/route-settings.js';
import type { RawApi } from '../openapi/schema.js';
import { type Running, startGateway } from '../runtime.js';
import { captureLogger } from './log.js';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  /** The header lines exactly as received, as flat name/value pairs. */
  rawHeaders: string[];
  bodyBytes: number;
  /** The body exactly as received. */
  body: Buffer;
}

export interface TestUpstream {
  port: number;
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/**
 * An upstream that records what reached it and answers with JSON describing
 * the request. `handler` may take over for special behaviour.
 */
export async function startUpstream(
  handler?: (req: IncomingMessage, res: import('node:http').ServerResponse) => boolean | undefined,
): Promise<TestUpstream> {
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    let bodyBytes = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      bodyBytes += c.length;
      chunks.push(c);
    });
    req.on('end', () => {
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        bodyBytes,
        body: Buffer.concat(chunks),
      });
      if (handler?.(req, res)) return;
      const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyBytes });
      res.writeHead(200, {
        'content-type': 'application/json',
        server: 'secret-backend/1.2.3',
        'x-powered-by': 'Express',
      });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface TestGateway {
  running: Running;
  url: string;
  port: number;
  adminUrl: string;
  /** Every log line written so far, parsed. */
  logs: Record<string, unknown>[];
  configFile: string;
  dataDir: string;
  close(): Promise<void>;
}

/**
 * Starts a gateway from a config object (written to a temp YAML file), on
 * ephemeral ports. `adjust` may change the loaded config before it starts.
 */
export async function startTestGateway(
  config: Record<string, unknown>,
  adjust: (loaded: GatewayConfig) => GatewayConfig = (loaded) => loaded,
): Promise<TestGateway> {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-test-'));
  const configFile = join(dataDir, 'portcullis.yaml');
  const full = {
    listen: { host: '127.0.0.1', port: 0, ...(config.listen as object) },
    admin: { host: '127.0.0.1', port: 0, ...(config.admin as object) },
    log: { level: 'info', ...(config.log as object) },
    ...Object.fromEntries(Object.entries(config).filter(([k]) => !['listen', 'admin', 'log'].includes(k))),
  };
  writeFileSync(configFile, stringify(full));
  const { config: read } = await loadConfig(configFile, {
    env: { ...process.env, PORTCULLIS_DATA: dataDir },
  });
  const loaded = adjust(read);
  const { logger, lines: logs } = captureLogger(loaded.log.level, loaded.log.redact);
  const running = await startGateway(loaded, { logger });
  return {
    running,
    url: `http://127.0.0.1:${running.port}`,
    port: running.port,
    adminUrl: `http://127.0.0.1:${running.adminPort}`,
    logs,
    configFile,
    dataDir,
    async close() {
      await running.close(1000);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface ApiGateway extends TestGateway {
  document: LoadedApiDocument | undefined;
  routes: readonly ApiRoute[];
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

/**
 * A gateway in front of one upstream whose routes come from an API
 * document (all public: authentication is other tests' business) or from
 * route entries the document describes.
 */
export async function startApiGateway(options: ApiGatewayOptions): Promise<ApiGateway> {
  const document = options.document === undefined ? undefined : await loadApiDocument(options.document);
  const routes: ApiRoute[] = [];
  if (options.routes !== undefined) {
    options.routes.forEach((r, i) => {
      routes.push(configRoute({ ...r, upstream: 'api' }, i, document, options.api?.base_path ?? ''));
    });
  } else if (document !== undefined) {
    const compiled = toRouteSettings(document, { upstream: 'api', ...options.api }, { authMethods: [] });
    for (const r of compiled)
      routes.push({ ...r, upstream: 'api', auth: 'none', authorize: undefined } as ApiRoute);
  }
  const gw = await startTestGateway(
    {
      admin: { enabled: false },
      log: { level: options.logLevel ?? 'debug' },
      upstreams: { api: { url: options.upstream } },
      routes: [{ path: '/__placeholder', methods: ['GET'], upstream: 'api', auth: 'none' }],
      ...options.config,
    },
    (loaded) => ({ ...loaded, routes: routes as readonly RouteSettings[] }) as GatewayConfig,
  );
  return { ...gw, document, routes };
}
