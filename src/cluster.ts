/**
 * Cluster mode (`listen.workers` above 1): one primary process forks one
 * worker per core; every worker runs the whole gateway and listens on the
 * same public port, whose connections node:cluster hands out in turn
 * (round-robin, the default on Linux). The workers share what the gateway
 * already shares between instances: the store (the SQLite file in WAL mode,
 * or PostgreSQL: keys, blocks, revocations, the audit chain, whose appends
 * are serialised by a transaction) and, for exact rate limits, Redis. What
 * each instance keeps in memory (brute-force counters, anomaly baselines,
 * caches) is kept per worker, exactly as with several instances.
 *
 * The primary serves nothing itself. It
 * - restarts a worker that dies, after a delay that doubles while it keeps
 *   dying young (1 s up to 30 s);
 * - passes SIGHUP (reload) and SIGTERM / SIGINT (drain and stop) to every
 *   worker, and exits once all have stopped: 0 when each stopped cleanly;
 * - answers a worker's request for the metrics of all workers, so that the
 *   one admin listener (worker 1's) shows the whole gateway on `/metrics`;
 * - tells worker 1 how many workers are running, for its `/readyz`.
 *
 * node:cluster rather than a hand-made fork: it shares the listening socket
 * between processes, which nothing else in Node does.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { GuardEvent, GuardPeers } from './auth/brute-force.js';
import {
  type LimitAnswerMessage,
  type LimitRequestMessage,
  type LimitTransport,
  primaryLimits,
  processTransport,
} from './ratelimit/cluster-limiter.js';

/** The worker's number (1..N) in the environment of each worker. */
export const WORKER_ENV = 'PORTCULLIS_WORKER';
/** The number of workers, in the environment of each worker. */
const WORKERS_ENV = 'PORTCULLIS_WORKERS';

const FIRST_RESTART_DELAY_MS = 1_000;
const MAX_RESTART_DELAY_MS = 30_000;
/** A worker that lived at least this long had a fresh start: its next restart waits the least. */
const HEALTHY_LIFETIME_MS = 10_000;
/** How long the primary waits for every worker's metrics before answering with what it has. */
const METRICS_TIMEOUT_MS = 2_000;

/** What `Registry.getMetricsAsJSON()` gives, as `AggregatorRegistry.aggregate` takes it. */
type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

type PrimaryMessage =
  | { type: 'portcullis:collect'; id: number }
  | { type: 'portcullis:cluster-metrics'; id: number; text: string }
  | { type: 'portcullis:worker-count'; id: number; running: number; wanted: number }
  | LimitAnswerMessage
  | GuardMessage;
type WorkerMessage =
  | { type: 'portcullis:collected'; id: number; metrics: MetricsJson }
  | { type: 'portcullis:metrics'; id: number }
  | { type: 'portcullis:workers'; id: number }
  | { type: 'portcullis:reload' }
  | LimitRequestMessage
  | GuardMessage;

/** Brute-force failures and successes one worker counted, relayed by the primary to the others. */
interface GuardMessage {
  type: 'portcullis:guard';
  events: GuardEvent[];
}

