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
  readonly stats: AlerterStats;
  /**
   * Processes the findings already raised, drops the deliveries waiting or
   * retrying, and resolves once those in flight have ended (at most `timeout`).
   */
  close(): Promise<void>;
}

/** How duplicates are recognised: the same detector about the same subject. */
export function dedupeKey(finding: Finding): string {
  return `${finding.detector}|${finding.subject.kind}|${finding.subject.id}`;
}

interface Recent {
  id: string;
  severity: Severity;
  lastSeen: number;
}

const RECENT_ALERTS = 10_000;
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
  let chain: Promise<void> = Promise.resolve();
  let pendingFindings = 0;
  const stats: AlerterStats = {
    findings: 0,
    raised: {},
    suppressed: 0,
    findingsDropped: 0,
    blocks: 0,
    storeFailures: 0,
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
    if (policy === undefined || blocklist === undefined || finding.subject.kind === 'gateway')
      return undefined;
    const kind: BlockKind = finding.subject.kind;
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
    recent.set(key, { id: alert.id, severity: alert.severity, lastSeen: t });
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

  const settle = async (): Promise<void> => {
    // A task may queue more (delivery outcomes): wait until the chain stops growing.
    for (let seen = chain; ; seen = chain) {
      await seen;
      if (seen === chain) return;
    }
  };

  return {
    stats,
    raise(finding) {
      stats.findings++;
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
    async close() {
      await settle();
      queue.close();
      // Deliveries in flight end within the timeout; none is retried any more.
      await queue.idle();
      await settle();
    },
  };
}
