/**
 * The audit log as an event sink: `emit` only enqueues; a background writer
 * takes the queue in batches, one transaction per batch, off the request path.
 *
 * ## Loss bounds
 *
 * - Graceful shutdown (`close()`): everything queued is written, then the
 *   head is signed, within `shutdown_timeout`; only a store that stays
 *   unreachable that long loses events, and they are counted and logged.
 * - Crash: the events still in memory are lost. An event waits at most
 *   `flush_interval` before the writer picks it up (sooner once `batch_size`
 *   are queued), so at a rate the store keeps up with, a crash loses at most
 *   about `flush_interval` of events plus the batch being written; when the
 *   store falls behind, never more than `max_queue`.
 * - A slow store: the queue is bounded by `max_queue`. With `overflow: drop`
 *   further events are dropped, counted in `stats.dropped`, logged and
 *   reported through `onDrop` at most every 10 s. With `overflow: block`,
 *   `isFull()` turns true and the gateway must answer new requests 503 until
 *   the queue drains (an event loop cannot block); requests already in flight
 *   still get their events queued, up to twice `max_queue`, beyond which even
 *   they are dropped and counted: memory is never unbounded.
 */
import { randomFillSync } from 'node:crypto';
import type { AdminEvent, EventSink, RequestEvent, SecurityEvent } from '../events/types.js';
import type { Db } from '../store/types.js';
import { hashString } from '../util/hash.js';
import { type AuditContent, type ContentOptions, toAuditContent } from './canonical.js';
import { missingFromChain, readCheckpointFile, writeCheckpointFile } from './checkpoint-file.js';
import { checkpointLine, eventLine, type JsonlSink, openJsonlSink } from './jsonl.js';
import { createPathRedactor, createRedactor, isSensitiveName } from './redact.js';
import type { AuditSettings } from './schema.js';
import type { Checkpoint, CheckpointSigner } from './signing.js';
import { type AuditRepository, createAuditRepository, type RetentionResult } from './store.js';

/** Counters of one audit log since it was created. */
export interface AuditStats {
  /** Events waiting in memory (including the batch being written). */
  queued: number;
  /** Events committed to the store. */
  written: number;
  /** Events lost: queue overflow, emitted after close, or unwritten when close gave up. */
  dropped: number;
  /** Allowed requests left out by sampling (by design, not a loss). */
  sampledOut: number;
  /** Batches the store refused (they are retried). */
  writeFailures: number;
  /** Checkpoints this instance signed. */
  checkpoints: number;
  /** Unauthenticated denials and unrouted requests only counted, in an aggregate event, not recorded one by one. */
  aggregated: number;
  /** Aggregate events (`audit.denials_aggregated`) queued. */
  aggregates: number;
  /** Times new requests were refused (503) because the queue was full (back-pressure). */
  backPressure: number;
  /** Checkpoints not kept in the checkpoint file: it could not be written, or names a checkpoint the store lacks. */
  checkpointFileFailures: number;
}

/** The subset of a pino logger the audit log uses. */
export interface AuditLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** What {@link createAuditLog} needs. */
export interface AuditLogOptions {
  /** The store, with the audit migration applied. */
  db: Db;
  settings: AuditSettings;
  /** Signs checkpoints and retention anchors; see `resolveAuditSigner`. */
  signer: CheckpointSigner;
  logger: AuditLogger;
  /**
   * Share (0..1) of allowed requests on a route that are recorded. Default:
   * `settings.sampleRoutes[route] ?? settings.sampleSuccess`.
   */
  sampleRate?: (route: string | undefined) => number;
  /** Told of dropped events, at most every 10 s: `count` since the last call, `total` ever. For alerting. */
  onDrop?: (count: number, total: number) => void;
  /** Overrides `settings.jsonl` (tests): a stream for the JSON lines. */
  jsonl?: JsonlSink;
  /**
   * Where the latest signed checkpoint is also kept, outside the store, for
   * `audit verify` (see `checkpoint-file.ts`). Default: `signer.checkpointFile`.
   */
  checkpointFile?: string;
  /** Time source (tests). */
  now?: () => Date;
}