/** This process's worker number in cluster mode; undefined outside it. */
export function workerNumber(): number | undefined {
  if (!cluster.isWorker) return undefined;
  const n = Number(process.env[WORKER_ENV]);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** Whether this process runs the admin listener: outside cluster mode, or as worker 1. */
export function servesAdmin(): boolean {
  const n = workerNumber();
  return n === undefined || n === 1;
}

export interface PrimaryLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * In a worker: the number of workers and the channel to the primary, for
 * rate limits the primary decides for the whole cluster
 * (`rate_limit.backend: memory`); undefined outside cluster mode.
 */
export function clusterRateLimits(): { workers: number; transport: LimitTransport } | undefined {
  if (workerNumber() === undefined) return undefined;
  const workers = Number(process.env[WORKERS_ENV]);
  return { workers: Number.isInteger(workers) && workers > 0 ? workers : 1, transport: processTransport() };
}

/**
 * In a worker: the other workers, as the brute-force guard sees them (what
 * one counts, all count); undefined outside cluster mode.
 */
export function clusterGuardPeers(): GuardPeers | undefined {
  if (workerNumber() === undefined) return undefined;
  return {
    publish(events) {
      process.send?.({ type: 'portcullis:guard', events } satisfies WorkerMessage);
    },
    subscribe(handler) {
      const onMessage = (message: PrimaryMessage) => {
        if (message?.type === 'portcullis:guard') handler(message.events);
      };
      process.on('message', onMessage);
      return () => process.off('message', onMessage);
    },
  };
}

/**
 * Runs this process as the primary of `count` workers, each started with
 * the same command line. Resolves with the exit code once every worker has
 * stopped after SIGTERM or SIGINT. The primary also decides the workers'
 * in-memory rate limits, on one table of at most `rateLimitKeys` keys per
 * limit (`rate_limit.max_keys`).
 */
export function runPrimary(
  count: number,
  logger: PrimaryLogger,
  options: { rateLimitKeys: number } = { rateLimitKeys: 100_000 },
): Promise<number> {
  const decideLimits = primaryLimits(options.rateLimitKeys);
  const workers = new Map<number, Worker>();
  const startedAt = new Map<number, number>();
  const delays = new Map<number, number>();
  let stopping = false;
  let failed = false;
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    resolveDone = resolve;
  });

  // Metrics of every worker, for the admin worker's /metrics.
  let nextCollect = 1;
  const collecting = new Map<number, { wanted: number; got: MetricsJson[]; finish: () => void }>();
  const collectAll = (): Promise<MetricsJson[]> =>
    new Promise((resolve) => {
      const id = nextCollect++;
      const live = [...workers.values()].filter((w) => w.isConnected());
      const entry = {
        wanted: live.length,
        got: [] as MetricsJson[],
        finish: () => {
          clearTimeout(timer);
          collecting.delete(id);
          resolve(entry.got);
        },
      };
      const timer = setTimeout(entry.finish, METRICS_TIMEOUT_MS);
      collecting.set(id, entry);
      if (live.length === 0) entry.finish();
      for (const w of live) w.send({ type: 'portcullis:collect', id } satisfies PrimaryMessage);
    });

  const onMessage = (worker: Worker, message: WorkerMessage) => {
    if (message === null || typeof message !== 'object') return;
    if (message.type === 'portcullis:rate-limit') {
      // The hot path: one message per event-loop turn of each worker under load.
      const answer = decideLimits(message);
      if (answer !== undefined && worker.isConnected()) worker.send(answer);
    } else if (message.type === 'portcullis:guard') {
      for (const other of workers.values()) {
        if (other !== worker && other.isConnected()) other.send(message);
      }
    } else if (message.type === 'portcullis:collected') {
      const entry = collecting.get(message.id);
      if (entry === undefined) return;
      entry.got.push(message.metrics);
      if (entry.got.length >= entry.wanted) entry.finish();
    } else if (message.type === 'portcullis:metrics') {
      collectAll()
        .then((all) => AggregatorRegistry.aggregate(all).metrics())
        .then(
          (text) => {
            if (worker.isConnected())
              worker.send({
                type: 'portcullis:cluster-metrics',
                id: message.id,
                text,
              } satisfies PrimaryMessage);
          },
          (err: Error) => logger.error({ err: { message: err.message } }, 'cluster metrics failed'),
        );
    } else if (message.type === 'portcullis:workers') {
      // Running: connected and not yet told to stop; a worker being restarted is not.
      const running = [...workers.values()].filter((w) => w.isConnected()).length;
      if (worker.isConnected()) {
        worker.send({
          type: 'portcullis:worker-count',
          id: message.id,
          running,
          wanted: count,
        } satisfies PrimaryMessage);
      }
    } else if (message.type === 'portcullis:reload') {
      reloadAll('admin API');
    }
  };

  const fork = (n: number) => {
    const worker = cluster.fork({ [WORKER_ENV]: String(n), [WORKERS_ENV]: String(count) });
    workers.set(n, worker);
    startedAt.set(n, Date.now());
    worker.on('message', (m: WorkerMessage) => onMessage(worker, m));
    worker.once('online', () => logger.info({ worker: n, pid: worker.process.pid }, 'worker started'));
    // A send racing the worker's exit fails on a closed channel: logged, never an unhandled 'error'.
    worker.on('error', (err) =>
      logger.warn({ worker: n, err: { message: err.message } }, 'worker channel error'),
    );
    worker.on('exit', (code, signal) => {
      if (workers.get(n) === worker) workers.delete(n);
      if (stopping) {
        if (code !== 0) failed = true;
        if (workers.size === 0) resolveDone(failed ? 1 : 0);
        return;
      }
      const lived = Date.now() - (startedAt.get(n) ?? 0);
      const delay =
        lived >= HEALTHY_LIFETIME_MS
          ? FIRST_RESTART_DELAY_MS
          : Math.min((delays.get(n) ?? FIRST_RESTART_DELAY_MS / 2) * 2, MAX_RESTART_DELAY_MS);
      delays.set(n, delay);
      logger.error(
        { worker: n, code, signal, restartInMs: delay },
        'worker stopped unexpectedly; restarting it',
      );
      setTimeout(() => {
        if (!stopping) fork(n);
      }, delay).unref();
    });
  };

  const reloadAll = (by: string) => {
    logger.info({ by, workers: workers.size }, 'reloading every worker');
    for (const w of workers.values()) w.process.kill('SIGHUP');
  };
  const stopAll = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, workers: workers.size }, 'draining and stopping every worker');
    if (workers.size === 0) resolveDone(0);
    for (const w of workers.values()) w.process.kill(signal);
  };
  process.on('SIGHUP', () => reloadAll('SIGHUP'));
  process.once('SIGTERM', () => stopAll('SIGTERM'));
  process.once('SIGINT', () => stopAll('SIGINT'));

  for (let n = 1; n <= count; n++) fork(n);
  logger.info({ workers: count }, 'cluster primary started');
  return done;
}

