/**
 * The compiled rate-limit settings: what `compileRateLimit` makes of the
 * `rate_limit` section and of each route's `rate_limits` and `cost`. Units
 * are parsed, names are resolved, and every route carries the full list of
 * what applies to it, so nothing is looked up per request.
 */

/**
 * One part of a limit's key, as written in the config:
 * `ip`, `api_key`, `client`, `principal`, `tenant`, `route`,
 * `header:NAME` or `claim:PATH`.
 */
export type KeyPart =
  | { kind: 'ip' | 'api_key' | 'client' | 'principal' | 'tenant' | 'route' }
  | { kind: 'header'; name: string }
  | { kind: 'claim'; path: readonly string[] };

/** `enforce` refuses; `shadow` only counts and logs what it would have refused. */
export type LimitMode = 'enforce' | 'shadow';

interface Common {
  /** The name in the config, or `<route name>#<index>` for an inline entry. */
  name: string;
  /** The key parts; empty for one counter shared by every request (a global limit). */
  key: readonly KeyPart[];
  mode: LimitMode;
}

/** A rate: `count` per `periodMs`, with up to `burst` at once (GCRA). */
export interface LimitSettings extends Common {
  type: 'rate';
  count: number;
  periodMs: number;
  burst: number;
}

/** A daily or monthly quota, counted in the store (UTC calendar periods). */
export interface QuotaSettings extends Common {
  type: 'quota';
  limit: number;
  period: 'day' | 'month';
}

/** At most `max` requests of one key in flight on this instance. */
export interface ConcurrencySettings extends Common {
  type: 'concurrency';
  max: number;
}

export type AnyLimitSettings = LimitSettings | QuotaSettings | ConcurrencySettings;

export interface RedisSettings {
  /** The resolved URL (`redis://…` or `rediss://…`). */
  url: string;
  onFailure: 'fail-open' | 'fail-closed';
  /** Instances sharing the Redis: a fail-open instance allows 1/n of each rate on its own. */
  expectedInstances: number;
  keyPrefix: string;
  /** Longest wait for one Redis answer before the failure policy applies. */
  timeoutMs: number;
  connectTimeoutMs: number;
}

/** The compiled `rate_limit` section (`GatewayConfig.rateLimit`). */
export interface RateLimitSettings {
  backend: 'memory' | 'redis';
  redis: RedisSettings | undefined;
  /** Most keys remembered per limit (memory backend and fail-open fallback), and per quota. */
  maxKeys: number;
  /** IPv6 clients are keyed by this prefix length (64: one /64 is one client). */
  ipv6Prefix: number;
  limits: Readonly<Record<string, LimitSettings>>;
  quotas: Readonly<Record<string, QuotaSettings>>;
  concurrency: Readonly<Record<string, ConcurrencySettings>>;
  /** Most requests in flight on this instance, whatever the route; undefined for no cap. */
  globalConcurrency: number | undefined;
  loadShedding: { maxEventLoopDelayMs: number } | undefined;
  /** Retry-After for 503 answers (overload, Redis down with fail-closed), in seconds. */
  retryAfterSeconds: number;
  /** How often quota usage is written to the store. */
  quotaFlushMs: number;
  /**
   * The `all_routes` entries: what applies to requests no route takes too
   * (unrouted ones, CORS preflights, the gateway's own endpoints).
   */
  everyRoute: RouteRateLimits | undefined;
}

/** What applies to one route (`RouteSettings.rateLimits`), names resolved. */
export interface RouteRateLimits {
  limits: readonly LimitSettings[];
  quotas: readonly QuotaSettings[];
  concurrency: readonly ConcurrencySettings[];
  /** Units one request takes from every limit and quota of the route (`cost`). */
  cost: number;
}