/** The audit log: an event sink with a background writer. */
export interface AuditLog extends EventSink {
  /** Enqueues the event (or samples it out, or counts it dropped). O(1); never throws, never waits. */
  emit(event: SecurityEvent): void;
  /**
   * Resolves once every event emitted before the call is written. Rejects if
   * the store refuses a batch (the events stay queued and are retried).
   */
  flush(): Promise<void>;
  /**
   * Stops accepting events, writes everything queued (retrying until
   * `shutdown_timeout`), signs the head and closes the JSON lines file.
   * Never rejects; events it could not write are counted as dropped and logged.
   */
  close(): Promise<void>;
  readonly stats: Readonly<AuditStats>;
  /**
   * True while the queue is full (under either `overflow`): the gateway
   * answers new requests 503, so that events that are never dropped
   * (allowed requests, authenticated denials, admin acts, alerts) are not.
   * Each call that returns true is counted as back-pressure.
   */
  isFull(): boolean;
  /** Readiness: rejects while the store refuses writes, or the queue is full under `block`. */
  ready(): Promise<void>;
  /** What readiness notes without failing: the queue is full under `drop`, or writes are being retried. */
  degraded(): string | undefined;
  /** Runs retention now (it also runs every `retention.check_interval` when limits are set). */
  applyRetention(): Promise<RetentionResult>;
  /** The repository the log writes to (for `audit verify` in-process, and tests). */
  readonly repository: AuditRepository;
}

const DROP_REPORT_INTERVAL_MS = 10_000;
const FAILURE_LOG_INTERVAL_MS = 10_000;
/** Backoff between retries of a refused batch, doubling up to the cap. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

/** A fixed-capacity FIFO: O(1) push, peek and removal from the front. */
class RingQueue<T> {
  readonly #items: (T | undefined)[];
  #head = 0;
  #length = 0;

  constructor(readonly capacity: number) {
    this.#items = new Array<T | undefined>(capacity);
  }

  get length(): number {
    return this.#length;
  }