/**
 * In a worker: answers the primary's requests for this worker's metrics
 * with `collect()`. Does nothing outside cluster mode.
 */
export function answerMetricsRequests(collect: () => Promise<MetricsJson>): void {
  if (!cluster.isWorker) return;
  // The primary gone (its channel closed), a reply fails: nothing to report it to.
  process.on('error', () => {});
  process.on('message', (message: PrimaryMessage) => {
    if (message?.type !== 'portcullis:collect') return;
    collect().then(
      (metrics) =>
        process.send?.({ type: 'portcullis:collected', id: message.id, metrics } satisfies WorkerMessage),
      () =>
        process.send?.({ type: 'portcullis:collected', id: message.id, metrics: [] } satisfies WorkerMessage),
    );
  });
}

let nextRequest = 1;

/** In a worker: sends `ask` with a fresh id and resolves with the primary's answer of type `answer`. */
function askPrimary<T extends PrimaryMessage['type']>(
  ask: (id: number) => WorkerMessage,
  answer: T,
  what: string,
): Promise<Extract<PrimaryMessage, { type: T }>> {
  return new Promise((resolve, reject) => {
    const id = nextRequest++;
    const onMessage = (message: PrimaryMessage) => {
      if (message?.type !== answer || !('id' in message) || message.id !== id) return;
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve(message as Extract<PrimaryMessage, { type: T }>);
    };
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error(`the cluster primary did not answer with ${what}`));
    }, METRICS_TIMEOUT_MS * 2);
    process.on('message', onMessage);
    process.send?.(ask(id));
  });
}

/** In a worker: the Prometheus text of every worker's metrics, summed by the primary. */
export function clusterMetrics(): Promise<string> {
  return askPrimary(
    (id) => ({ type: 'portcullis:metrics', id }),
    'portcullis:cluster-metrics',
    'the metrics',
  ).then((m) => m.text);
}

/**
 * In a worker, as a readiness check: how many of the cluster's workers are
 * running. Fewer than configured (one died and is being restarted) is a
 * note, not a failure: the running workers still serve every request.
 */
export function clusterWorkersCheck(): Promise<string | undefined> {
  return askPrimary(
    (id) => ({ type: 'portcullis:workers', id }),
    'portcullis:worker-count',
    'the worker count',
  ).then(({ running, wanted }) =>
    running >= wanted ? undefined : `${running} of ${wanted} workers running; the others are being restarted`,
  );
}

/** In a worker: asks the primary to reload every worker (as SIGHUP does). False outside cluster mode. */
export function requestClusterReload(): boolean {
  if (!cluster.isWorker || process.send === undefined) return false;
  process.send({ type: 'portcullis:reload' } satisfies WorkerMessage);
  return true;
}
