/**
 * A running Portcullis: the public listener, the admin listener, the store
 * and the current gateway, with atomic reload and graceful shutdown.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { AdminServer, CheckResult } from './admin/server.js';
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
import {
  answerMetricsRequests,
  clusterGuardPeers,
  clusterMetrics,
  clusterRateLimits,
  clusterWorkersCheck,
  servesAdmin,
  workerNumber,
} from './cluster.js';
import type { GatewayConfig } from './config/types.js';
import { ERRORS, type ErrorSpec, PROBLEM_HEADERS, problemBody } from './errors.js';
import { EventBus } from './events/types.js';
import { Gateway } from './gateway.js';
import { ipKey } from './http/client-ip.js';
import type { Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics/index.js';
import { type ClientWriteLimits, clientWriteStats, setClientWriteLimits } from './proxy/client-writes.js';
import { buildRateLimit } from './ratelimit/index.js';
import { openRevocations, signalBlockChange } from './revocation/index.js';
import { createSecretScanning } from './secret-scanning/index.js';
import { openStore } from './store/index.js';
import type { Store } from './store/types.js';
import type { HttpsListener } from './tls/listener.js';
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
  /**
   * Stops accepting and drains (see {@link createDrainTracker}): requests in
   * flight, and those arriving on kept-alive connections, are answered with
   * `Connection: close`; idle connections are closed at once; it goes on as
   * soon as nothing is in flight, or cuts what still runs after `graceMs`
   * (default `listen.limits.drain_timeout`). Then closes everything.
   */
  close(graceMs?: number): Promise<void>;
  /** Requests answered while draining, and cut at its deadline. */
  drainStats(): DrainStats;
}

export interface StartOptions {
  logger: Logger;
  /** Use this store instead of opening the configured one (tests). */
  store?: Store;
  /** Use this event bus (tests subscribe before the first request). */
  events?: EventBus;
  /** Loads the configuration again for a reload through the admin API (default: its file, as SIGHUP). */
  loadConfig?: () => Promise<GatewayConfig>;
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
  const optional = await loadOptionalModules(config);
  const store =
    options.store ??
    (await openStore({
      url: config.store.url,
      dataDir: config.store.dataDir,
      onError: (err) => logger.error({ err }, 'store connection error'),
    }));
  if (!options.store) await store.migrate();

