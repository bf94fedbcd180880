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
import type { AdminEvent, EventSink, SecurityEvent } from '../events/types.js';
import type { Db } from '../store/types.js';
import { type AuditContent, type ContentOptions, toAuditContent } from './canonical.js';
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
  /** True while the queue is full under `overflow: block`: the gateway answers new requests 503. Always false under `drop`. */
  isFull(): boolean;
  /** Readiness: rejects while the store refuses writes, or the queue is full under `block`. */
  ready(): Promise<void>;
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

/** FNV-1a (32 bits) of the string, as a fraction in [0, 1): a cheap, reproducible coin per request id. */
export function sampleFraction(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 0x1_0000_0000;
}

/** Whether sampling keeps this event: everything but allowed requests is always kept. */
function keeps(event: SecurityEvent, rate: (route: string | undefined) => number): boolean {
  if (event.type !== 'request' || event.decision !== 'allow' || event.shadowDenials.length > 0) return true;
  const r = rate(event.route);
  if (r >= 1) return true;
  if (!(r > 0)) return false;
  return sampleFraction(event.requestId) < r;
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
  const queue = new RingQueue<SecurityEvent>(block ? settings.maxQueue * 2 : settings.maxQueue);
  const stats: AuditStats = {
    queued: 0,
    written: 0,
    dropped: 0,
    sampledOut: 0,
    writeFailures: 0,
    checkpoints: 0,
  };

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

  const noteCheckpoint = async (cp: Checkpoint | undefined): Promise<void> => {
    if (!cp) return;
    stats.checkpoints++;
    writtenSinceCheckpoint = 0;
    lastCheckpointAt = now().getTime();
    await stream([cp], checkpointLine(cp));
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
      if (!queue.push(event)) {
        stats.dropped++;
        dropsUnreported++;
        return;
      }
      enqueued++;
      if (queue.length >= settings.batchSize) scheduleDrain();
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
        closed = true;
        clearInterval(timer);
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

    isFull: () => block && queue.length >= settings.maxQueue,

    async ready() {
      if (failingSince !== undefined) throw new Error('the audit store refuses writes');
      if (block && queue.length >= settings.maxQueue) throw new Error('the audit queue is full');
    },

    applyRetention: runRetention,
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
