/**
 * The rate-limit service: everything that outlives one route's stage — the
 * backend (memory or Redis), the quota counter, the in-flight tables, the
 * overload monitor and the counters behind the metrics. Built once per
 * gateway from `config.rateLimit`, shared by the stages of every route,
 * closed when the gateway is replaced or stops.
 */
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '../log.js';
import type { Store } from '../store/types.js';
import { ClusterLimiter, type LimitTransport } from './cluster-limiter.js';
import { InFlight } from './concurrency.js';
import { type Limiter, MemoryLimiter } from './limiter.js';
import { OverloadMonitor } from './overload.js';
import { QuotaCounter } from './quota.js';
import { RedisLimiter } from './redis.js';
import type { RateLimitSettings } from './types.js';

/** Decisions of one limit, quota or concurrency limit, read by the metrics on scrape. */
export interface DecisionStats {
  allowed: number;
  limited: number;
  shadowLimited: number;
}

export interface RateLimitServiceOptions {
  logger: Logger;
  /** Needed when quotas are configured. */
  store: Store | undefined;
  /** The memory backend's clock (monotonic ms); tests pass their own. */
  now?: () => number;
  /** Wall clock (epoch ms) for quota periods; tests pass their own. */
  wallClock?: () => number;
  /**
   * In cluster mode: the number of workers and the channel to the primary,
   * which then makes every memory-backend decision for the whole cluster.
   */
  cluster?: { workers: number; transport: LimitTransport } | undefined;
}

export class RateLimitService {
  readonly limiter: Limiter;
  /** The memory backend, or with Redis the fail-open fallback (each limit divided by the instance count). */
  readonly memory: MemoryLimiter;
  readonly redis: RedisLimiter | undefined;
  /** In cluster mode with the memory backend: the limiter that asks the primary. */
  readonly cluster: ClusterLimiter | undefined;
  private quotaCounter: QuotaCounter | undefined;
  private readonly store: Store | undefined;
  private readonly wallClock: (() => number) | undefined;
  /** Per-key in-flight requests (concurrency limits). */
  readonly inFlight = new InFlight();
  /** Requests in flight on this instance past the admission stage. */
  globalInFlight = 0;
  readonly overload: OverloadMonitor | undefined;
  readonly stats = new Map<string, DecisionStats>();
  readonly shed = { eventLoop: 0, inFlight: 0 };
  readonly registry = new Registry();
  readonly logger: Logger;

  constructor(
    readonly settings: RateLimitSettings,
    options: RateLimitServiceOptions,
  ) {
    this.logger = options.logger;
    const now = options.now ?? (() => performance.now());
    if (settings.backend === 'redis') {
      if (settings.redis === undefined)
        throw new Error('rate_limit.backend is redis but rate_limit.redis is not set');
      this.memory = new MemoryLimiter(settings.maxKeys, now, settings.redis.expectedInstances);
      this.redis = new RedisLimiter(settings.redis, { logger: options.logger, fallback: this.memory });
      this.limiter = this.redis;
    } else if (options.cluster !== undefined) {
      this.memory = new MemoryLimiter(settings.maxKeys, now, options.cluster.workers);
      this.cluster = new ClusterLimiter(options.cluster.transport, this.memory);
      this.limiter = this.cluster;
    } else {
      this.memory = new MemoryLimiter(settings.maxKeys, now);
      this.limiter = this.memory;
    }
    this.store = options.store;
    this.wallClock = options.wallClock;
    if (settings.loadShedding) {
      this.overload = new OverloadMonitor(settings.loadShedding.maxEventLoopDelayMs, (overloaded, delayMs) =>
        overloaded
          ? options.logger.warn({ delayMs: Math.round(delayMs) }, 'gateway overloaded: shedding load')
          : options.logger.info({ delayMs: Math.round(delayMs) }, 'gateway load back to normal'),
      );
    }
    this.registerMetrics();
  }

  /** The decision counters of a limit (created on first use, once per name). */
  statsFor(name: string): DecisionStats {
    let s = this.stats.get(name);
    if (s === undefined) {
      s = { allowed: 0, limited: 0, shadowLimited: 0 };
      this.stats.set(name, s);
    }
    return s;
  }

  /** The quota counter, made when the first route with a quota is built. */
  quotas(): QuotaCounter {
    if (this.quotaCounter === undefined) {
      if (this.store === undefined) throw new Error('rate-limit quotas need the store');
      this.quotaCounter = new QuotaCounter(this.store, {
        maxKeys: this.settings.maxKeys,
        flushMs: this.settings.quotaFlushMs,
        logger: this.logger,
        ...(this.wallClock ? { now: this.wallClock } : {}),
      });
      this.quotaCounter.start();
    }
    return this.quotaCounter;
  }

  /** Connects Redis (never failing: a down Redis is the failure policy's business) and starts the timers. */
  async start(): Promise<void> {
    this.overload?.start();
    await this.redis?.connect();
  }

  /**
   * Readiness checks for /readyz. A check resolves with a note when the
   * instance serves in a degraded way (Redis down under fail-open).
   */
  get checks(): Record<string, () => Promise<string | undefined>> {
    return this.redis ? { rate_limit_redis: () => this.redis!.check() } : {};
  }

  /** Writes pending quota usage, stops the timers and disconnects Redis. */
  async close(): Promise<void> {
    this.overload?.stop();
    await this.quotaCounter?.close();
    await this.redis?.close();
    this.cluster?.close();
  }

  private registerMetrics(): void {
    const stats = this.stats;
    const registers = [this.registry];
    new Counter({
      name: 'portcullis_rate_limit_decisions_total',
      help: 'Rate-limit, quota and concurrency decisions, by limit and outcome (shadow_limited: would have refused).',
      labelNames: ['limit', 'decision'],
      registers,
      collect() {
        this.reset();
        for (const [limit, s] of stats) {
          this.inc({ limit, decision: 'allowed' }, s.allowed);
          this.inc({ limit, decision: 'limited' }, s.limited);
          this.inc({ limit, decision: 'shadow_limited' }, s.shadowLimited);
        }
      },
    });
    const shed = this.shed;
    new Counter({
      name: 'portcullis_load_shed_total',
      help: 'Requests answered 503 because the gateway was overloaded, by reason.',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        this.inc({ reason: 'event_loop' }, shed.eventLoop);
        this.inc({ reason: 'in_flight' }, shed.inFlight);
      },
    });
    const service = this;
    new Gauge({
      name: 'portcullis_requests_in_flight',
      help: 'Requests in flight on this instance.',
      registers,
      collect() {
        this.set(service.globalInFlight);
      },
    });
    const redis = this.redis;
    if (redis) {
      new Counter({
        name: 'portcullis_rate_limit_backend_failures_total',
        help: 'Requests whose limits Redis could not decide (the failure policy answered).',
        registers,
        collect() {
          this.reset();
          this.inc(redis.failures);
        },
      });
      new Gauge({
        name: 'portcullis_rate_limit_redis_up',
        help: '1 while the rate-limit Redis answers, 0 otherwise.',
        registers,
        collect() {
          this.set(redis.healthy ? 1 : 0);
        },
      });
    }
  }
}

/** Builds the service and starts it. */
export async function buildRateLimit(
  settings: RateLimitSettings,
  options: RateLimitServiceOptions,
): Promise<RateLimitService> {
  const service = new RateLimitService(settings, options);
  await service.start();
  return service;
}
