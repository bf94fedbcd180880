/**
 * The alerter: turns findings into alerts. One attack makes one alert: a
 * finding whose detector and subject match an alert whose last finding is
 * within the cooldown is folded into it (its count grows, nothing is sent),
 * unless it is more severe. Alerts are stored, delivered to the webhooks
 * whose `min_severity` they reach, announced as `alert.raised` admin events,
 * and, where the detector's policy says so, answered with a temporary block.
 *
 * `raise` never blocks nor throws: findings are processed one at a time in
 * the background (at most 1000 waiting; more are dropped and counted), so
 * the request path only pays for pushing onto a queue.
 *
 * Memory is bounded: at most `maxActiveAlerts` (10 000) running alerts are
 * followed here, and their per-source counts hold at most 100 000 sources
 * in all (see {@link ActiveAlerts} for what eviction does and does not lose).
 */
import type { AlertSettings, BlockPolicy } from '../anomaly/schema.js';
import { type DetectorName, type Finding, SEVERITY_RANK, type Severity } from '../anomaly/types.js';
import type { AdminEvent } from '../events/types.js';
import { LruCache } from '../util/lru.js';
import type { Blocklist } from './blocklist.js';
import { type AlertRecord, type AlertStore, type BlockKind, type DeliveryOutcome, newId } from './store.js';
import {
  type BlockNotice,
  createDeliveryQueue,
  type DeliveryLogger,
  type DeliveryStats,
  renderBody,
} from './webhooks.js';

/** Options of {@link createAlerter}. */
export interface AlerterOptions {
  /** Where alerts are kept; see `createAlertStore`. */
  store: AlertStore;
  /** Compiled `alerts` section. */
  settings: AlertSettings;
  /** Needed for automatic blocks. */
  blocklist?: Blocklist | undefined;
  /** Per detector, the automatic block to apply (`blockPolicies(anomalySettings)`). */
  blockPolicies?: Partial<Record<DetectorName, BlockPolicy>>;
  /** Receives `alert.raised` (blocks announce themselves through the blocklist's own sink). */
  onEvent?: (event: AdminEvent) => void;
  logger?: DeliveryLogger;
  /** Epoch ms; injectable for tests. */
  now?: () => number;
  /** In [0, 1); the retry jitter. */
  random?: () => number;
  /** Findings waiting to be processed at most. Default 1000. */
  maxPendingFindings?: number;
  /** Running alerts followed at most (the least recently active is evicted). Default 10 000. */
  maxActiveAlerts?: number;
  /** Sources counted across all running alerts at most. Default 100 000. */
  maxActiveSources?: number;
}

/** Counters for metrics. */
export interface AlerterStats {
  /** Findings received. */
  findings: number;
  /** Alerts raised, per detector and severity (`detector:severity`). */
  raised: Record<string, number>;
  /** Findings folded into an existing alert. */
  suppressed: number;
  /** Findings dropped because too many were waiting. */
  findingsDropped: number;
  /** Automatic blocks added. */
  blocks: number;
  /** Store operations that failed (the alert was still delivered). */
  storeFailures: number;
  /** Running alerts evicted from the active set by newer ones (see `maxActiveAlerts`). */
  activeEvicted: number;
  deliveries: DeliveryStats;
}

export interface Alerter {
  /** Queues a finding; never throws. */
  raise(finding: Finding): void;
  /** Resolves when every finding raised so far has been processed (stored, blocks applied, deliveries queued). */
  settle(): Promise<void>;
  /** Resolves when, in addition, no delivery is queued, retrying or in flight. */
  idle(): Promise<void>;
  /** Deliveries queued, retrying or in flight. */
  queueDepth(): number;
  /** Running alerts followed (updated and resolved) by this instance: at most `maxActiveAlerts`. */
  activeAlerts(): number;
  /**
   * Saves the counts of running alerts, sends an update of each that had
   * findings since its last one a cooldown ago, and the resolution of each
   * with none for a cooldown. Runs by itself on a timer; tests call it.
   */
  review(): void;
  readonly stats: AlerterStats;
  /**
   * Processes the findings already raised, drops the deliveries waiting or
   * retrying, and resolves once those in flight have ended (at most `timeout`).
   */
  close(): Promise<void>;
}