  push(item: T): boolean {
    if (this.#length === this.capacity) return false;
    this.#items[(this.#head + this.#length) % this.capacity] = item;
    this.#length++;
    return true;
  }

  peek(n: number): T[] {
    const count = Math.min(n, this.#length);
    const out = new Array<T>(count);
    for (let i = 0; i < count; i++) out[i] = this.#items[(this.#head + i) % this.capacity] as T;
    return out;
  }

  remove(n: number): void {
    const count = Math.min(n, this.#length);
    for (let i = 0; i < count; i++) this.#items[(this.#head + i) % this.capacity] = undefined;
    this.#head = (this.#head + count) % this.capacity;
    this.#length -= count;
  }
}

/**
 * FNV-1a (32 bits) of the string, as a fraction in [0, 1). Not used for
 * sampling any more (a client chooses its request ids); kept for callers.
 */
export function sampleFraction(id: string): number {
  return hashString(id) / 0x1_0000_0000;
}

// The gateway's own randomness, drawn 4 KiB at a time: the coin of each sampled event.
const coins = new Uint32Array(1024);
let coinIndex = coins.length;

/** A uniform fraction in [0, 1) from the CSPRNG; no client-chosen value enters it. */
function coin(): number {
  if (coinIndex >= coins.length) {
    randomFillSync(coins);
    coinIndex = 0;
  }
  return coins[coinIndex++]! / 0x1_0000_0000;
}

/**
 * Whether sampling keeps this event: everything but allowed requests is
 * always kept. The coin is the gateway's own randomness, never the request
 * id: a client picks its request ids (X-Request-Id) and must not be able to
 * pick ones that are never recorded.
 */
function keeps(event: SecurityEvent, rate: (route: string | undefined) => number): boolean {
  if (event.type !== 'request' || event.decision !== 'allow' || event.shadowDenials.length > 0) return true;
  const r = rate(event.route);
  if (r >= 1) return true;
  if (!(r > 0)) return false;
  return coin() < r;
}

const noop = async (): Promise<void> => {};

/** An audit log that records nothing, for `audit.enabled: false`. */
function disabledAuditLog(db: Db): AuditLog {
  const stats: AuditStats = {
    queued: 0,
    written: 0,
    dropped: 0,
    sampledOut: 0,
    writeFailures: 0,
    checkpoints: 0,
    aggregated: 0,
    aggregates: 0,
    backPressure: 0,
    checkpointFileFailures: 0,
  };
  return {
    emit() {},
    flush: noop,
    close: noop,
    get stats() {
      return { ...stats };
    },
    isFull: () => false,
    ready: noop,
    degraded: () => undefined,
    applyRetention: async () => ({ removed: 0, anchor: undefined }),
    repository: createAuditRepository(db),
  };
}

/**
 * Creates the audit log and starts its writer (timers are unref'd: they never
 * keep the process alive). Subscribe it to the EventBus; `close()` it after
 * the public listener has drained and before the store closes.
 *
 * @throws Error when the JSON lines file cannot be opened.
 */
export function createAuditLog(options: AuditLogOptions): AuditLog {
  const { db, settings, signer, logger } = options;
  if (!settings.enabled) return disabledAuditLog(db);
  const now = options.now ?? (() => new Date());
  const repo = createAuditRepository(db);
  const sampleRate =
    options.sampleRate ??
    ((route: string | undefined) =>
      (route === undefined ? undefined : settings.sampleRoutes[route]) ?? settings.sampleSuccess);
  const content: ContentOptions = {
    redact: createRedactor(settings.redactFields),
    redactPath: createPathRedactor(settings.redactFields),
    isSensitive: (name) => isSensitiveName(name, settings.redactFields),
  };
  const jsonl = options.jsonl ?? (settings.jsonl ? openJsonlSink(settings.jsonl.path) : undefined);
  const block = settings.overflow === 'block';
  // Beyond max_queue new requests are refused; the room above it is for the
  // events of requests already in flight, and for the aggregates.
  const queue = new RingQueue<SecurityEvent>(settings.maxQueue * 2);
  const stats: AuditStats = {
    queued: 0,
    written: 0,
    dropped: 0,
    sampledOut: 0,
    writeFailures: 0,
    checkpoints: 0,
    aggregated: 0,
    aggregates: 0,
    backPressure: 0,
    checkpointFileFailures: 0,
  };
  const aggregator = createDenialAggregator(settings.aggregate);

  let closed = false;
  /** Events accepted into the queue, and taken out of it (written, or given up at close), ever. */
  let enqueued = 0;
  let settled = 0;
  let draining: Promise<void> | undefined;
  let drainScheduled = false;
  let lastError: unknown;
  let failingSince: number | undefined;
  let lastFailureLog = 0;
  let retryAt = 0;
  let retryDelay = RETRY_MIN_MS;
  let dropsUnreported = 0;
  let lastDropReport = 0;
  let writtenSinceCheckpoint = 0;
  let lastCheckpointAt = now().getTime();
  let retention: Promise<RetentionResult> | undefined;

  const stream = async (records: readonly { seq: number }[], lines: string): Promise<void> => {
    if (!jsonl || lines === '') return;
    try {
      await jsonl.write(lines);
    } catch (err) {
      logger.error(
        { err: { message: (err as Error).message }, fromSeq: records[0]?.seq },
        'audit JSON lines write failed',
      );
    }
  };

  const checkpointFile = options.checkpointFile ?? signer.checkpointFile;
  const latestAnchor = async (): Promise<number | undefined> =>
    (await repo.checkpoints()).filter((c) => c.kind === 'anchor').at(-1)?.seq;

  /**
   * Replaces the checkpoint file with `cp`, unless the file names a newer
   * checkpoint, or one the store no longer contains: that one is evidence
   * (a deleted tail, a rolled-back database) that `audit verify` must see,
   * so it is kept and reported until an operator moves it away. Never throws.
   */
  const keepCheckpoint = async (cp: Checkpoint): Promise<void> => {
    if (checkpointFile === undefined) return;
    try {
      const kept = await readCheckpointFile(checkpointFile);
      const missing = kept && (await missingFromChain(repo, kept, latestAnchor));
      if (missing) {
        stats.checkpointFileFailures++;
        logger.error(
          { file: checkpointFile, keptSeq: kept.seq, keptHash: kept.hash, seq: cp.seq },
          `the audit checkpoint file names a checkpoint the store does not contain (${missing.message}); it is kept, not replaced: run portcullis audit verify, and move the file away once investigated`,
        );
        return;
      }
      // Another instance sharing the data folder may have kept a newer one.
      if (kept && kept.seq >= cp.seq) return;
      await writeCheckpointFile(checkpointFile, cp);
    } catch (err) {
      stats.checkpointFileFailures++;
      logger.error(
        {
          file: checkpointFile,
          seq: cp.seq,
          err: { message: (err as Error).message, code: (err as { code?: unknown }).code },
        },
        'the audit checkpoint file could not be written',
      );
    }
  };

  const noteCheckpoint = async (cp: Checkpoint | undefined): Promise<void> => {
    if (!cp) return;
    stats.checkpoints++;
    writtenSinceCheckpoint = 0;
    lastCheckpointAt = now().getTime();
    await stream([cp], checkpointLine(cp));
    await keepCheckpoint(cp);
  };

  const dueCheckpoint = (extra: number): boolean =>
    writtenSinceCheckpoint + extra >= settings.checkpointEvery ||
    now().getTime() - lastCheckpointAt >= settings.checkpointIntervalMs;

  /** Writes one batch; false when the store refused it (it stays queued). */
  const writeBatch = async (): Promise<boolean> => {
    const events = queue.peek(settings.batchSize);
    // Converted one by one: an event a buggy emitter malformed is dropped, never left to jam the queue.
    const contents: AuditContent[] = [];
    let malformed = 0;
    for (const e of events) {
      try {
        contents.push(toAuditContent(e, content));
      } catch {
        malformed++;
      }
    }
    if (malformed > 0) {
      stats.dropped += malformed;
      logger.error({ dropped: malformed }, 'malformed audit events dropped');
    }
    let result: Awaited<ReturnType<AuditRepository['append']>>;
    try {
      result = await repo.append(contents, (head) =>
        dueCheckpoint(contents.length)
          ? signer.sign('checkpoint', head.seq, head.hash, now().toISOString())
          : undefined,
      );
    } catch (err) {
      stats.writeFailures++;
      lastError = err;
      const t = Date.now();
      failingSince ??= t;
      retryAt = t + retryDelay;
      retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
      if (t - lastFailureLog >= FAILURE_LOG_INTERVAL_MS) {
        lastFailureLog = t;
        logger.error(
          {
            err: { message: (err as Error).message, code: (err as { code?: unknown }).code },
            queued: queue.length,
          },
          'audit write failed; the batch stays queued and is retried',
        );
      }
      return false;
    }
    queue.remove(events.length);
    settled += events.length;
    stats.written += contents.length;
    writtenSinceCheckpoint += contents.length;
    if (failingSince !== undefined) {
      logger.info({ queued: queue.length }, 'audit writes succeed again');
      failingSince = undefined;
    }
    lastError = undefined;
    retryDelay = RETRY_MIN_MS;
    // Serialised only when a JSON lines sink exists: it is work on the event loop.
    if (jsonl) await stream(result.records, result.records.map(eventLine).join(''));
    if (result.checkpoint) await noteCheckpoint(result.checkpoint);
    return true;
  };

  /** Writes batches until the queue is empty or the store refuses one. One drain runs at a time. */
  const drain = (): Promise<void> => {
    if (draining === undefined) {
      const run = (async () => {
        while (queue.length > 0) {
          if (!(await writeBatch())) break;
          // SQLite writes are synchronous: let the event loop serve requests between batches.
          if (queue.length > 0) await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      // Cleared in a callback, which runs after the assignment below even when `run` has already settled.
      const tracked: Promise<void> = run.finally(() => {
        if (draining === tracked) draining = undefined;
      });
      draining = tracked;
    }
    return draining;
  };

  const reportDrops = (force: boolean): void => {
    if (dropsUnreported === 0) return;
    const t = Date.now();
    if (!force && t - lastDropReport < DROP_REPORT_INTERVAL_MS) return;
    const count = dropsUnreported;
    dropsUnreported = 0;
    lastDropReport = t;
    logger.warn(
      {
        dropped: count,
        droppedTotal: stats.dropped,
        maxQueue: settings.maxQueue,
        overflow: settings.overflow,
      },
      'audit events dropped: the queue was full',
    );
    try {
      options.onDrop?.(count, stats.dropped);
    } catch (err) {
      logger.error({ err: { message: (err as Error).message } }, 'audit onDrop callback failed');
    }
  };

  const tick = (): void => {
    reportDrops(false);
    if (draining || closed) return;
    if (queue.length > 0) {
      if (Date.now() >= retryAt) void drain();
      return;
    }
    if (writtenSinceCheckpoint > 0 && dueCheckpoint(0)) {
      const tracked: Promise<void> = repo
        .checkpointHead(signer, now())
        .then(noteCheckpoint, (err: unknown) => {
          logger.error({ err: { message: (err as Error).message } }, 'audit checkpoint failed');
        })
        .finally(() => {
          if (draining === tracked) draining = undefined;
        });
      draining = tracked;
    }
  };

  const timer = setInterval(tick, settings.flushIntervalMs);
  timer.unref();

  /** Queues an event that must not be dropped, up to the hard cap (twice max_queue). */
  const pushPriority = (event: SecurityEvent): boolean => {
    if (!queue.push(event)) {
      stats.dropped++;
      dropsUnreported++;
      return false;
    }
    enqueued++;
    if (queue.length >= settings.batchSize) scheduleDrain();
    return true;
  };

  /** Queues one aggregate event per source counted in the interval that ended. */
  const flushAggregates = (): void => {
    for (const event of aggregator.take(now())) {
      if (!pushPriority(event)) continue;
      stats.aggregates++;
    }
  };
  const aggregateTimer = setInterval(flushAggregates, settings.aggregate.intervalMs);
  aggregateTimer.unref();

  const retentionLimits = settings.retention;
  const runRetention = (): Promise<RetentionResult> => {
    retention ??= repo
      .applyRetention(
        { maxAgeMs: retentionLimits.maxAgeMs, maxEvents: retentionLimits.maxEvents },
        signer,
        now(),
      )
      .then(async (result) => {
        if (result.removed > 0) {
          logger.info(
            { removed: result.removed, anchorSeq: result.anchor?.seq },
            'audit retention removed old events',
          );
        }
        if (result.anchor) await stream([result.anchor], checkpointLine(result.anchor));
        return result;
      })
      .finally(() => {
        retention = undefined;
      });
    return retention;
  };
  let retentionTimer: NodeJS.Timeout | undefined;
  if (retentionLimits.maxAgeMs !== undefined || retentionLimits.maxEvents !== undefined) {
    retentionTimer = setInterval(() => {
      runRetention().catch((err: unknown) => {
        logger.error({ err: { message: (err as Error).message } }, 'audit retention failed');
      });
    }, retentionLimits.checkIntervalMs);
    retentionTimer.unref();
  }

  const scheduleDrain = (): void => {
    if (drainScheduled || draining) return;
    drainScheduled = true;
    setImmediate(() => {
      drainScheduled = false;
      if (!closed && Date.now() >= retryAt) void drain();
    });
  };

  let closing: Promise<void> | undefined;

  return {
    repository: repo,

    emit(event) {
      if (closed) {
        stats.dropped++;
        dropsUnreported++;
        return;
      }
      let kept: boolean;
      try {
        kept = keeps(event, sampleRate);
      } catch {
        // A malformed event, or a sampleRate that threw: recorded rather than lost.
        kept = true;
      }
      if (!kept) {
        stats.sampledOut++;
        return;
      }
      // What an attacker can produce at will (denials without a principal,
      // unrouted requests) is recorded one by one up to a per-source rate,
      // and while the queue has room; beyond, only counted (never lost).
      if (event.type === 'request' && aggregatable(event)) {
        if (queue.length >= settings.maxQueue || !aggregator.admit(event)) {
          aggregator.count(event);
          stats.aggregated++;
          return;
        }
      }
      pushPriority(event);
    },

    async flush() {
      const target = enqueued;
      // Bounded: every round either settles events or rejects.
      while (settled < target) {
        await drain();
        if (settled < target && lastError !== undefined) throw lastError;
      }
    },

    close() {
      closing ??= (async () => {
        // The counts of the last interval are written too.
        flushAggregates();
        closed = true;
        clearInterval(timer);
        clearInterval(aggregateTimer);
        if (retentionTimer) clearInterval(retentionTimer);
        await retention?.catch(() => {});
        const deadline = Date.now() + settings.shutdownTimeoutMs;
        let attempt = 0;
        // Bounded by the deadline: a store that hangs rather than fails must not hang shutdown.
        while (queue.length > 0 || draining) {
          let timeout: NodeJS.Timeout | undefined;
          await Promise.race([
            drain(),
            new Promise((r) => {
              timeout = setTimeout(r, Math.max(0, deadline - Date.now()));
            }),
          ]);
          clearTimeout(timeout);
          if (queue.length === 0 || Date.now() >= deadline) break;
          // The store refused a batch: wait a little, within the deadline, and retry.
          const wait = Math.min(
            RETRY_MIN_MS * 2 ** Math.min(attempt++, 5),
            Math.max(0, deadline - Date.now()),
          );
          await new Promise((r) => setTimeout(r, wait));
        }
        if (queue.length > 0) {
          const lost = queue.length;
          stats.dropped += lost;
          settled += lost;
          queue.remove(lost);
          logger.error(
            { lost, err: { message: (lastError as Error | undefined)?.message } },
            'audit events could not be written before shutdown_timeout and are lost',
          );
        } else if (writtenSinceCheckpoint > 0) {
          try {
            await noteCheckpoint(await repo.checkpointHead(signer, now()));
          } catch (err) {
            logger.error({ err: { message: (err as Error).message } }, 'audit checkpoint at shutdown failed');
          }
        }
        reportDrops(true);
        await jsonl?.close();
      })();
      return closing;
    },

    get stats() {
      return { ...stats, queued: queue.length };
    },

    isFull() {
      if (queue.length < settings.maxQueue) return false;
      stats.backPressure++;
      return true;
    },

    async ready() {
      // Only a full queue under `block` stops this instance from serving; a
      // store that refuses writes is retried while the queue absorbs events
      // (see degraded()), and is the same for every instance.
      if (block && queue.length >= settings.maxQueue) throw new Error('the audit queue is full');
    },

    degraded() {
      if (failingSince !== undefined) return 'the audit store refuses writes; events are queued and retried';
      if (queue.length >= settings.maxQueue) {
        return 'the audit queue is full: new requests are answered 503 until it drains';
      }
      if (queue.length >= settings.maxQueue / 2) return 'the audit queue is more than half full';
      return undefined;
    },

    applyRetention: runRetention,
  };
}

/**
 * Whether an event is one an attacker can produce at will, and so may be
 * aggregated: a request that was not allowed, made without an authenticated
 * principal or to no route. Allowed requests, authenticated denials and
 * admin events (alerts included) are never aggregated nor dropped.
 */
export function aggregatable(event: RequestEvent): boolean {
  if (event.decision === 'allow') return false;
  const p = event.principal;
  return p === undefined || p.kind === 'anonymous' || event.route === undefined;
}

interface SourceCount {
  /** Events recorded one by one in this interval. */
  admitted: number;
  /** Events only counted. */
  count: number;
  reasons: Map<string, number>;
  firstRequestId: string;
  lastRequestId: string;
  firstTime: string;
  lastTime: string;
}

/** The action of aggregate events. */
export const AGGREGATE_ACTION = 'audit.denials_aggregated';
/** The source that stands for every source beyond `max_sources` in one interval. */
const OTHER_SOURCES = '*';
/** Reasons listed in one aggregate event at most (the rest are summed under `other`). */
const MAX_REASONS = 10;

/**
 * Per-source counts of aggregatable events, for one interval at a time.
 * `admit` says whether an event may still be recorded one by one (the first
 * `perSourcePerInterval` of each source in the interval); `count` adds one to
 * its source's aggregate; `take` ends the interval and returns one admin
 * event per source with a count. Memory: at most `maxSources` entries (plus
 * the shared `*` one), each a few strings and at most 10 reasons.
 */
export function createDenialAggregator(settings: AuditSettings['aggregate']) {
  let sources = new Map<string, SourceCount>();
  const entry = (event: RequestEvent): SourceCount => {
    let key = event.clientIp;
    let e = sources.get(key);
    if (e === undefined) {
      if (sources.size >= settings.maxSources) {
        key = OTHER_SOURCES;
        e = sources.get(key);
      }
      if (e === undefined) {
        e = {
          admitted: 0,
          count: 0,
          reasons: new Map(),
          firstRequestId: event.requestId,
          lastRequestId: event.requestId,
          firstTime: event.time,
          lastTime: event.time,
        };
        sources.set(key, e);
      }
    }
    return e;
  };
  return {
    /** True (and counted as admitted) when the event may be recorded one by one. */
    admit(event: RequestEvent): boolean {
      const e = entry(event);
      if (e.admitted >= settings.perSourcePerInterval) return false;
      e.admitted++;
      return true;
    },
    count(event: RequestEvent): void {
      const e = entry(event);
      if (e.count === 0) {
        e.firstRequestId = event.requestId;
        e.firstTime = event.time;
      }
      e.count++;
      e.lastRequestId = event.requestId;
      e.lastTime = event.time;
      const reason = e.reasons.has(event.reason) || e.reasons.size < MAX_REASONS ? event.reason : 'other';
      e.reasons.set(reason, (e.reasons.get(reason) ?? 0) + 1);
    },
    /** Ends the interval: the aggregate events of the sources that had events only counted. */
    take(at: Date): AdminEvent[] {
      const ended = sources;
      sources = new Map();
      const events: AdminEvent[] = [];
      for (const [source, e] of ended) {
        if (e.count === 0) continue;
        events.push({
          type: 'admin',
          time: at.toISOString(),
          action: AGGREGATE_ACTION,
          actor: 'system',
          target: `ip:${source}`,
          detail: {
            count: e.count,
            reasons: [...e.reasons].map(([r, n]) => `${r}=${n}`).join(','),
            first_request_id: e.firstRequestId,
            last_request_id: e.lastRequestId,
            first_time: e.firstTime,
            last_time: e.lastTime,
            interval_ms: settings.intervalMs,
          },
        });
      }
      return events;
    },
  };
}

const silentLogger: AuditLogger = { info() {}, warn() {}, error() {} };

/**
 * Writes one administrative act from a short-lived process (the `keys` and
 * `clients` CLIs) into the audit chain, and signs it. The JSON lines stream is
 * written too, except to stdout, which belongs to the command's own output.
 *
 * @throws Error when the event could not be written: the act was done, but
 * its audit record is missing, which the caller must report.
 */
export async function recordAdminEvent(
  db: Db,
  event: AdminEvent,
  options: { settings: AuditSettings; signer: CheckpointSigner; logger?: AuditLogger },
): Promise<void> {
  const { settings } = options;
  if (!settings.enabled) return;
  const log = createAuditLog({
    db,
    settings: { ...settings, shutdownTimeoutMs: Math.min(settings.shutdownTimeoutMs, 5000) },
    signer: options.signer,
    logger: options.logger ?? silentLogger,
    ...(settings.jsonl?.path === '-' ? { jsonl: { write: async () => {}, close: async () => {} } } : {}),
  });
  log.emit(event);
  await log.close();
  if (log.stats.written !== 1) throw new Error(`the audit event ${event.action} could not be written`);
}
