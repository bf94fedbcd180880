/**
 * A running Portcullis: the public listener, the admin listener, the store
 * and the current gateway, with atomic reload and graceful shutdown.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type AdminServer, createAdminServer } from './admin/server.js';
import {
  createAlerter,
  createAlertStore,
  createBlocklist,
  createBlockStore,
  observeAlerting,
} from './alerts/index.js';
import { blockPolicies, createAnomalyEngine } from './anomaly/index.js';
import { type AuditLog, createAuditLog, registerAuditMetrics, resolveAuditSigner } from './audit/index.js';
import { createBruteForceGuard } from './auth/brute-force.js';
import { buildAuth } from './auth/build.js';
import type { AuthServices } from './auth/services.js';
import type { GatewayConfig } from './config/types.js';
import { ERRORS, type ErrorSpec, PROBLEM_HEADERS, problemBody } from './errors.js';
import { EventBus } from './events/types.js';
import { Gateway } from './gateway.js';
import type { Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics/index.js';
import { buildRateLimit } from './ratelimit/index.js';
import { openStore } from './store/index.js';
import type { Store } from './store/types.js';
import { createHttpsServer, createRedirectServer, type HttpsListener } from './tls/listener.js';
import { registerCertificateMetrics } from './tls/metrics.js';

export interface Running {
  readonly publicServer: Server | HttpsServer;
  /** The plain-HTTP listener that only redirects to HTTPS, when enabled. */
  readonly redirectPort: number | undefined;
  readonly tls: HttpsListener | undefined;
  readonly admin: AdminServer | undefined;
  /** The bound public port (useful with port 0). */
  readonly port: number;
  readonly adminPort: number | undefined;
  readonly store: Store;
  /** The gateway serving requests now. */
  current(): Gateway;
  /** The authentication services of the current gateway. */
  authServices(): AuthServices;
  /** Every security event: one per request, and administrative acts. */
  readonly events: EventBus;
  readonly metrics: Metrics;
  readonly audit: AuditLog;
  /** Builds a gateway from `config` and swaps it in; the old one drains. Throws, keeping the old one, on failure. */
  reload(config: GatewayConfig): Promise<void>;
  /** Stops accepting, drains in-flight requests (at most `graceMs`), closes everything. */
  close(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  logger: Logger;
  /** Use this store instead of opening the configured one (tests). */
  store?: Store;
  /** Use this event bus (tests subscribe before the first request). */
  events?: EventBus;
}