/**
 * How duplicates are recognised: the same detector about the same target
 * (the attack's scope: a route, the gateway, a key), or, for a finding
 * without one, the same subject.
 */
export function dedupeKey(finding: Finding): string {
  const about = finding.target ?? finding.subject;
  return `${finding.detector}|${about.kind}|${about.id}`;
}

interface Recent {
  id: string;
  severity: Severity;
  lastSeen: number;
  /** Set when this instance raised the alert and evicted it from the active set while it still ran. */
  evicted?: { alert: AlertRecord; lastUpdateAt: number; sinceUpdate: number };
}

/** Sources listed in an alert update at most. */
const TOP_SOURCES = 5;
/** Sources counted per active alert at most (the least active are forgotten beyond it). */
const MAX_SOURCES_PER_ALERT = 1000;

/** An alert this instance raised and is still updating: what has come in since. */
interface Active {
  alert: AlertRecord;
  key: string;
  /** Findings folded in since the last store write. */
  unsaved: number;
  /** Findings folded in since the last update was sent. */
  sinceUpdate: number;
  lastUpdateAt: number;
  sources: Map<string, number>;
}

/**
 * The running alerts, least recently active first: a finding folded in moves
 * its alert to the end. Beyond `maxEntries` the least recently active is
 * evicted, in constant time: like `LruCache`, a live iterator (`cursor`)
 * finds it without walking the slots of entries deleted before it. (A
 * resolved alert is deleted anywhere; a live iterator skips it, and every
 * entry the cursor has passed was evicted or moved to the end.)
 *
 * What eviction does: the alert's count not yet saved is written to the
 * store, and the alert (without its per-source counts) is kept in the
 * alerter's recent-alerts table, not announced. If its attack goes on, the
 * next finding finds it there and puts it back here: the same alert, with
 * its count, updated and resolved as before; no second alert, no store
 * write per finding. If its attack has stopped, no resolution is sent (a
 * resolution after an eviction would be a guess); the stored alert has its
 * count and last finding. So an attacker who runs more than `maxEntries`
 * attacks at once costs each evicted attack its top-sources detail and
 * its resolution message, never a flood of duplicate alerts.
 */
class ActiveAlerts {
  private readonly map = new Map<string, Active>();
  private cursor: Iterator<string> | undefined;
  /** Source entries held by all alerts together. */
  sources = 0;

  constructor(
    readonly maxEntries: number,
    readonly maxSources: number,
    private readonly onEvict: (a: Active) => void,
  ) {}

  get size(): number {
    return this.map.size;
  }

  get(key: string): Active | undefined {
    return this.map.get(key);
  }

  /** Adds an alert, evicting the least recently active beyond the bound. */
  add(a: Active): void {
    this.delete(a.key);
    this.map.set(a.key, a);
    this.sources += a.sources.size;
    while (this.map.size > this.maxEntries) {
      const evicted = this.map.get(this.oldest())!;
      this.delete(evicted.key);
      this.onEvict(evicted);
    }
  }

  /** Marks the alert as the most recently active. */
  touch(a: Active): void {
    this.map.delete(a.key);
    this.map.set(a.key, a);
  }

  /** Counts a finding of `source` in the alert, within both bounds on sources. */
  countSource(a: Active, source: string): void {
    const n = a.sources.get(source);
    if (n !== undefined) a.sources.set(source, n + 1);
    else if (a.sources.size < MAX_SOURCES_PER_ALERT && this.sources < this.maxSources) {
      a.sources.set(source, 1);
      this.sources++;
    }
  }

  delete(key: string): void {
    const a = this.map.get(key);
    if (a === undefined) return;
    this.map.delete(key);
    this.sources -= a.sources.size;
  }

  values(): IterableIterator<Active> {
    return this.map.values();
  }

  private oldest(): string {
    this.cursor ??= this.map.keys();
    let next = this.cursor.next();
    if (next.done) {
      this.cursor = this.map.keys();
      next = this.cursor.next();
    }
    return next.value as string;
  }
}

function topSources(sources: Map<string, number>): string {
  return [...sources]
    .sort((a, b) => b[1] - a[1])
    .slice(0, TOP_SOURCES)
    .map(([s, n]) => `${s} (${n})`)
    .join(', ');
}

