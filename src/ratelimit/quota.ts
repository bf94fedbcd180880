/**
 * Quotas per UTC day or month, kept in the store so that a restart does not
 * reset them, with a write-behind counter: a request is checked and counted
 * in memory, and the usage is added to the store in one batch every
 * `flushMs` (one transaction, `used = used + delta … returning used`).
 *
 * - Each flush brings back the total that every instance has written, so
 *   instances sharing one store learn each other's usage once per flush. A
 *   quota can therefore be overrun by what the other instances admit in
 *   one flush interval.
 * - A crash loses at most the usage counted since the last flush (by
 *   default one second of traffic): the quota then undercounts by that much.
 * - Memory is bounded: at most `maxKeys` counters are remembered (LRU); a
 *   counter with unwritten usage stays in the pending list until written,
 *   so that list holds the subjects counted in one flush interval (more
 *   only while writes fail and reads still succeed: a subject is only
 *   counted once its counter was read). An evicted counter is read back
 *   from the store, so eviction loses nothing but the read.
 */
import type { Logger } from '../log.js';
import type { Db } from '../store/types.js';
import { LruCache } from '../util/lru.js';
import type { QuotaSettings } from './types.js';

export interface QuotaEntry {
  readonly quota: string;
  readonly subject: string;
  readonly period: string;
  /** ISO time the period ends (UTC). */
  readonly periodEnd: string;
  /** Total usage in the store as of the last read or flush (every instance's). */
  stored: number;
  /** Usage counted here and not yet written. */
  pending: number;
  /** Part of `pending` being written by the flush in progress. */
  flushing: number;
}

/** The period a time falls in: `2025-03-14` (day) or `2025-03` (month), and when it ends. */
export function quotaPeriod(period: 'day' | 'month', nowMs: number): { id: string; endMs: number } {
  const d = new Date(nowMs);
  if (period === 'day') {
    return {
      id: d.toISOString().slice(0, 10),
      endMs: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1),
    };
  }
  return { id: d.toISOString().slice(0, 7), endMs: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
}

const UPSERT = `insert into rate_limit_quotas (quota, subject, period, used, period_end, updated_at)
values ($1, $2, $3, $4, $5, $6)
on conflict (quota, subject, period) do update
set used = rate_limit_quotas.used + excluded.used, updated_at = excluded.updated_at
returning used`;

/** Rows whose period ended this long ago are deleted. */
const KEEP_MS = 35 * 86_400_000;
const PRUNE_EVERY_MS = 3_600_000;

export class QuotaCounter {
  private readonly entries: LruCache<string, QuotaEntry>;
  /** Entries with usage not yet written; drained by every flush. */
  private readonly dirty = new Map<string, QuotaEntry>();
  private readonly loading = new Map<string, Promise<QuotaEntry>>();
  private readonly periods = new Map<string, { id: string; endMs: number; endIso: string }>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private lastPrune = 0;
  private failing = false;

  constructor(
    private readonly db: Db,
    private readonly options: {
      maxKeys: number;
      flushMs: number;
      logger: Logger;
      now?: () => number;
    },
  ) {
    this.entries = new LruCache(options.maxKeys);
  }

  private get now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** Starts the periodic flush. */
  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.options.flushMs);
    this.timer.unref();
  }

  /** Counters held in memory (for the memory-bound test and metrics). */
  get size(): number {
    return this.entries.size;
  }

  private period(q: QuotaSettings, now: number): { id: string; endMs: number; endIso: string } {
    let p = this.periods.get(q.period);
    if (p === undefined || now >= p.endMs) {
      const next = quotaPeriod(q.period, now);
      p = { ...next, endIso: new Date(next.endMs).toISOString() };
      this.periods.set(q.period, p);
    }
    return p;
  }

  /** Time until the current period of `q` ends. */
  msToPeriodEnd(q: QuotaSettings): number {
    const now = this.now;
    return this.period(q, now).endMs - now;
  }

  /**
   * The counter of `subject` for the current period: at once when it is in
   * memory, after one store read otherwise (concurrent callers share it).
   */
  entry(q: QuotaSettings, subject: string): QuotaEntry | Promise<QuotaEntry> {
    const p = this.period(q, this.now);
    const id = `${q.name}\u0000${subject}\u0000${p.id}`;
    let known = this.entries.get(id);
    if (known === undefined) {
      // Forgotten by the LRU while its usage was still unwritten.
      known = this.dirty.get(id);
      if (known !== undefined) this.entries.set(id, known);
    }
    if (known !== undefined) return known;
    let pending = this.loading.get(id);
    if (pending === undefined) {
      pending = this.db
        .query<{ used: number }>(
          'select used from rate_limit_quotas where quota = $1 and subject = $2 and period = $3',
          [q.name, subject, p.id],
        )
        .then((rows) => {
          const entry: QuotaEntry = {
            quota: q.name,
            subject,
            period: p.id,
            periodEnd: p.endIso,
            stored: Number(rows[0]?.used ?? 0),
            pending: 0,
            flushing: 0,
          };
          this.entries.set(id, entry);
          return entry;
        })
        .finally(() => this.loading.delete(id));
      this.loading.set(id, pending);
    }
    return pending;
  }

  /** Units used in the entry's period, as far as this instance knows. */
  used(entry: QuotaEntry): number {
    return entry.stored + entry.pending;
  }

  /** Counts `cost` units; written to the store by the next flush. */
  add(entry: QuotaEntry, cost: number): void {
    entry.pending += cost;
    this.dirty.set(`${entry.quota}\u0000${entry.subject}\u0000${entry.period}`, entry);
  }

  /** Writes pending usage in one transaction; on failure it stays pending for the next try. */
  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async write(): Promise<void> {
    const batch = [...this.dirty.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const now = this.now;
    if (batch.length > 0) {
      for (const [, e] of batch) e.flushing = e.pending;
      const updatedAt = new Date(now).toISOString();
      try {
        // Sorted, so concurrent instances lock rows in the same order (no deadlock on PostgreSQL).
        const totals = await this.db.transaction(async (tx) => {
          const out: number[] = [];
          for (const [, e] of batch) {
            const rows = await tx.query<{ used: number }>(UPSERT, [
              e.quota,
              e.subject,
              e.period,
              e.flushing,
              e.periodEnd,
              updatedAt,
            ]);
            out.push(Number(rows[0]!.used));
          }
          return out;
        });
        batch.forEach(([id, e], i) => {
          e.pending -= e.flushing;
          e.flushing = 0;
          e.stored = totals[i]!;
          if (e.pending === 0) this.dirty.delete(id);
        });
        if (this.failing) {
          this.failing = false;
          this.options.logger.info('quota usage written to the store again');
        }
      } catch (err) {
        for (const [, e] of batch) e.flushing = 0;
        if (!this.failing) {
          this.failing = true;
          this.options.logger.warn({ err }, 'writing quota usage to the store failed; kept for the next try');
        }
        return;
      }
    }
    if (now - this.lastPrune > PRUNE_EVERY_MS) {
      this.lastPrune = now;
      await this.db
        .execute('delete from rate_limit_quotas where period_end < $1', [
          new Date(now - KEEP_MS).toISOString(),
        ])
        .catch((err: unknown) => this.options.logger.warn({ err }, 'pruning old quota rows failed'));
    }
  }

  /** Stops the timer and writes what is pending. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flushing;
    await this.flush();
  }
}
