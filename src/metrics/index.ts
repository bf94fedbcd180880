/**
 * Prometheus metrics (prom-client), fed by the security event stream and by
 * hooks sampled at scrape time, served as text on the admin listener. Other
 * parts register their own metrics on `registry` (the audit log's queue, the
 * TLS certificates' expiry) or through `registerGauge`/`registerCounter`.
 *
 * Every Metrics has its own Registry, never prom-client's global one, so
 * tests and several gateways in one process never collide; create one per
 * process (not per reload), since it also samples the Node.js process.
 *
 * Per event the work is a few Map lookups and additions: counters are plain
 * numbers held per label combination and copied into prom-client only when
 * scraped. Label values are bounded: route names come from the config and
 * error codes from the gateway, and each label keeps at most a fixed number
 * of distinct values (beyond it, `other`), so no request can mint a series.
 * Raw paths, IPs and principal ids are never labels.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { EventSink, RequestEvent, SecurityEvent } from '../events/types.js';
import { HTTP2_LIMIT_KINDS, http2Stats } from '../http2/stats.js';

/** Every metric name starts with this. */
export const METRIC_PREFIX = 'portcullis_';

/** The label value of a request that matched no route. */
export const NO_ROUTE = '(none)';
/** The label value that stands for every value beyond a label's limit. */
export const OTHER = 'other';

const METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** Labels and value of one series sampled at scrape time. */
export type Sample = readonly [labels: Readonly<Record<string, string>>, value: number];

/** What a scrape-time hook returns: one value, one per label set, or nothing (no series). */
export type Sampled = number | undefined | Iterable<Sample>;

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Node.js process and event-loop metrics (`portcullis_process_…`, `portcullis_nodejs_…`). Default true. */
  defaultMetrics?: boolean;
  /** Most distinct routes labelled; more become `other`. Default 1000. */
  maxRoutes?: number;
  /** Most distinct error codes (and shadow rules, admin actions) labelled. Default 200. */
  maxReasons?: number;
}

export interface Metrics extends EventSink {
  readonly registry: Registry;
  /** Updates counters and histograms from one event. Never throws. */
  emit(event: SecurityEvent): void;
  /**
   * A gauge sampled at each scrape. `collect` runs synchronously during the
   * scrape; if it throws, the gauge has no value that time.
   */
  registerGauge(name: string, help: string, collect: () => Sampled, labelNames?: readonly string[]): void;
  /** A counter whose running total is read from elsewhere (a stats object) at each scrape. */
  registerCounter(name: string, help: string, collect: () => Sampled, labelNames?: readonly string[]): void;
  /** `portcullis_cache_{hits,misses}_total{cache}` and `portcullis_cache_hit_ratio{cache}` from a cache's counters. */
  observeCache(cache: string, stats: () => { hits: number; misses: number }): void;
  /** `portcullis_dependency_up{dependency}`: 1 when `up()` says so, else 0 (Redis, JWKS, the store…). */
  observeDependency(dependency: string, up: () => boolean): void;
  /** The exposition text. */
  text(): Promise<string>;
  /** `Content-Type` of the exposition text. */
  readonly contentType: string;
  /** Serves `GET`/`HEAD /metrics`; for the admin listener. */
  handler(req: IncomingMessage, res: ServerResponse): void;
}

/** Keeps at most `limit` distinct values; beyond it every new value reads as `other`. */
class BoundedLabel {
  private readonly seen = new Set<string>();
  constructor(private readonly limit: number) {}
  value(text: string): string {
    if (this.seen.has(text)) return text;
    if (this.seen.size >= this.limit) return OTHER;
    this.seen.add(text);
    return text;
  }
}

interface Cell {
  labels: Record<string, string>;
  value: number;
}

type Node = Map<string, Node | Cell>;

/**
 * A counter's series as plain numbers, found through one Map per label, and
 * copied into the prom-client Counter at scrape time.
 */
class CounterCells {
  private readonly root: Node = new Map();
  private readonly cells: Cell[] = [];

