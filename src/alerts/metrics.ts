/**
 * Metrics of detection, alerting and blocks, sampled at scrape time from the
 * components' own counters (nothing is added to their hot paths). The
 * components are read through functions, so the metrics follow a reload
 * that replaces them; counters restart with a new component, which
 * Prometheus's `rate()` treats as a counter reset.
 */
import type { AnomalyEngine } from '../anomaly/index.js';
import type { Metrics, Sample } from '../metrics/index.js';
import type { Alerter } from './alerter.js';
import type { Blocklist } from './blocklist.js';

/** The components to observe; each is looked up at every scrape. */
export interface AlertingParts {
  anomaly?: () => AnomalyEngine | undefined;
  alerter?: () => Alerter | undefined;
  blocklist?: () => Blocklist | undefined;
}

/** Registers `portcullis_anomaly_*`, `portcullis_alert*` and `portcullis_blocks_*` on `metrics`. */
export function observeAlerting(
  metrics: Pick<Metrics, 'registerGauge' | 'registerCounter'>,
  parts: AlertingParts,
): void {
  const anomaly = parts.anomaly ?? (() => undefined);
  const alerter = parts.alerter ?? (() => undefined);
  const blocklist = parts.blocklist ?? (() => undefined);

  metrics.registerCounter(
    'portcullis_anomaly_findings_total',
    'Findings (episodes) reported by each anomaly detector.',
    () => Object.entries(anomaly()?.stats.findings ?? {}).map(([detector, n]): Sample => [{ detector }, n]),
    ['detector'],
  );
  metrics.registerGauge(
    'portcullis_anomaly_tracked_sources',
    'Sources each detector holds state for, per table (bounded by anomaly.max_sources).',
    function* () {
      for (const [detector, tables] of Object.entries(anomaly()?.tracked() ?? {})) {
        for (const [table, n] of Object.entries(tables ?? {})) yield [{ detector, table }, n] as Sample;
      }
    },
    ['detector', 'table'],
  );
  metrics.registerCounter(
    'portcullis_alerts_raised_total',
    'Alerts raised, by detector and severity.',
    () =>
      Object.entries(alerter()?.stats.raised ?? {}).map(([key, n]): Sample => {
        const [detector = '', severity = ''] = key.split(':');
        return [{ detector, severity }, n];
      }),
    ['detector', 'severity'],
  );
  metrics.registerCounter(
    'portcullis_alerts_suppressed_total',
    'Findings folded into an existing alert within the cooldown.',
    () => alerter()?.stats.suppressed,
  );
  metrics.registerGauge(
    'portcullis_alerts_active',
    'Alerts running now (raised and not yet resolved); bounded, see portcullis_alerts_active_evicted_total.',
    () => alerter()?.activeAlerts(),
  );
  metrics.registerCounter(
    'portcullis_alerts_active_evicted_total',
    'Running alerts evicted to keep the table bounded: each keeps its stored count and comes back as the same alert if its attack goes on.',
    () => alerter()?.stats.activeEvicted,
  );
  metrics.registerCounter(
    'portcullis_alerts_findings_dropped_total',
    'Findings dropped because too many were waiting to be processed.',
    () => alerter()?.stats.findingsDropped,
  );
  metrics.registerCounter(
    'portcullis_alert_deliveries_total',
    'Webhook deliveries by outcome: delivered, failed (given up) or retried (an attempt failed and was scheduled again).',
    function* () {
      const deliveries = alerter()?.stats.deliveries;
      if (deliveries === undefined) return;
      for (const outcome of ['delivered', 'failed', 'retried'] as const) {
        for (const [webhook, n] of Object.entries(deliveries[outcome]))
          yield [{ webhook, outcome }, n] as Sample;
      }
    },
    ['webhook', 'outcome'],
  );
  metrics.registerCounter(
    'portcullis_alert_deliveries_dropped_total',
    'Deliveries dropped because the delivery queue was full.',
    () => alerter()?.stats.deliveries.dropped,
  );
  metrics.registerGauge(
    'portcullis_alert_queue_depth',
    'Deliveries queued, waiting to retry or in flight.',
    () => alerter()?.queueDepth(),
  );
  metrics.registerCounter(
    'portcullis_alert_store_failures_total',
    'Alert store operations that failed (the alert was still delivered).',
    () => alerter()?.stats.storeFailures,
  );
  metrics.registerCounter(
    'portcullis_alert_blocks_total',
    'Automatic blocks added in response to findings.',
    () => alerter()?.stats.blocks,
  );
  metrics.registerGauge('portcullis_blocks_active', 'Active blocks held by this instance.', () =>
    blocklist()?.size(),
  );
  metrics.registerCounter(
    'portcullis_blocks_refresh_failures_total',
    'Failed reloads of the blocklist from the store.',
    () => blocklist()?.stats.refreshFailures,
  );
}
