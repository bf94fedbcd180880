/**
 * Exact in-memory rate limits across the workers of one cluster
 * (`listen.workers` above 1, `rate_limit.backend: memory`).
 *
 * Each worker counting on its own would admit the full rate on every worker,
 * N times the configured limit. Instead the primary process keeps the one
 * GCRA table ({@link MemoryLimiter}, on its own monotonic clock) and every
 * worker asks it: a decision is made in one place, one at a time, so the
 * limits are as exact as on a single process. Processes cannot share a
 * SharedArrayBuffer, and the primary already exists and serves nothing, so
 * it is the natural owner; the cost is one IPC round trip per event-loop
 * turn of a worker, not one per request, because the requests of a turn go
 * in one message ({@link ClusterLimiter}).
 *
 * When the primary does not answer within `timeoutMs` (it is stopping, or
 * stalled), the worker decides the batch on its own with each limit divided
 * by the number of workers, as the Redis backend's fail-open fallback does,
 * and marks the verdicts `fallback`.
 */
import type { LimitCheck, Limiter, Verdict } from './limiter.js';
import { MemoryLimiter } from './limiter.js';
import type { LimitMode, LimitSettings } from './types.js';

/** One limit of a check as sent: name, count, period (ms), burst, mode, then the key. */
type WireCheck = [name: string, count: number, periodMs: number, burst: number, mode: LimitMode, key: string];

/** A worker's batch of decisions to make. */
export interface LimitRequestMessage {
  type: 'portcullis:rate-limit';
  id: number;
  /** One entry per request: its checks and its cost. */
  requests: { checks: WireCheck[]; cost: number }[];
}

/** The primary's verdicts for a batch, in its order. */
export interface LimitAnswerMessage {
  type: 'portcullis:rate-limit-verdicts';
  id: number;
  verdicts: Verdict[];
}

/** How a worker reaches the primary (the IPC channel; tests pass their own). */
export interface LimitTransport {
  send(message: LimitRequestMessage): void;
  /** Calls `handler` with every message the primary sends, until the returned function is called. */
  subscribe(handler: (message: unknown) => void): () => void;
}

/** The IPC channel of this worker process to its primary. */
export function processTransport(): LimitTransport {
  return {
    send(message) {
      process.send?.(message);
    },
    subscribe(handler) {
      process.on('message', handler);
      return () => process.off('message', handler);
    },
  };
}

/** One request's decision, waiting to be sent or answered. */
interface Pending {
  checks: readonly LimitCheck[];
  cost: number;
  resolve: (verdict: Verdict) => void;
}

function toWire({ limit, key }: LimitCheck): WireCheck {
  return [limit.name, limit.count, limit.periodMs, limit.burst, limit.mode, key];
}

const DEFAULT_TIMEOUT_MS = 1000;
/** Batch ids, unique in the process: a limiter replaced by a reload may still have batches in flight. */
let nextId = 1;

/** A worker's rate limiter: every decision is made by the primary. */
export class ClusterLimiter implements Limiter {
  private readonly unsubscribe: () => void;
  /** Requests of this event-loop turn, not sent yet. */
  private batch: Pending[] = [];
  /** Batches sent, by id, until answered or decided by the fallback. */
  private readonly inFlight = new Map<number, { batch: Pending[]; timer: NodeJS.Timeout }>();
  /** Times the primary did not answer in time (the fallback decided). */
  timeouts = 0;

