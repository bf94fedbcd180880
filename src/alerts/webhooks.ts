/**
 * Webhook delivery: the two bodies (a generic JSON object and a
 * Slack-compatible message) and a bounded queue that POSTs them with a
 * timeout, retries failures with exponential backoff and jitter, and keeps at
 * most `queue_size` deliveries: a receiver that is down for hours costs a
 * fixed amount of memory, the oldest deliveries being dropped and counted.
 *
 * Webhook URLs and tokens are secrets (a Slack URL is its own credential):
 * logs and errors name the webhook, never its URL.
 */
import { request } from 'undici';
import type { WebhookSettings } from '../anomaly/schema.js';
import type { AlertRecord } from './store.js';

/** What an alert's delivery says about an automatic block it caused. */
export interface BlockNotice {
  id: string;
  status: 403 | 429;
  /** Epoch ms. */
  until: number;
}

/** The generic JSON body: the alert as stored, plus the block it caused. */
export function jsonBody(alert: AlertRecord, block: BlockNotice | undefined): string {
  return JSON.stringify({
    type: 'portcullis.alert',
    id: alert.id,
    time: new Date(alert.firstSeen).toISOString(),
    detector: alert.detector,
    severity: alert.severity,
    subject: alert.subject,
    summary: alert.summary,
    evidence: alert.evidence,
    count: alert.count,
    block:
      block === undefined
        ? null
        : { id: block.id, status: block.status, until: new Date(block.until).toISOString() },
  });
}

/** Slack mrkdwn treats `&`, `<` and `>` as control characters (links, mentions). */
function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

const ICON: Record<string, string> = {
  info: ':information_source:',
  warning: ':warning:',
  critical: ':rotating_light:',
};

/**
 * A Slack incoming-webhook message: `text` (the notification and the
 * fallback) and Block Kit `blocks` (header, summary, up to ten fields,
 * context), within Slack's length limits.
 */
export function slackBody(alert: AlertRecord, block: BlockNotice | undefined): string {
  const subject = `${alert.subject.kind} ${alert.subject.id}`;
  const fields = [
    `*Severity*\n${alert.severity}`,
    `*Subject*\n${subject}`,
    ...Object.entries(alert.evidence).map(([k, v]) => `*${k}*\n${String(v)}`),
  ];
  if (block !== undefined) {
    fields.push(`*Blocked until*\n${new Date(block.until).toISOString()} (${block.status})`);
  }
  return JSON.stringify({
    text: clip(
      `${ICON[alert.severity] ?? ''} [${alert.severity.toUpperCase()}] ${escapeSlack(alert.summary)}`,
      3000,
    ),
    blocks: [
      {
        type: 'header',
        text: { type: 'plain_text', text: clip(`Portcullis: ${alert.detector} (${alert.severity})`, 150) },
      },
      { type: 'section', text: { type: 'mrkdwn', text: clip(escapeSlack(alert.summary), 3000) } },
      {
        type: 'section',
        fields: fields.slice(0, 10).map((text) => ({ type: 'mrkdwn', text: clip(escapeSlack(text), 2000) })),
      },
      {
        type: 'context',
        elements: [
          {
            type: 'mrkdwn',
            text: `${alert.id} · ${new Date(alert.firstSeen).toISOString()} · \`portcullis alerts list\``,
          },
        ],
      },
    ],
  });
}

/** The body for a webhook's format. */
export function renderBody(
  webhook: WebhookSettings,
  alert: AlertRecord,
  block: BlockNotice | undefined,
): string {
  return webhook.format === 'slack' ? slackBody(alert, block) : jsonBody(alert, block);
}

/** The final outcome of one delivery. */
export type FinalOutcome = 'delivered' | 'failed' | 'dropped';

/** The part of a logger the queue uses. */
export interface DeliveryLogger {
  warn(details: Record<string, unknown>, message: string): void;
}

/** Options of {@link createDeliveryQueue}. */
export interface DeliveryQueueOptions {
  timeoutMs: number;
  retry: { attempts: number; backoffMs: number; maxBackoffMs: number };
  queueSize: number;
  concurrency: number;
  /** Called once per delivery with its final outcome. */
  onOutcome(alertId: string, webhook: string, outcome: FinalOutcome): void;
  logger?: DeliveryLogger;
  /** In [0, 1); injectable so tests can fix the jitter. */
  random?: () => number;
}

/** Counters for metrics, per webhook name where it matters. */
export interface DeliveryStats {
  delivered: Record<string, number>;
  failed: Record<string, number>;
  /** Attempts that failed and were scheduled again. */
  retried: Record<string, number>;
  /** Deliveries dropped because the queue was full. */
  dropped: number;
}

export interface DeliveryQueue {
  enqueue(webhook: WebhookSettings, alertId: string, body: string): void;
  /** Deliveries queued, waiting to retry or in flight. */
  depth(): number;
  inFlight(): number;
  /** Resolves when nothing is queued or in flight. */
  idle(): Promise<void>;
  /** Drops every queued delivery (counted as dropped) and stops retry timers. */
  close(): void;
  readonly stats: DeliveryStats;
}

interface Delivery {
  seq: number;
  webhook: WebhookSettings;
  alertId: string;
  body: string;
  attempt: number;
  state: 'ready' | 'waiting' | 'sending';
  timer: NodeJS.Timeout | undefined;
}