  constructor(
    registry: Registry,
    name: string,
    help: string,
    private readonly labelNames: readonly string[],
  ) {
    const cells = this.cells;
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const cell of cells) this.inc(cell.labels, cell.value);
      },
    });
  }

  /** Adds `n` to the series with these label values, in `labelNames` order. */
  add(n: number, a: string, b?: string, c?: string, d?: string): void {
    let node: Node = this.root;
    const last = this.labelNames.length - 1;
    for (let i = 0; i < last; i++) {
      const key = (i === 0 ? a : i === 1 ? b : c) as string;
      let next = node.get(key) as Node | undefined;
      if (next === undefined) {
        next = new Map();
        node.set(key, next);
      }
      node = next;
    }
    const key = (last === 0 ? a : last === 1 ? b : last === 2 ? c : d) as string;
    let cell = node.get(key) as Cell | undefined;
    if (cell === undefined) {
      const values = [a, b, c, d];
      cell = {
        labels: Object.fromEntries(this.labelNames.map((l, i) => [l, values[i] as string])),
        value: 0,
      };
      node.set(key, cell);
      this.cells.push(cell);
    }
    cell.value += n;
  }
}

/** One route's histogram series as plain numbers: counts per bucket (not cumulative), sum and count. */
class HistogramCell {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly route: string,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]!++;
        break;
      }
    }
    this.sum += value;
    this.count++;
  }
}

/**
 * A histogram by route, observed as plain numbers and copied into the
 * prom-client Histogram at scrape time, as {@link CounterCells} does for
 * counters: prom-client's own `observe` builds a labels object and a hash
 * string per call (about 0.5 µs; this is about 0.02 µs, twice per request).
 * The copy writes the series the way prom-client 15's `observe` stores them
 * (`hashMap` entries of labels, per-bound counts, sum and count).
 */
class HistogramCells {
  private readonly cells: HistogramCell[] = [];

  constructor(
    registry: Registry,
    name: string,
    help: string,
    private readonly buckets: readonly number[],
  ) {
    const cells = this.cells;
    new Histogram({
      name,
      help,
      labelNames: ['route'],
      buckets: [...buckets],
      registers: [registry],
      collect() {
        const series: Record<string, unknown> = {};
        for (const cell of cells) {
          const bucketValues: Record<number, number> = {};
          for (let i = 0; i < buckets.length; i++) bucketValues[buckets[i]!] = cell.counts[i]!;
          series[`route:${cell.route}`] = {
            labels: { route: cell.route },
            bucketValues,
            sum: cell.sum,
            count: cell.count,
          };
        }
        (this as unknown as { hashMap: Record<string, unknown> }).hashMap = series;
      },
    });
  }

  /** A new series for a route (the caller keeps one per route). */
  cell(route: string): HistogramCell {
    const cell = new HistogramCell(route, this.buckets);
    this.cells.push(cell);
    return cell;
  }
}

/** Gateway time buckets (seconds): the gateway's own work is sub-millisecond to tens of ms. */
const GATEWAY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Upstream time buckets (seconds): an API answers in milliseconds to its 30 s timeout. */
const UPSTREAM_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The first dotted part of an error code: `auth` for `auth.invalid_credentials`. */
function area(reason: string): string {
  const dot = reason.indexOf('.');
  return dot === -1 ? reason : reason.slice(0, dot);
}

function checkName(name: string): void {
  if (!name.startsWith(METRIC_PREFIX)) throw new Error(`metric ${name} must start with ${METRIC_PREFIX}`);
}