/** Maps llhttp and Node's own protocol errors to the answer a client gets. */
function clientErrorSpec(code: string | undefined): ErrorSpec {
  if (code === 'HPE_HEADER_OVERFLOW') return ERRORS.headersTooLarge;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return ERRORS.requestTimeout;
  return ERRORS.badRequest;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startGateway(config: GatewayConfig, options: StartOptions): Promise<Running> {
  const { logger } = options;
  const store =
    options.store ??
    (await openStore({
      url: config.store.url,
      dataDir: config.store.dataDir,
      onError: (err) => logger.error({ err }, 'store connection error'),
    }));
  if (!options.store) await store.migrate();

  const guard = createBruteForceGuard(config.auth.bruteForce, {
    onLockout: (key, until) =>
      logger.warn({ key, until: new Date(until).toISOString() }, 'brute-force lockout'),
  });
  const events = options.events ?? new EventBus((err) => logger.error({ err }, 'an event subscriber failed'));
  // One metrics registry per process: it samples the Node.js process itself.
  const metrics = createMetrics();
  events.subscribe(metrics);
  let current = config;
  const audit = createAuditLog({
    db: store,
    settings: config.audit,
    signer: resolveAuditSigner(config.audit.signingKey, config.store.dataDir),
    logger,
    // Sampling follows reloads; every other audit setting takes effect on restart.
    sampleRate: (route) =>
      (route === undefined ? undefined : current.audit.sampleRoutes[route]) ?? current.audit.sampleSuccess,
    onDrop: (count, total) =>
      events.emit({
        type: 'admin',
        time: new Date().toISOString(),
        action: 'audit.events_dropped',
        actor: 'system',
        target: undefined,
        detail: { count, total },
      }),
  });
  events.subscribe(audit);
  registerAuditMetrics(metrics.registry, () => audit);
  const blocklist = createBlocklist({
    store: createBlockStore(store),
    settings: config.blocks,
    onEvent: (e) => events.emit(e),
    logger,
  });
  await blocklist.start();
  const buildDetection = (cfg: GatewayConfig) => {
    const alerter = createAlerter({
      store: createAlertStore(store),
      settings: cfg.alerts,
      blocklist,
      blockPolicies: blockPolicies(cfg.anomaly),
      onEvent: (e) => events.emit(e),
      logger,
    });
    const anomaly = createAnomalyEngine(cfg.anomaly, { onFinding: (f) => alerter.raise(f) });
    return { alerter, anomaly, unsubscribe: events.subscribe(anomaly) };
  };
  let detection = buildDetection(config);
  observeAlerting(metrics, {
    anomaly: () => detection.anomaly,
    alerter: () => detection.alerter,
    blocklist: () => blocklist,
  });
  let auth = await buildAuth(config, { logger, store, guard });
  // Never throws for a Redis that is down: the configured failure policy answers.
  let rateLimit = await buildRateLimit(config.rateLimit, { logger, store });
  let gateway = new Gateway(config, {
    logger,
    store,
    auth: auth.services,
    endpoints: auth.endpoints,
    events,
    blocklist,
    rateLimit,
    audit,
  });
  observeAuthCaches(metrics, () => auth.services);
  let storeUp = true;
  const storeProbe = setInterval(() => {
    store.ping().then(
      () => {
        storeUp = true;
      },
      () => {
        storeUp = false;
      },
    );
  }, 10_000);
  storeProbe.unref();
  metrics.observeDependency('store', () => storeUp);
  const l = config.listen;
  const httpOptions = {
    maxHeaderSize: l.maxHeaderBytes,
    headersTimeout: l.headersTimeoutMs,
    requestTimeout: l.requestTimeoutMs,
    keepAliveTimeout: l.keepAliveTimeoutMs,
    // How often Node checks the two timeouts above: often enough that a
    // slowloris client is cut close to headers_timeout.
    connectionsCheckingInterval: Math.min(1000, l.headersTimeoutMs),
    // Checked by the gateway instead, so the answer is a problem+json like every other.
    requireHostHeader: false,
    joinDuplicateHeaders: false,
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => gateway.handle(req, res);
  const tls = config.tls.listener
    ? createHttpsServer(config.tls.listener, handler, logger, { http: httpOptions })
    : undefined;
  const publicServer: Server | HttpsServer = tls ? tls.server : createServer(httpOptions, handler);
  if (tls) registerCertificateMetrics(metrics.registry, () => tls.certificates());
  publicServer.maxHeadersCount = l.maxHeaders;
  publicServer.on('checkContinue', (req, res) => gateway.handle(req, res));
  publicServer.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (socket.writable && !(socket as { _httpMessage?: unknown })._httpMessage) {
      const spec = clientErrorSpec(err.code);
      const body = problemBody(spec, undefined);
      const head = Object.entries(PROBLEM_HEADERS)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      socket.end(
        `HTTP/1.1 ${spec.status} ${spec.title}\r\n${head}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    } else {
      socket.destroy();
    }
    logger.debug({ code: err.code }, 'client protocol error');
  });
  const port = await listen(publicServer, l.port, l.host);
  let redirect: Server | undefined;
  let redirectPort: number | undefined;
  if (config.tls.redirect) {
    const r = config.tls.redirect;
    redirect = createRedirectServer({
      httpsPort: r.httpsPort === 0 ? port : r.httpsPort,
      canonicalHost: r.canonicalHost,
      allowedHosts: config.listen.hosts,
      headersTimeoutMs: l.headersTimeoutMs,
      maxHeaderBytes: l.maxHeaderBytes,
    });
    redirectPort = await listen(redirect, r.port, r.host);
  }

  let admin: AdminServer | undefined;
  let adminPort: number | undefined;
  if (config.admin.enabled) {
    admin = createAdminServer();
    admin.setCheck('store', () => store.ping());
    admin.setCheck('config', async () => {});
    for (const [name, check] of Object.entries(auth.checks)) admin.setCheck(name, check);
    if (tls) admin.setCheck('tls', () => tls.readinessCheck());
    for (const [name, check] of Object.entries(rateLimit.checks)) admin.setCheck(name, check);
    admin.setCheck('audit', () => audit.ready());
    admin.addRoute('/metrics', (req, res) => {
      // The rate limiter's registry is rebuilt with each config; it is appended at scrape time.
      Promise.all([metrics.text(), rateLimit.registry.metrics()]).then(
        ([main, limits]) => {
          res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
          res.end(req.method === 'HEAD' ? undefined : main + limits);
        },
        (err) => {
          logger.error({ err }, 'metrics collection failed');
          res.writeHead(500).end();
        },
      );
    });
    adminPort = await listen(admin.server, config.admin.port, config.admin.host);
  }
  logger.info(
    {
      port,
      adminPort,
      redirectPort,
      tls: tls !== undefined,
      routes: config.routes.length,
      store: store.location,
      mode: config.mode,
    },
    'portcullis listening',
  );

  let closing: Promise<void> | undefined;
  return {
    publicServer,
    redirectPort,
    tls,
    admin,
    port,
    adminPort,
    store,
    events,
    metrics,
    audit,
    current: () => gateway,
    authServices: () => auth.services,
    async reload(next) {
      const previous = current;
      if (tls) {
        try {
          await tls.reload();
        } catch (err) {
          logger.error(
            { reason: (err as Error).message },
            'TLS certificates could not be reloaded; the previous ones keep serving',
          );
        }
      }
      if (JSON.stringify(next.tls.listener) !== JSON.stringify(previous.tls.listener)) {
        logger.warn('TLS listener settings other than the certificate files take effect after a restart');
      }
      const nextAuth = await buildAuth(next, { logger, store, guard });
      let nextRateLimit: Awaited<ReturnType<typeof buildRateLimit>> | undefined;
      let built: Gateway;
      try {
        nextRateLimit = await buildRateLimit(next.rateLimit, { logger, store });
        built = new Gateway(next, {
          logger,
          store,
          auth: nextAuth.services,
          endpoints: nextAuth.endpoints,
          events,
          blocklist,
          rateLimit: nextRateLimit,
          audit,
        });
      } catch (err) {
        nextAuth.close();
        await nextRateLimit?.close();
        throw err;
      }
      const oldRateLimit = rateLimit;
      rateLimit = nextRateLimit;
      if (admin) {
        for (const name of Object.keys(oldRateLimit.checks)) admin.setCheck(name, undefined);
        for (const [name, check] of Object.entries(rateLimit.checks)) admin.setCheck(name, check);
      }
      void oldRateLimit
        .close()
        .catch((err) => logger.warn({ err }, 'closing the previous rate limiter failed'));
      const old = gateway;
      const oldAuth = auth;
      gateway = built;
      auth = nextAuth;
      if (admin) {
        for (const name of Object.keys(oldAuth.checks)) admin.setCheck(name, undefined);
        for (const [name, check] of Object.entries(auth.checks)) admin.setCheck(name, check);
      }
      oldAuth.close();
      current = next;
      const oldDetection = detection;
      detection = buildDetection(next);
      oldDetection.unsubscribe();
      void oldDetection.alerter.close();
      events.emit({
        type: 'admin',
        time: new Date().toISOString(),
        action: 'config.reloaded',
        actor: 'system',
        target: next.file,
        detail: { routes: next.routes.length },
      });
      if (next.listen.port !== previous.listen.port || next.listen.host !== previous.listen.host) {
        logger.warn('listener address changes take effect after a restart');
      }
      void old.close().catch((err) => logger.warn({ err }, 'closing the previous upstream pools failed'));
    },
    close(graceMs = 10_000) {
      closing ??= (async () => {
        const drained = new Promise<void>((resolve) => publicServer.close(() => resolve()));
        publicServer.closeIdleConnections();
        const timer = setTimeout(() => publicServer.closeAllConnections(), graceMs);
        timer.unref();
        await drained;
        clearTimeout(timer);
        await gateway.close(graceMs);
        auth.close();
        await rateLimit.close();
        tls?.close();
        clearInterval(storeProbe);
        detection.unsubscribe();
        await detection.alerter.close();
        blocklist.close();
        // Last: every source of events has stopped; this writes all that is queued.
        await audit.close();
        if (redirect) {
          const r = redirect;
          await new Promise<void>((resolve) => r.close(() => resolve()));
          r.closeAllConnections();
        }
        if (admin) {
          await new Promise<void>((resolve) => admin.server.close(() => resolve()));
          admin.server.closeAllConnections();
        }
        if (!options.store) await store.close();
      })();
      return closing;
    },
  };
}

/** Cache hit ratios of the authentication services, read at scrape time. */
function observeAuthCaches(metrics: Metrics, services: () => AuthServices): void {
  const stats = (s: unknown) =>
    (s as { stats?: { cacheHits?: number; cacheMisses?: number } } | undefined)?.stats;
  metrics.observeCache('tokens', () => {
    const st = stats(services().jwt);
    return { hits: st?.cacheHits ?? 0, misses: st?.cacheMisses ?? 0 };
  });
  metrics.observeCache('api_keys', () => {
    const st = stats(services().apiKeys);
    return { hits: st?.cacheHits ?? 0, misses: st?.cacheMisses ?? 0 };
  });
}