  /**
   * @param fallback decides when the primary does not answer: each limit
   *   divided by the number of workers.
   */
  constructor(
    private readonly transport: LimitTransport,
    readonly fallback: MemoryLimiter,
    private readonly timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {
    this.unsubscribe = transport.subscribe((message) => {
      const m = message as Partial<LimitAnswerMessage> | null;
      if (m?.type !== 'portcullis:rate-limit-verdicts' || typeof m.id !== 'number') return;
      const pending = this.inFlight.get(m.id);
      if (pending === undefined) return; // answered after the timeout: the fallback already decided
      this.inFlight.delete(m.id);
      clearTimeout(pending.timer);
      const verdicts = Array.isArray(m.verdicts) ? m.verdicts : [];
      for (let i = 0; i < pending.batch.length; i++) {
        const p = pending.batch[i]!;
        p.resolve(verdicts[i] ?? this.decideAlone(p));
      }
      this.stopWhenIdle();
    });
  }

  private closed = false;

  /** The fallback's verdict, for a batch entry the primary did not decide. */
  private decideAlone(p: Pending): Verdict {
    return { ...this.fallback.consume(p.checks, p.cost), fallback: true };
  }

  /** Once closed, stops listening when no batch waits for an answer. */
  private stopWhenIdle(): void {
    if (this.closed && this.inFlight.size === 0 && this.batch.length === 0) this.unsubscribe();
  }

  consume(checks: readonly LimitCheck[], cost: number): Promise<Verdict> {
    return new Promise((resolve) => {
      if (this.batch.length === 0) setImmediate(() => this.flush());
      this.batch.push({ checks, cost, resolve });
    });
  }

  /**
   * Stops listening once the batches sent are answered (a reload replaces
   * this limiter while requests it admits are still on their way).
   */
  close(): void {
    this.closed = true;
    this.stopWhenIdle();
  }

  private flush(): void {
    const batch = this.batch;
    this.batch = [];
    if (batch.length === 0) return;
    const id = nextId++;
    const timer = setTimeout(() => {
      this.inFlight.delete(id);
      this.timeouts++;
      for (const p of batch) p.resolve(this.decideAlone(p));
      this.stopWhenIdle();
    }, this.timeoutMs);
    this.inFlight.set(id, { batch, timer });
    this.transport.send({
      type: 'portcullis:rate-limit',
      id,
      requests: batch.map((p) => ({ checks: p.checks.map(toWire), cost: p.cost })),
    });
  }
}

/**
 * In the primary: decides the batches workers send, on one table for the
 * whole cluster. Returns the answer to send back, or undefined for a message
 * that is not a rate-limit request.
 */
export function primaryLimits(maxKeys: number): (message: unknown) => LimitAnswerMessage | undefined {
  const limiter = new MemoryLimiter(maxKeys);
  // The workers send a limit's parameters with each check; one settings object per distinct set.
  const settings = new Map<string, LimitSettings>();
  const settingsOf = ([name, count, periodMs, burst, mode]: WireCheck): LimitSettings => {
    const id = `${name}\n${count}\n${periodMs}\n${burst}\n${mode}`;
    let s = settings.get(id);
    if (s === undefined) {
      // A reload that changes a limit's numbers makes a new entry; the table (by name) carries on.
      if (settings.size >= 10_000) settings.clear();
      s = { type: 'rate', name, key: [], count, periodMs, burst, mode };
      settings.set(id, s);
    }
    return s;
  };
  return (message) => {
    const m = message as Partial<LimitRequestMessage> | null;
    if (m?.type !== 'portcullis:rate-limit' || typeof m.id !== 'number' || !Array.isArray(m.requests)) {
      return undefined;
    }
    // Only this code's workers send these; a malformed one is left unanswered (the worker falls back).
    if (!m.requests.every(wellFormed)) return undefined;
    const verdicts = m.requests.map((r) =>
      limiter.consume(
        r.checks.map((c) => ({ limit: settingsOf(c), key: c[5] })),
        r.cost,
      ),
    );
    return { type: 'portcullis:rate-limit-verdicts', id: m.id, verdicts };
  };
}

function wellFormed(r: unknown): r is { checks: WireCheck[]; cost: number } {
  const { checks, cost } = (r ?? {}) as { checks?: unknown; cost?: unknown };
  return (
    Number.isFinite(cost) &&
    Array.isArray(checks) &&
    checks.every(
      (c) =>
        Array.isArray(c) &&
        c.length === 6 &&
        typeof c[0] === 'string' &&
        Number.isFinite(c[1]) &&
        (c[1] as number) > 0 &&
        Number.isFinite(c[2]) &&
        Number.isFinite(c[3]) &&
        (c[4] === 'enforce' || c[4] === 'shadow') &&
        typeof c[5] === 'string',
    )
  );
}