/** Statuses worth another attempt: the receiver may take it later. */
const RETRYABLE = (status: number) => status === 408 || status === 425 || status === 429 || status >= 500;

/** Seconds of a Retry-After header given as delay-seconds; dates are ignored. */
function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || !/^\d{1,6}$/.test(text)) return undefined;
  return Number(text) * 1000;
}

/** Delay before attempt `attempt + 1`: backoff × 2^(attempt-1), capped, then "equal jitter" (50–100%). */
export function backoffDelay(
  attempt: number,
  retry: { backoffMs: number; maxBackoffMs: number },
  random: () => number,
): number {
  const base = Math.min(retry.maxBackoffMs, retry.backoffMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(base / 2 + (base / 2) * random());
}

/** Builds the delivery queue. */
export function createDeliveryQueue(options: DeliveryQueueOptions): DeliveryQueue {
  const random = options.random ?? Math.random;
  // Every unfinished delivery, in the order it was enqueued: the first one not
  // being sent is the one dropped when the queue is full.
  const pending = new Map<number, Delivery>();
  const ready: Delivery[] = [];
  let sending = 0;
  let seq = 0;
  let closed = false;
  let waiters: Array<() => void> = [];
  const stats: DeliveryStats = { delivered: {}, failed: {}, retried: {}, dropped: 0 };
  const bump = (table: Record<string, number>, name: string) => {
    table[name] = (table[name] ?? 0) + 1;
  };

  const finish = (d: Delivery, outcome: FinalOutcome) => {
    pending.delete(d.seq);
    clearTimeout(d.timer);
    if (d.state === 'ready') {
      const at = ready.indexOf(d);
      if (at !== -1) ready.splice(at, 1);
    }
    if (outcome === 'dropped') stats.dropped++;
    else bump(outcome === 'delivered' ? stats.delivered : stats.failed, d.webhook.name);
    options.onOutcome(d.alertId, d.webhook.name, outcome);
    if (pending.size === 0) {
      const resolved = waiters;
      waiters = [];
      for (const resolve of resolved) resolve();
    }
  };

  const pump = () => {
    while (sending < options.concurrency && ready.length > 0) {
      const d = ready.shift()!;
      if (!pending.has(d.seq) || d.state !== 'ready') continue;
      d.state = 'sending';
      sending++;
      void attempt(d).finally(() => {
        sending--;
        pump();
      });
    }
  };

  const attempt = async (d: Delivery): Promise<void> => {
    d.attempt++;
    let status: number | undefined;
    let retryAfter: number | undefined;
    let error: string | undefined;
    try {
      const response = await request(d.webhook.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'portcullis-alerts',
          ...(d.webhook.token === undefined ? {} : { authorization: `Bearer ${d.webhook.token}` }),
        },
        body: d.body,
        signal: AbortSignal.timeout(options.timeoutMs),
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
      });
      status = response.statusCode;
      retryAfter = retryAfterMs(response.headers['retry-after']);
      await response.body.dump().catch(() => {});
    } catch (err) {
      // The code or name only: undici's messages can quote the address.
      error = (err as { code?: string }).code ?? (err as Error).name ?? 'error';
    }
    if (!pending.has(d.seq)) return; // dropped or closed meanwhile
    if (status !== undefined && status >= 200 && status < 300) {
      finish(d, 'delivered');
      return;
    }
    const retryable = status === undefined || RETRYABLE(status);
    const details = {
      webhook: d.webhook.name,
      attempt: d.attempt,
      ...(status === undefined ? { error } : { status }),
    };
    if (!retryable || d.attempt >= options.retry.attempts || closed) {
      options.logger?.warn(details, 'alert delivery failed; giving up');
      finish(d, 'failed');
      return;
    }
    bump(stats.retried, d.webhook.name);
    const delay = Math.min(
      options.retry.maxBackoffMs,
      Math.max(backoffDelay(d.attempt, options.retry, random), retryAfter ?? 0),
    );
    options.logger?.warn({ ...details, retryInMs: delay }, 'alert delivery failed; retrying');
    d.state = 'waiting';
    d.timer = setTimeout(() => {
      d.timer = undefined;
      d.state = 'ready';
      ready.push(d);
      pump();
    }, delay);
    // Retries must not keep a stopping process alive; close() drops them.
    d.timer.unref();
  };

  const dropOldest = () => {
    for (const d of pending.values()) {
      if (d.state === 'sending') continue;
      options.logger?.warn(
        { webhook: d.webhook.name, alert: d.alertId },
        'alert delivery queue full; dropping the oldest',
      );
      finish(d, 'dropped');
      return;
    }
  };

  return {
    stats,
    enqueue(webhook, alertId, body) {
      if (closed) return;
      while (pending.size >= options.queueSize && pending.size > 0) {
        const before = pending.size;
        dropOldest();
        if (pending.size === before) break; // everything left is in flight
      }
      const d: Delivery = {
        seq: ++seq,
        webhook,
        alertId,
        body,
        attempt: 0,
        state: 'ready',
        timer: undefined,
      };
      pending.set(d.seq, d);
      ready.push(d);
      pump();
    },
    depth: () => pending.size,
    inFlight: () => sending,
    idle() {
      if (pending.size === 0) return Promise.resolve();
      return new Promise((resolve) => waiters.push(resolve));
    },
    close() {
      closed = true;
      for (const d of [...pending.values()]) if (d.state !== 'sending') finish(d, 'dropped');
      ready.length = 0;
    },
  };
}
