/**
 * Rate limits shared by every instance, in Redis: one script call per
 * request decides all the route's limits atomically (EVALSHA through
 * ioredis `defineCommand`, which falls back to EVAL on NOSCRIPT).
 *
 * The script reads the clock with Redis `TIME`, not the gateway's: the
 * limits are shared, so their clock must be too — instances whose clocks
 * drift apart would otherwise each see a different bucket. (Redis 5+
 * replicates a script's effects, not the script, so `TIME` is safe.)
 *
 * A down Redis never blocks a request or start-up: no offline queue, no
 * retries per command, a short command timeout, and after a failure the
 * client is left alone for a second while ioredis reconnects by itself.
 * Meanwhile the failure policy answers: `fail-open` decides on this
 * instance with each limit divided by the expected instance count,
 * `fail-closed` refuses with 503.
 */
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import type { LimitCheck, Limiter, LimitOutcome, MemoryLimiter, Verdict } from './limiter.js';
import type { RedisSettings } from './types.js';

/**
 * KEYS: one TAT key per limit. ARGV[1]: cost; then per limit three values:
 * emission interval (µs), burst, 1 when shadow. Returns
 * `{allowed, then per limit: allowed, remaining, reset µs, retry-after µs}`.
 */
export const GCRA_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local n = #KEYS
local ok, starts, nexts, intervals = {}, {}, {}, {}
local out = {0}
local enforced_ok = true
for i = 1, n do
  local interval = tonumber(ARGV[i * 3 - 1])
  local burst = tonumber(ARGV[i * 3])
  local stored = tonumber(redis.call('GET', KEYS[i]))
  local start = now
  if stored ~= nil and stored > now then start = stored end
  local nxt = start + cost * interval
  local tol = math.max(burst, cost) * interval
  intervals[i], starts[i], nexts[i] = interval, start, nxt
  if nxt - now > tol then
    ok[i] = false
    if ARGV[i * 3 + 1] == '0' then enforced_ok = false end
    out[#out + 1] = 0
    out[#out + 1] = math.max(0, math.floor((burst * interval - (start - now)) / interval))
    out[#out + 1] = start - now
    out[#out + 1] = nxt - now - tol
  else
    ok[i] = true
    out[#out + 1] = 1
    out[#out + 1] = math.max(0, math.floor((burst * interval - (nxt - now)) / interval))
    out[#out + 1] = nxt - now
    out[#out + 1] = 0
  end
end
for i = 1, n do
  if ok[i] then
    if enforced_ok or ARGV[i * 3 + 1] == '1' then
      redis.call('SET', KEYS[i], string.format('%.0f', nexts[i]), 'PX', math.ceil((nexts[i] - now) / 1000) + 1)
    else
      local at = (i - 1) * 4 + 2
      out[at + 1] = out[at + 1] + cost
      out[at + 2] = starts[i] - now
    end
  end
end
if enforced_ok then out[1] = 1 end
return out
`;

type GcraCommand = (numKeys: number, ...args: (string | number)[]) => Promise<number[]>;

/** A failure of the shared backend that the fail-closed policy turns into a 503. */
export class LimiterUnavailable extends Error {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = 'LimiterUnavailable';
  }
}

/** After a failed call, requests skip Redis for this long (ioredis reconnects meanwhile). */
const SUSPEND_MS = 1000;

/** While Redis stays down, one "still unreachable" line per this interval, with the count. */
export const OUTAGE_LOG_INTERVAL_MS = 10_000;

export interface RedisLimiterOptions {
  logger: Logger;
  /** The fail-open fallback: a memory limiter whose limits are divided by the instance count. */
  fallback: MemoryLimiter;
  now?: () => number;
}

/**
 * ioredis, loaded the first time a Redis limiter is made. Most gateways use the memory backend,
 * and ioredis with its dependencies is compiled code and heap (about 6 MiB of heap when loaded
 * alone in a bare Node) that every process would otherwise carry from start. It is a CommonJS package, so `require` loads it synchronously
 * and the limiter keeps its synchronous constructor; a missing or broken install fails that
 * constructor, at start, with the loader's own error.
 */
let RedisClient: typeof Redis | undefined;
function redisClient(): typeof Redis {
  RedisClient ??= (createRequire(import.meta.url)('ioredis') as typeof import('ioredis')).Redis;
  return RedisClient;
}

export class RedisLimiter implements Limiter {
  readonly client: Redis;
  private readonly gcra: GcraCommand;
  private readonly prefix: string;
  private readonly now: () => number;
  private suspendedUntil = 0;
  private up = true;
  /** Calls that failed or were skipped because Redis was down. */
  failures = 0;
  /** Outage logging: when it began, when the last line was written, requests since then and in all. */
  private outage = { since: 0, loggedAt: 0, sinceLog: 0, total: 0 };

  constructor(
    readonly settings: RedisSettings,
    private readonly options: RedisLimiterOptions,
  ) {
    this.prefix = `${settings.keyPrefix}rl:`;
    this.now = options.now ?? Date.now;
    this.client = new (redisClient())(settings.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: settings.connectTimeoutMs,
      commandTimeout: settings.timeoutMs,
      retryStrategy: (times) => Math.min(times * 100, 1000),
    });
    this.client.defineCommand('portcullisGcra', { lua: GCRA_SCRIPT });
    this.gcra = (this.client as unknown as { portcullisGcra: GcraCommand }).portcullisGcra.bind(this.client);
    // ioredis emits an error on every failed reconnect; without a listener it would crash the process.
    this.client.on('error', (err: Error) => this.markDown(err));
    this.client.on('ready', () => this.markUp());
  }

  /** Starts connecting; resolves when ready or after the connect timeout, never rejects. */
  async connect(): Promise<void> {
    const ready = this.client.connect().catch((err: unknown) => this.markDown(err));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      ready,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.settings.connectTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  /** Whether Redis answered the last call (or has not failed yet). */
  get healthy(): boolean {
    return this.up;
  }

  private markDown(err: unknown): void {
    this.suspendedUntil = this.now() + SUSPEND_MS;
    if (!this.up) return;
    this.up = false;
    this.outage = { since: this.now(), loggedAt: this.now(), sinceLog: 0, total: 0 };
    const policy =
      this.settings.onFailure === 'fail-open'
        ? `failing open: limits on this instance alone, divided by ${this.settings.expectedInstances}`
        : 'failing closed: limited routes answer 503';
    this.options.logger.warn(
      { err: err instanceof Error ? err.message : String(err) },
      `rate-limit Redis unreachable; ${policy}`,
    );
  }

  private markUp(): void {
    this.suspendedUntil = 0;
    if (this.up) return;
    this.up = true;
    const { since, total } = this.outage;
    this.options.logger.info(
      {
        outageMs: since === 0 ? undefined : this.now() - since,
        requests: total,
        policy: this.settings.onFailure,
      },
      'rate-limit Redis reachable again; shared limits restored',
    );
  }

  consume(checks: readonly LimitCheck[], cost: number): Verdict | Promise<Verdict> {
    if (this.client.status !== 'ready' || this.suspendedUntil > this.now()) {
      return this.failed(checks, cost, new Error(`redis ${this.client.status}`));
    }
    const args: (string | number)[] = new Array(checks.length + 1 + checks.length * 3);
    let a = 0;
    for (const c of checks) args[a++] = `${this.prefix}${c.limit.name}:${c.key}`;
    args[a++] = cost;
    for (const c of checks) {
      args[a++] = (c.limit.periodMs * 1000) / c.limit.count;
      args[a++] = c.limit.burst;
      args[a++] = c.limit.mode === 'shadow' ? 1 : 0;
    }
    return this.gcra(checks.length, ...args).then(
      (reply) => {
        if (!this.up) this.markUp();
        const outcomes: LimitOutcome[] = new Array(checks.length);
        for (let i = 0; i < checks.length; i++) {
          const at = 1 + i * 4;
          outcomes[i] = {
            allowed: reply[at] === 1,
            remaining: reply[at + 1]!,
            resetMs: reply[at + 2]! / 1000,
            retryAfterMs: reply[at + 3]! / 1000,
          };
        }
        return { allowed: reply[0] === 1, outcomes };
      },
      (err: unknown) => {
        this.markDown(err);
        return this.failed(checks, cost, err);
      },
    );
  }

  private failed(checks: readonly LimitCheck[], cost: number, cause: unknown): Verdict {
    this.failures++;
    // The first failure may come before ioredis reports the lost connection: the outage starts here then.
    if (this.up) this.markDown(cause);
    this.noteOutageRequest();
    if (this.settings.onFailure === 'fail-closed') {
      throw new LimiterUnavailable('rate-limit Redis unreachable (fail-closed)', { cause });
    }
    const verdict = this.options.fallback.consume(checks, cost);
    verdict.fallback = true;
    return verdict;
  }

  /**
   * One log line per outage interval, not one per request: the first line
   * comes from markDown; then at most one per OUTAGE_LOG_INTERVAL_MS with
   * the requests decided by the failure policy since the last line.
   */
  private noteOutageRequest(): void {
    const o = this.outage;
    o.sinceLog++;
    o.total++;
    const now = this.now();
    if (now - o.loggedAt < OUTAGE_LOG_INTERVAL_MS) return;
    this.options.logger.warn(
      {
        requests: o.sinceLog,
        intervalMs: now - o.loggedAt,
        outageMs: now - o.since,
        policy: this.settings.onFailure,
      },
      this.settings.onFailure === 'fail-open'
        ? 'rate-limit Redis still unreachable; requests decided on local limits'
        : 'rate-limit Redis still unreachable; limited requests refused with 503',
    );
    o.loggedAt = now;
    o.sinceLog = 0;
  }

  /**
   * For /readyz: resolves while Redis answers; when it does not, rejects
   * under fail-closed (this instance refuses limited requests) and resolves
   * with a note under fail-open (it still serves, on local limits).
   */
  async check(): Promise<string | undefined> {
    try {
      if (this.client.status !== 'ready') throw new Error(`redis ${this.client.status}`);
      await this.client.ping();
      if (!this.up) this.markUp();
      return undefined;
    } catch (err) {
      this.markDown(err);
      if (this.settings.onFailure === 'fail-closed') throw new Error('redis unreachable (fail-closed)');
      return `degraded: redis unreachable, fail-open on local limits / ${this.settings.expectedInstances}`;
    }
  }

  async close(): Promise<void> {
    this.client.removeAllListeners('ready');
    if (this.client.status === 'ready') await this.client.quit().catch(() => this.client.disconnect());
    else this.client.disconnect();
  }
}