  // One keying of client addresses for lockout, blocks, anomaly detection (and rate limits, from config).
  const ipv6Prefix = config.listen.ipv6Prefix;
  const keyIp = (ip: string) => ipKey(ip, ipv6Prefix);
  const guard = createBruteForceGuard(config.auth.bruteForce, {
    ipv6Prefix,
    peers: clusterGuardPeers(),
    onLockout: (key, until) =>
      logger.warn({ key, until: new Date(until).toISOString() }, 'brute-force lockout'),
  });
  const events = options.events ?? new EventBus((err) => logger.error({ err }, 'an event subscriber failed'));
  // One metrics registry per process: it samples the Node.js process itself.
  const metrics = createMetrics();
  events.subscribe(metrics);
  // OpenTelemetry spans, built from each request's event; telemetry.* is read at start (a reload keeps it).
  const traces = config.telemetry?.traces.enabled
    ? optional.traces!.createTraceSink(config.telemetry.traces, logger)
    : undefined;
  if (traces) events.subscribe(traces);
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
    onEvent: (e) => {
      events.emit(e);
      // Other instances reload their blocks at once instead of at the next refresh.
      if (e.action === 'block.added' || e.action === 'block.lifted') {
        signalBlockChange(store, e.target ?? '', e.actor).catch((err: unknown) =>
          logger.warn({ err }, 'could not tell other instances about a block'),
        );
      }
    },
    logger,
    ipKey: keyIp,
  });
  await blocklist.start();
  // The kill switch: token revocations, and API key and block changes from other instances.
  const revocations = await openRevocations({
    db: store,
    storeUrl: config.store.url,
    settings: config.auth.revocations,
    logger,
    onKey: (id) => auth.services.apiKeys?.invalidate?.(id),
    onBlock: () => {
      blocklist.refresh().catch((err: unknown) => logger.warn({ err }, 'blocklist refresh failed'));
    },
  });
  const buildDetection = (cfg: GatewayConfig) => {
    const alerter = createAlerter({
      store: createAlertStore(store),
      settings: cfg.alerts,
      blocklist,
      blockPolicies: blockPolicies(cfg.anomaly),
      onEvent: (e) => events.emit(e),
      logger,
    });
    const anomaly = createAnomalyEngine(cfg.anomaly, { onFinding: (f) => alerter.raise(f), ipKey: keyIp });
    return { alerter, anomaly, unsubscribe: events.subscribe(anomaly) };
  };
  let detection = buildDetection(config);
  // Leaked keys reported by a secret scanner: revoked, audited and alerted (off by default).
  const secretScanning = createSecretScanning({
    db: store,
    logger,
    invalidate: (id) => auth.services.apiKeys?.invalidate?.(id),
    emit: (e) => events.emit(e),
    alert: (f) => detection.alerter.raise(f),
  });
  observeAlerting(metrics, {
    anomaly: () => detection.anomaly,
    alerter: () => detection.alerter,
    blocklist: () => blocklist,
  });
  let auth = await buildAuth(config, { logger, store, guard, revocations: revocations.registry });
  // Never throws for a Redis that is down: the configured failure policy answers.
  let rateLimit = await buildRateLimit(config.rateLimit, { logger, store, cluster: clusterRateLimits() });
  let gateway = new Gateway(config, {
    logger,
    store,
    auth: auth.services,
    endpoints: [...auth.endpoints, ...secretScanning.endpoints(config)],
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
  metrics.registerCounter(
    'portcullis_drain_cut_requests_total',
    'Requests still running at the end of a shutdown drain (listen.limits.drain_timeout), cut.',
    () => drain.stats.cut,
  );
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
  const drain = createDrainTracker();
  // Follows reloads: a client that stops reading is closed after write_timeout (src/proxy/client-writes.ts).
  let writeLimits = clientWriteLimitsOf(config);
  metrics.registerCounter(
    'portcullis_client_write_timeouts_total',
    'Client connections closed because they took none of their response for listen.limits.write_timeout.',
    () => clientWriteStats.timedOut,
  );
  metrics.registerCounter(
    'portcullis_client_write_upstream_aborts_total',
    'Upstream requests aborted because their client stopped reading (the upstream connection is freed).',
    () => clientWriteStats.upstreamAborted,
  );
  metrics.registerCounter(
    'portcullis_client_write_contended_aborts_total',
    'Of those, aborted after listen.limits.contended_write_timeout because other requests waited for a connection to the same upstream.',
    () => clientWriteStats.contended,
  );
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    drain.track(res);
    setClientWriteLimits(res, writeLimits);
    gateway.handle(req, res);
  };
  const tls = config.tls.listener
    ? optional.tls!.createHttpsServer(config.tls.listener, handler, logger, { http: httpOptions })
    : undefined;
  const publicServer: Server | HttpsServer = tls ? tls.server : createServer(httpOptions, handler);
  if (tls) registerCertificateMetrics(metrics.registry, () => tls.certificates());
  publicServer.maxHeadersCount = l.maxHeaders;
  publicServer.on('checkContinue', handler);
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
    redirect = optional.tls!.createRedirectServer({
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
  // In cluster mode worker 1 alone runs the admin listener; /metrics there covers every worker.
  answerMetricsRequests(async () => [
    ...(await metrics.registry.getMetricsAsJSON()),
    ...(await rateLimit.registry.getMetricsAsJSON()),
  ]);
  if (config.admin.enabled && servesAdmin()) {
    admin = optional.adminServer!.createAdminServer({ tls: config.admin.tls });
    // A shared store that is down is the same for every instance: a note, not a
    // failure, or a load balancer would take the whole fleet out at once. What
    // depends on it fails by its own policy (audit back-pressure, key lookups).
    admin.setCheck('store', () =>
      store.ping().then(
        () => undefined,
        (err: Error) => `unreachable (${err.message || 'no answer'}); serving by each feature's own policy`,
      ),
    );
    admin.setCheck('config', async () => {});
    admin.setCheck('listener', async () => {
      if (closing !== undefined) throw new Error('draining: shutting down');
      if (!publicServer.listening) throw new Error('the public listener is not listening');
    });
    for (const [name, check] of Object.entries(auth.checks)) admin.setCheck(name, check);
    if (tls) admin.setCheck('tls', () => tls.readinessCheck());
    for (const [name, check] of Object.entries(rateLimit.checks)) admin.setCheck(name, check);
    admin.setCheck('audit', () => audit.ready().then(() => audit.degraded()));
    // The admin listener is worker 1's alone: its /readyz also says whether the other workers run.
    if (workerNumber() !== undefined) admin.setCheck('workers', clusterWorkersCheck);
    // Readiness in metrics: each check's state at the last scrape (run just before it).
    let checkStates = new Map<string, CheckResult>();
    const STATES = ['up', 'degraded', 'down'] as const;
    metrics.registerGauge(
      'portcullis_ready',
      'Whether /readyz would answer 200 (1) or 503 (0), at this scrape.',
      () => ([...checkStates.values()].some((r) => r.state === 'down') ? 0 : 1),
    );
    metrics.registerGauge(
      'portcullis_readiness_check',
      'Each readiness check at this scrape: 1 for its state (up; degraded: ready with a note, e.g. a shared store down under a policy that keeps serving; down: not ready), 0 for the others.',
      () =>
        [...checkStates].flatMap(([check, r]) =>
          STATES.map((state) => [{ check, state }, r.state === state ? 1 : 0] as const),
        ),
      ['check', 'state'],
    );
    admin.addRoute('/metrics', (req, res) => {
      // The rate limiter's registry is rebuilt with each config; it is appended at scrape time.
      admin!
        .evaluate()
        .then((states) => {
          checkStates = states;
        })
        .then(() =>
          workerNumber() === undefined
            ? Promise.all([metrics.text(), rateLimit.registry.metrics()]).then(
                ([main, limits]) => main + limits,
              )
            : clusterMetrics(),
        )
        .then(
          (text) => {
            res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
            res.end(req.method === 'HEAD' ? undefined : text);
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

  /** Serves the admin listener's renewed certificate, key or client CA; warns for what needs a restart. */
  const reloadAdminTls = (
    before: GatewayConfig['admin']['tls'],
    after: GatewayConfig['admin']['tls'],
  ): void => {
    if (admin === undefined) return;
    if (
      (before === undefined) !== (after === undefined) ||
      (before?.clientCa === undefined) !== (after?.clientCa === undefined)
    ) {
      logger.warn('turning admin.tls or admin.tls.client_ca on or off takes effect after a restart');
      return;
    }
    if (after === undefined) return;
    try {
      admin.reloadTls(after);
    } catch (err) {
      logger.error(
        { reason: (err as Error).message },
        "the admin listener's TLS files could not be reloaded; the previous ones keep serving",
      );
    }
  };
  let closing: Promise<void> | undefined;
  const running: Running = {
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
      reloadAdminTls(previous.admin.tls, next.admin.tls);
      if (JSON.stringify(next.tls.listener) !== JSON.stringify(previous.tls.listener)) {
        logger.warn('TLS listener settings other than the certificate files take effect after a restart');
      }
      const nextAuth = await buildAuth(next, { logger, store, guard, revocations: revocations.registry });
      let nextRateLimit: Awaited<ReturnType<typeof buildRateLimit>> | undefined;
      let built: Gateway;
      try {
        nextRateLimit = await buildRateLimit(next.rateLimit, { logger, store, cluster: clusterRateLimits() });
        built = new Gateway(next, {
          logger,
          store,
          auth: nextAuth.services,
          endpoints: [...nextAuth.endpoints, ...secretScanning.endpoints(next)],
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
      writeLimits = clientWriteLimitsOf(next);
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
      if (JSON.stringify(next.telemetry) !== JSON.stringify(previous.telemetry)) {
        logger.warn('telemetry changes take effect after a restart');
      }
      void old.close().catch((err) => logger.warn({ err }, 'closing the previous upstream pools failed'));
    },
    drainStats: () => ({ ...drain.stats }),
    close(graceMs = config.listen.drainTimeoutMs) {
      closing ??= (async () => {
        const started = Date.now();
        const closed = new Promise<void>((resolve) => publicServer.close(() => resolve()));
        const cut = await drain.drain(publicServer, graceMs);
        if (cut > 0) {
          logger.warn(
            { cut, graceMs },
            'requests still running at the end of the drain were cut (listen.limits.drain_timeout)',
          );
        }
        logger.info({ ms: Date.now() - started, served: drain.stats.servedWhileDraining, cut }, 'drained');
        await closed;
        await gateway.close(Math.max(0, graceMs - (Date.now() - started)));
        auth.close();
        await rateLimit.close();
        tls?.close();
        clearInterval(storeProbe);
        detection.unsubscribe();
        await detection.alerter.close();
        blocklist.close();
        await revocations.close();
        // Last: every source of events has stopped; this writes all that is queued.
        await audit.close();
        // Flushes queued spans; bounded, so a collector that is down cannot hold the exit.
        await traces?.close();
        // Closed before waiting: an idle kept-alive connection (a probe, a scrape) must not hold the exit.
        if (redirect) {
          const r = redirect;
          const done = new Promise<void>((resolve) => r.close(() => resolve()));
          r.closeAllConnections();
          await done;
        }
        if (admin) {
          const done = new Promise<void>((resolve) => admin.server.close(() => resolve()));
          admin.server.closeAllConnections();
          await done;
        }
        if (!options.store) await store.close();
      })();
      return closing;
    },
  };
  if (admin && optional.adminApi) {
    const { mountAdminApi, reloadFromFile } = optional.adminApi;
    mountAdminApi({
      admin,
      store,
      config: () => current,
      blocklist,
      events,
      audit,
      authServices: () => auth.services,
      reload: async () => running.reload(await (options.loadConfig?.() ?? reloadFromFile(current))),
      logger,
    });
  }
  return running;
}

/**
 * The modules of features that a configuration may leave off, imported only when it turns them
 * on: the OpenTelemetry SDK and exporter (telemetry.traces), the admin listener and the admin API
 * with the web console (admin.enabled, admin.api.enabled), and the TLS listener (listen.tls,
 * tls.redirect). A gateway that does not use them would otherwise carry their code, and their
 * dependencies' code, in its heap: with ioredis (ratelimit/redis.ts) and the CLI's subcommands, 3.6 MiB of live heap
 * and 3 to 7 MiB of RSS on the peer bench's configs.
 *
 * Each of these settings is read at start only (a reload keeps the listeners and the trace sink),
 * so one import at start is enough; it happens before anything listens, so a broken installation
 * fails the start with the module's own error (as a static import did), never later, on a reload.
 */
async function loadOptionalModules(config: GatewayConfig) {
  const adminOn = config.admin.enabled && servesAdmin();
  const [traces, tls, adminServer, adminApi] = await Promise.all([
    config.telemetry?.traces.enabled ? import('./telemetry/traces.js') : undefined,
    config.tls.listener || config.tls.redirect ? import('./tls/listener.js') : undefined,
    adminOn ? import('./admin/server.js') : undefined,
    adminOn && config.admin.api.enabled ? import('./admin/api/index.js') : undefined,
  ]);
  return { traces, tls, adminServer, adminApi };
}

function clientWriteLimitsOf(config: GatewayConfig): ClientWriteLimits {
  return {
    writeTimeoutMs: config.listen.writeTimeoutMs,
    writeBufferBytes: config.listen.writeBufferBytes,
    contendedWriteTimeoutMs: config.listen.contendedWriteTimeoutMs,
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

/** What a drain did. */
export interface DrainStats {
  /** Requests in flight now. */
  inFlight: number;
  /** Requests that completed after the drain started. */
  servedWhileDraining: number;
  /** Requests still running at the drain's deadline, cut. */
  cut: number;
}

/** One turn of the event loop: data already received on a socket is parsed before it. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));

/**
 * Tracks the requests in flight on the public listener and drains it.
 *
 * Node's own `server.close()` stops accepting and closes the connections idle
 * at that instant, but a kept-alive connection with a request in flight goes
 * on with `Connection: keep-alive` and stays open after it, until its
 * keep-alive timeout; so the server only closed at the grace deadline, with a
 * reset for whatever was running then. Here, once draining:
 * - every response whose head is not yet written gets `Connection: close`
 *   (`shouldKeepAlive = false`), in flight or arriving later on a kept-alive
 *   connection, so the client learns not to reuse the connection and Node
 *   ends it after the response;
 * - idle connections are closed at once, and again each time a request ends
 *   (a response whose head went out with keep-alive leaves its connection
 *   idle), one event-loop turn later, so that a request whose bytes have
 *   already arrived is parsed (and then served) rather than reset;
 * - the drain ends as soon as nothing is in flight; at the deadline the rest
 *   is cut (`closeAllConnections`) and counted.
 */
export function createDrainTracker() {
  const inflight = new Set<ServerResponse>();
  const stats: DrainStats = { inFlight: 0, servedWhileDraining: 0, cut: 0 };
  let draining = false;
  let changed: (() => void) | undefined;

  return {
    stats: stats as Readonly<DrainStats>,
    /** Call first thing for each request. */
    track(res: ServerResponse): void {
      if (draining) res.shouldKeepAlive = false;
      inflight.add(res);
      stats.inFlight = inflight.size;
      res.once('close', () => {
        inflight.delete(res);
        stats.inFlight = inflight.size;
        if (draining) {
          stats.servedWhileDraining++;
          changed?.();
        }
      });
    },
    /** Drains `server` (already `close()`d by the caller); resolves with the number of requests cut. */
    async drain(server: Server | HttpsServer, graceMs: number): Promise<number> {
      draining = true;
      for (const res of inflight) if (!res.headersSent) res.shouldKeepAlive = false;
      const deadline = Date.now() + graceMs;
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
        timer.unref();
      });
      let timedOut = false;
      void expired.then(() => {
        timedOut = true;
        changed?.();
      });
      try {
        for (;;) {
          await nextTurn();
          server.closeIdleConnections();
          if (inflight.size === 0 || timedOut || Date.now() >= deadline) break;
          await new Promise<void>((resolve) => {
            changed = resolve;
          });
          changed = undefined;
        }
      } finally {
        clearTimeout(timer);
        changed = undefined;
      }
      const cut = inflight.size;
      stats.cut += cut;
      server.closeAllConnections();
      return cut;
    },
  };
}