const RECENT_ALERTS = 10_000;
const DEFAULT_MAX_ACTIVE = 10_000;
const DEFAULT_MAX_ACTIVE_SOURCES = 100_000;

const formatMs = (ms: number) => (ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`);
const DEFAULT_MAX_PENDING = 1000;

/** Builds the alerter. */
export function createAlerter(options: AlerterOptions): Alerter {
  const { store, settings } = options;
  const now = options.now ?? Date.now;
  const maxPending = options.maxPendingFindings ?? DEFAULT_MAX_PENDING;
  // Dedupe without a query when this instance raised the alert; the store
  // catches those raised by other instances.
  const recent = new LruCache<string, Recent>(RECENT_ALERTS, now);
  // Outcomes of alerts still being delivered, written to the store as they come.
  const outcomes = new Map<string, Record<string, DeliveryOutcome>>();
  // Alerts still running: further findings fold in here, synchronously, so a
  // flood of findings costs neither a queue slot nor a store write each.
  // The bound is RECENT_ALERTS at most, so that an evicted alert is still recent.
  const active = new ActiveAlerts(
    Math.min(options.maxActiveAlerts ?? DEFAULT_MAX_ACTIVE, RECENT_ALERTS),
    options.maxActiveSources ?? DEFAULT_MAX_ACTIVE_SOURCES,
    (a) => {
      stats.activeEvicted++;
      saveCount(a);
      recent.set(a.key, {
        id: a.alert.id,
        severity: a.alert.severity,
        lastSeen: a.alert.lastSeen,
        evicted: { alert: a.alert, lastUpdateAt: a.lastUpdateAt, sinceUpdate: a.sinceUpdate },
      });
    },
  );
  let chain: Promise<void> = Promise.resolve();
  let pendingFindings = 0;
  const stats: AlerterStats = {
    findings: 0,
    raised: {},
    suppressed: 0,
    findingsDropped: 0,
    blocks: 0,
    storeFailures: 0,
    activeEvicted: 0,
    deliveries: { delivered: {}, failed: {}, retried: {}, dropped: 0 },
  };

  const storeFailed = (err: unknown, what: string) => {
    stats.storeFailures++;
    options.logger?.warn({ err: (err as Error)?.message ?? String(err) }, `alert store: ${what} failed`);
  };

  /** Runs `task` after everything queued before it; a failure is logged, never propagated. */
  const enqueue = (task: () => Promise<void>) => {
    chain = chain.then(task).catch((err: unknown) => storeFailed(err, 'processing'));
  };

  const queue = createDeliveryQueue({
    timeoutMs: settings.timeoutMs,
    retry: settings.retry,
    queueSize: settings.queueSize,
    concurrency: settings.concurrency,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.random === undefined ? {} : { random: options.random }),
    onOutcome(alertId, webhook, outcome) {
      const delivery = outcomes.get(alertId);
      if (delivery === undefined) return;
      delivery[webhook] = outcome;
      const done = Object.values(delivery).every((o) => o !== 'pending');
      if (done) outcomes.delete(alertId);
      const snapshot = { ...delivery };
      enqueue(() => store.setDelivery(alertId, snapshot).catch((err) => storeFailed(err, 'delivery update')));
    },
  });
  stats.deliveries = queue.stats;

  const block = async (finding: Finding, alertId: string): Promise<BlockNotice | undefined> => {
    const policy = options.blockPolicies?.[finding.detector];
    const blocklist = options.blocklist;
    const subjectKind = finding.subject.kind;
    if (
      policy === undefined ||
      blocklist === undefined ||
      subjectKind === 'gateway' ||
      subjectKind === 'route'
    )
      return undefined;
    const kind: BlockKind = subjectKind;
    if (blocklist.isBlocked(kind, finding.subject.id) !== undefined) return undefined;
    try {
      const record = await blocklist.add({
        kind,
        subject: finding.subject.id,
        status: policy.status,
        durationMs: policy.durationMs,
        reason: `${finding.detector}: ${finding.summary}`,
        createdBy: 'system',
        alertId,
      });
      stats.blocks++;
      return { id: record.id, status: record.status, until: record.expiresAt };
    } catch (err) {
      storeFailed(err, 'automatic block');
      return undefined;
    }
  };

  /** `t` is when the finding was raised, which a backlog may put well before it is handled. */
  const handle = async (finding: Finding, t: number): Promise<void> => {
    const key = dedupeKey(finding);
    let existing = recent.get(key);
    if (existing !== undefined && t - existing.lastSeen > settings.cooldownMs) existing = undefined;
    if (existing === undefined) {
      try {
        const stored = await store.findRecent(key, t - settings.cooldownMs);
        if (stored) existing = { id: stored.id, severity: stored.severity, lastSeen: stored.lastSeen };
      } catch (err) {
        storeFailed(err, 'dedupe lookup');
      }
    }
    if (existing !== undefined && SEVERITY_RANK[finding.severity] <= SEVERITY_RANK[existing.severity]) {
      const running = active.get(key);
      if (running !== undefined && running.alert.id === existing.id) {
        // Raised while the alert was being created: counted with the others.
        fold(finding, t);
        return;
      }
      if (existing.evicted !== undefined && running === undefined) {
        // Ours, evicted from the active set while it ran, and still running: followed again.
        const { alert, lastUpdateAt, sinceUpdate } = existing.evicted;
        active.add({ alert, key, unsaved: 0, sinceUpdate, lastUpdateAt, sources: new Map() });
        fold(finding, t);
        return;
      }
      stats.suppressed++;
      recent.set(key, { ...existing, lastSeen: t });
      await store.recordDuplicate(existing.id, t).catch((err) => storeFailed(err, 'duplicate count'));
      await block(finding, existing.id);
      return;
    }

    const webhooks = settings.webhooks.filter(
      (w) => SEVERITY_RANK[finding.severity] >= SEVERITY_RANK[w.minSeverity],
    );
    const alert: AlertRecord = {
      id: newId('alr'),
      detector: finding.detector,
      severity: finding.severity,
      subject: finding.subject,
      summary: finding.summary,
      evidence: finding.evidence,
      firstSeen: t,
      lastSeen: t,
      count: 1,
      delivery: Object.fromEntries(webhooks.map((w) => [w.name, 'pending' as const])),
    };
    if (finding.target !== undefined) {
      alert.subject = finding.target;
      alert.evidence = { ...finding.evidence, sources: `${finding.subject.kind}:${finding.subject.id}` };
    }
    recent.set(key, { id: alert.id, severity: alert.severity, lastSeen: t });
    active.add({
      alert,
      key,
      unsaved: 0,
      sinceUpdate: 0,
      lastUpdateAt: t,
      sources: new Map([[`${finding.subject.kind}:${finding.subject.id}`, 1]]),
    });
    await store.insert(alert, key).catch((err) => storeFailed(err, 'insert'));
    const label = `${alert.detector}:${alert.severity}`;
    stats.raised[label] = (stats.raised[label] ?? 0) + 1;
    const blocked = await block(finding, alert.id);
    options.onEvent?.({
      type: 'admin',
      time: new Date(t).toISOString(),
      action: 'alert.raised',
      actor: 'system',
      target: `${alert.subject.kind}:${alert.subject.id}`,
      detail: {
        alert: alert.id,
        detector: alert.detector,
        severity: alert.severity,
        ...(blocked === undefined ? {} : { block: blocked.id }),
      },
    });
    if (webhooks.length > 0) outcomes.set(alert.id, { ...alert.delivery });
    for (const webhook of webhooks) queue.enqueue(webhook, alert.id, renderBody(webhook, alert, blocked));
  };

  /** Sends an update (or the resolution) of an active alert to its webhooks and as an admin event. */
  const announce = (a: Active, kind: 'updated' | 'resolved', t: number): void => {
    const { alert } = a;
    const sources = topSources(a.sources);
    const record: AlertRecord = {
      ...alert,
      summary:
        kind === 'resolved'
          ? `Resolved: ${alert.detector} against ${alert.subject.kind} ${alert.subject.id}, ${alert.count} findings from ${a.sources.size} sources; none for ${formatMs(settings.cooldownMs)}.`
          : `Ongoing: ${alert.detector} against ${alert.subject.kind} ${alert.subject.id}, ${alert.count} findings from ${a.sources.size} sources so far (${a.sinceUpdate} since the last update).`,
      evidence: { ...alert.evidence, findings: alert.count, sources: a.sources.size, top_sources: sources },
    };
    options.onEvent?.({
      type: 'admin',
      time: new Date(t).toISOString(),
      action: `alert.${kind}`,
      actor: 'system',
      target: `${alert.subject.kind}:${alert.subject.id}`,
      detail: { alert: alert.id, detector: alert.detector, findings: alert.count, sources: a.sources.size },
    });
    const webhooks = settings.webhooks.filter(
      (w) => SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[w.minSeverity],
    );
    for (const webhook of webhooks) queue.enqueue(webhook, alert.id, renderBody(webhook, record, undefined));
  };

  /** Folds a finding into an alert still running; false when there is none to fold into. */
  const fold = (finding: Finding, t: number): boolean => {
    const a = active.get(dedupeKey(finding));
    if (a === undefined || t - a.alert.lastSeen > settings.cooldownMs) return false;
    if (SEVERITY_RANK[finding.severity] > SEVERITY_RANK[a.alert.severity]) return false;
    a.alert.count++;
    a.alert.lastSeen = t;
    a.unsaved++;
    a.sinceUpdate++;
    active.countSource(a, `${finding.subject.kind}:${finding.subject.id}`);
    active.touch(a);
    stats.suppressed++;
    recent.set(a.key, { id: a.alert.id, severity: a.alert.severity, lastSeen: t });
    if (options.blockPolicies?.[finding.detector] !== undefined) {
      enqueue(async () => {
        await block(finding, a.alert.id);
      });
    }
    return true;
  };

  /** Queues the store update of the findings folded into a running alert since the last one. */
  function saveCount(a: Active): void {
    if (a.unsaved === 0) return;
    const n = a.unsaved;
    const at = a.alert.lastSeen;
    a.unsaved = 0;
    enqueue(() =>
      store.recordDuplicates(a.alert.id, n, at).catch((err) => storeFailed(err, 'duplicate count')),
    );
  }

  /** Queues the store update of the findings folded into running alerts since the last one. */
  const saveCounts = (): void => {
    for (const a of active.values()) saveCount(a);
  };

  /** Saves counts, sends one update per cooldown while findings come in, and the resolution after. */
  const review = (): void => {
    const t = now();
    saveCounts();
    for (const a of active.values()) {
      if (t - a.alert.lastSeen > settings.cooldownMs) {
        active.delete(a.key);
        announce(a, 'resolved', t);
      } else if (a.sinceUpdate > 0 && t - a.lastUpdateAt >= settings.cooldownMs) {
        announce(a, 'updated', t);
        a.sinceUpdate = 0;
        a.lastUpdateAt = t;
      }
    }
  };
  const reviewTimer = setInterval(review, Math.max(50, Math.min(settings.cooldownMs / 4, 10_000)));
  reviewTimer.unref();

  const settle = async (): Promise<void> => {
    // A task may queue more (delivery outcomes, folded counts): wait until the chain stops growing.
    for (let seen = chain; ; seen = chain) {
      await seen;
      saveCounts();
      if (seen === chain) return;
    }
  };

  return {
    stats,
    raise(finding) {
      stats.findings++;
      if (fold(finding, now())) return;
      if (pendingFindings >= maxPending) {
        stats.findingsDropped++;
        return;
      }
      pendingFindings++;
      const t = now();
      enqueue(() => handle(finding, t).finally(() => pendingFindings--));
    },
    settle,
    async idle() {
      // Bounded: each round either finds everything idle or waits for work that was in progress.
      for (let round = 0; round < 1000; round++) {
        await settle();
        await queue.idle();
        await settle();
        if (queue.depth() === 0 && pendingFindings === 0) return;
      }
    },
    queueDepth: () => queue.depth(),
    activeAlerts: () => active.size,
    review,
    async close() {
      clearInterval(reviewTimer);
      await settle();
      queue.close();
      // Deliveries in flight end within the timeout; none is retried any more.
      await queue.idle();
      await settle();
    },
  };
}