/** Builds the metrics and their registry. */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  const routes = new BoundedLabel(options.maxRoutes ?? 1000);
  const reasons = new BoundedLabel(options.maxReasons ?? 200);
  const rules = new BoundedLabel(options.maxReasons ?? 200);
  const actions = new BoundedLabel(options.maxReasons ?? 200);
  const counter = (name: string, help: string, labels: readonly string[]) =>
    new CounterCells(registry, `${METRIC_PREFIX}${name}`, help, labels);

  const requests = counter('requests_total', 'Requests answered, by route, method, status and decision.', [
    'route',
    'method',
    'status',
    'decision',
  ]);
  const authFailures = counter('auth_failures_total', 'Authentication failures, by reason.', ['reason']);
  const authzDenials = counter('authz_denials_total', 'Authorization denials, by route and reason.', [
    'route',
    'reason',
  ]);
  const inputRejections = counter(
    'input_rejections_total',
    'Requests rejected by validation (input.invalid) or injection detection (input.rejected), by route and reason.',
    ['route', 'reason'],
  );
  const rateLimitHits = counter('rate_limit_hits_total', 'Requests refused by rate limits and quotas.', [
    'route',
    'reason',
  ]);
  const upstreamErrors = counter(
    'upstream_errors_total',
    'Upstream calls that failed (upstream.unavailable) or timed out (upstream.timeout).',
    ['route', 'reason'],
  );
  const blocked = counter('blocked_requests_total', 'Requests refused because their source is blocked.', [
    'route',
  ]);
  const shadow = counter(
    'shadow_denials_total',
    'Allowed requests that a rule in shadow mode would have denied.',
    ['route', 'rule'],
  );
  const admin = counter(
    'admin_events_total',
    'Administrative events (keys, config, alerts, blocks), by action.',
    ['action'],
  );
  const gatewayTime = new HistogramCells(
    registry,
    `${METRIC_PREFIX}gateway_duration_seconds`,
    "Time spent in the gateway itself (total minus the upstream's time), by route.",
    GATEWAY_BUCKETS,
  );
  const upstreamTime = new HistogramCells(
    registry,
    `${METRIC_PREFIX}upstream_duration_seconds`,
    'Time the upstream took to answer, by route.',
    UPSTREAM_BUCKETS,
  );
  // One cell per route and histogram, found once per request.
  type Observer = { observe(value: number): void };
  const children = new Map<string, { gateway: Observer; upstream: Observer }>();
  const timers = (route: string) => {
    let child = children.get(route);
    if (child === undefined) {
      child = { gateway: gatewayTime.cell(route), upstream: upstreamTime.cell(route) };
      children.set(route, child);
    }
    return child;
  };

  const onRequest = (e: RequestEvent) => {
    const route = e.route === undefined ? NO_ROUTE : routes.value(e.route);
    const method = METHODS.has(e.method) ? e.method : OTHER;
    const status = e.status >= 100 && e.status <= 599 ? String(e.status) : OTHER;
    requests.add(1, route, method, status, e.decision);
    const total = e.latencyMs / 1000;
    const timer = timers(route);
    if (e.upstreamMs === undefined) {
      if (Number.isFinite(total)) timer.gateway.observe(Math.max(0, total));
    } else {
      const upstream = e.upstreamMs / 1000;
      if (Number.isFinite(upstream)) {
        timer.upstream.observe(Math.max(0, upstream));
        if (Number.isFinite(total)) timer.gateway.observe(Math.max(0, total - upstream));
      }
    }
    if (e.reason !== 'ok') {
      const reason = reasons.value(e.reason);
      switch (area(e.reason)) {
        case 'auth':
          authFailures.add(1, reason);
          break;
        case 'authz':
          authzDenials.add(1, route, reason);
          break;
        case 'input':
          inputRejections.add(1, route, reason);
          break;
        case 'rate_limit':
        case 'quota':
          rateLimitHits.add(1, route, reason);
          break;
        case 'upstream':
          upstreamErrors.add(1, route, reason);
          break;
        case 'client':
          if (e.reason === 'client.blocked') blocked.add(1, route);
          break;
      }
    }
    for (const rule of e.shadowDenials) shadow.add(1, route, rules.value(rule));
  };

  const sampled = (collect: () => Sampled) =>
    function (this: Gauge | Counter) {
      let value: Sampled;
      try {
        value = collect();
      } catch {
        value = undefined;
      }
      this.reset();
      if (value === undefined) return;
      if (typeof value === 'number') {
        if (this instanceof Gauge) this.set(value);
        else this.inc(Math.max(0, value));
        return;
      }
      for (const [labels, v] of value) {
        if (this instanceof Gauge) this.set(labels, v);
        else this.inc(labels, Math.max(0, v));
      }
    };

  const registerGauge: Metrics['registerGauge'] = (name, help, collect, labelNames = []) => {
    checkName(name);
    new Gauge({ name, help, labelNames, registers: [registry], collect: sampled(collect) });
  };
  const registerCounter: Metrics['registerCounter'] = (name, help, collect, labelNames = []) => {
    checkName(name);
    new Counter({ name, help, labelNames, registers: [registry], collect: sampled(collect) });
  };

  /** A family fed by several named sources, created with its first source. */
  const family = <T>(register: (sources: Map<string, T>) => void) => {
    let sources: Map<string, T> | undefined;
    return (name: string, source: T) => {
      if (sources === undefined) {
        sources = new Map();
        register(sources);
      }
      sources.set(name, source);
    };
  };
  const each = function* <T>(sources: Map<string, T>, label: string, value: (s: T) => number | undefined) {
    for (const [name, source] of sources) {
      let v: number | undefined;
      try {
        v = value(source);
      } catch {
        v = undefined;
      }
      if (v !== undefined && Number.isFinite(v)) yield [{ [label]: name }, v] as const;
    }
  };

  const caches = family<() => { hits: number; misses: number }>((sources) => {
    registerCounter(
      `${METRIC_PREFIX}cache_hits_total`,
      'Cache hits (tokens, keys, JWKS…), by cache.',
      () => each(sources, 'cache', (s) => s().hits),
      ['cache'],
    );
    registerCounter(
      `${METRIC_PREFIX}cache_misses_total`,
      'Cache misses, by cache.',
      () => each(sources, 'cache', (s) => s().misses),
      ['cache'],
    );
    registerGauge(
      `${METRIC_PREFIX}cache_hit_ratio`,
      'Hits / (hits + misses) since start, by cache.',
      () =>
        each(sources, 'cache', (s) => {
          const { hits, misses } = s();
          return hits + misses === 0 ? undefined : hits / (hits + misses);
        }),
      ['cache'],
    );
  });
  const dependencies = family<() => boolean>((sources) =>
    registerGauge(
      `${METRIC_PREFIX}dependency_up`,
      'Whether a dependency (store, Redis, JWKS…) is reachable: 1 or 0.',
      () => each(sources, 'dependency', (s) => (s() ? 1 : 0)),
      ['dependency'],
    ),
  );

  // HTTP/2 on the TLS listener (src/http2/server.ts): process-wide counts, read at scrape time.
  registerCounter(
    `${METRIC_PREFIX}http2_connections_total`,
    'Client connections that negotiated HTTP/2 (ALPN h2).',
    () => http2Stats.connections,
  );
  registerCounter(
    `${METRIC_PREFIX}http2_streams_total`,
    'HTTP/2 streams (requests) opened by clients.',
    () => http2Stats.streams,
  );
  registerCounter(
    `${METRIC_PREFIX}http2_limited_total`,
    'HTTP/2 connections closed or streams reset by a limit of listen.tls.http2, by kind (rapid_reset, control_frame_flood, session_error, stream_idle_timeout, request_timeout, idle_timeout).',
    () => HTTP2_LIMIT_KINDS.map((kind) => [{ kind }, http2Stats.limited[kind]] as const),
    ['kind'],
  );

  const text = () => registry.metrics();

  return {
    registry,
    contentType: registry.contentType,
    emit(event) {
      try {
        if (event.type === 'request') onRequest(event);
        else admin.add(1, actions.value(event.action));
      } catch {
        // A malformed event must not take the request path down; it is simply not counted.
      }
    },
    registerGauge,
    registerCounter,
    observeCache: (cache, stats) => caches(cache, stats),
    observeDependency: (dependency, up) => dependencies(dependency, up),
    text,
    handler(req, res) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
        res.end('Method not allowed.\n');
        return;
      }
      text().then(
        (body) => {
          res.writeHead(200, {
            'content-type': registry.contentType,
            'cache-control': 'no-store',
            'x-content-type-options': 'nosniff',
            'content-length': Buffer.byteLength(body),
          });
          res.end(req.method === 'HEAD' ? undefined : body);
        },
        () => {
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
          res.end('Metrics are unavailable.\n');
        },
      );
    },
  };
}
