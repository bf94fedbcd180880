import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAnomalyEngine } from '../anomaly/index.js';
import { anomalySettings, authFailure, FakeClock } from '../anomaly/test-support/traffic.js';
import { createMetrics } from '../metrics/index.js';
import type { Store } from '../store/index.js';
import { createAlerter } from './alerter.js';
import { createBlocklist } from './blocklist.js';
import { observeAlerting } from './metrics.js';
import { createAlertStore, createBlockStore } from './store.js';
import { openTestSqlite } from './test-support/store.js';

describe('alerting metrics', () => {
  let store: Store;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ store, cleanup } = await openTestSqlite());
  });
  after(() => cleanup?.());

  it('expose findings, alerts, suppressed duplicates, tracked sources and active blocks', async () => {
    const clock = new FakeClock();
    const metrics = createMetrics({ defaultMetrics: false });
    const blocklist = createBlocklist({
      store: createBlockStore(store, { now: clock.now }),
      settings: { refreshMs: 5000, maxEntries: 10 },
      now: clock.now,
    });
    const alerter = createAlerter({
      store: createAlertStore(store),
      settings: {
        webhooks: [],
        cooldownMs: 600_000,
        timeoutMs: 1000,
        retry: { attempts: 1, backoffMs: 10, maxBackoffMs: 10 },
        queueSize: 10,
        concurrency: 1,
      },
      blocklist,
      blockPolicies: { auth_failures: { durationMs: 60_000, status: 429 } },
      now: clock.now,
    });
    let anomaly = createAnomalyEngine(anomalySettings(), {
      now: clock.now,
      onFinding: (f) => alerter.raise(f),
    });
    observeAlerting(metrics, { anomaly: () => anomaly, alerter: () => alerter, blocklist: () => blocklist });
    for (let i = 0; i < 20; i++) {
      clock.advance(100);
      anomaly.emit(authFailure('192.0.2.66'));
    }
    alerter.raise({
      detector: 'auth_failures',
      severity: 'warning',
      subject: { kind: 'ip', id: '192.0.2.66' },
      summary: 'again',
      evidence: {},
      target: { kind: 'route', id: 'list-orders' },
    });
    await alerter.idle();
    const text = await metrics.text();
    for (const line of [
      'portcullis_anomaly_findings_total{detector="auth_failures"} 1',
      'portcullis_anomaly_tracked_sources{detector="auth_failures",table="ip"} 1',
      'portcullis_alerts_raised_total{detector="auth_failures",severity="warning"} 1',
      'portcullis_alerts_suppressed_total 1',
      'portcullis_alerts_active 1',
      'portcullis_alerts_active_evicted_total 0',
      'portcullis_alert_blocks_total 1',
      'portcullis_blocks_active 1',
      'portcullis_alert_queue_depth 0',
    ]) {
      assert.ok(text.includes(`${line}\n`), `missing: ${line}`);
    }
    // After a reload the metrics read the new engine.
    anomaly = createAnomalyEngine(anomalySettings(), { now: clock.now, onFinding: () => {} });
    assert.ok(
      (await metrics.text()).includes('portcullis_anomaly_findings_total{detector="auth_failures"} 0\n'),
    );
    await alerter.close();
  });
});
