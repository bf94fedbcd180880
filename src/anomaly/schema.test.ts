import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import { configReference } from '../config/reference.js';
import { SECRET_REF_PATTERN as CONFIG_SECRET_REF_PATTERN } from '../config/schema.js';
import {
  AlertsSchema,
  AnomalySchema,
  BlocksSchema,
  blockPolicies,
  compileAlerts,
  compileBlocks,
  parseRate,
  type RawAlerts,
  type RawBlocks,
  SECRET_REF_PATTERN,
} from './schema.js';
import { anomalySettings, validSection } from './test-support/traffic.js';

const rejects = (schema: Parameters<typeof validSection>[0], raw: unknown, pattern: RegExp) =>
  assert.throws(() => validSection(schema, raw), pattern);

describe('the anomaly, alerts and blocks config', () => {
  it('fills in the documented defaults when the sections are left out', () => {
    const s = anomalySettings();
    assert.equal(s.enabled, true);
    assert.equal(s.maxSources, 10_000);
    const d = s.detectors;
    assert.deepEqual(
      [d.auth_failures.threshold, d.auth_failures.windowMs, d.auth_failures.reasons],
      [20, 60_000, ['auth.invalid_credentials', 'auth.locked_out']],
    );
    assert.deepEqual(
      [d.rate_spike.factor, d.rate_spike.minRatePerSecond, d.rate_spike.intervalMs, d.rate_spike.halfLifeMs],
      [10, 5, 10_000, 300_000],
    );
    assert.deepEqual(
      [d.enumeration.ratio, d.enumeration.minRequests, d.enumeration.statuses],
      [0.5, 20, [403, 404]],
    );
    assert.deepEqual([d.scraping.threshold, d.scraping.windowMs], [100, 60_000]);
    assert.deepEqual([d.injection.threshold, d.injection.reasons], [10, ['input.rejected', 'input.invalid']]);
    assert.deepEqual(
      [
        d.gateway_spike.factor,
        d.gateway_spike.minRatePerSecond,
        d.gateway_spike.errorRatio,
        d.gateway_spike.severity,
      ],
      [5, 20, 0.25, 'critical'],
    );
    assert.deepEqual(blockPolicies(s), {}, 'no automatic block unless asked for');

    const alerts = compileAlerts(validSection<RawAlerts>(AlertsSchema, undefined));
    assert.deepEqual(alerts.issues, []);
    assert.deepEqual(alerts.settings, {
      webhooks: [],
      cooldownMs: 600_000,
      timeoutMs: 5000,
      retry: { attempts: 5, backoffMs: 1000, maxBackoffMs: 300_000 },
      queueSize: 1000,
      concurrency: 4,
    });
    assert.deepEqual(compileBlocks(validSection<RawBlocks>(BlocksSchema, undefined)), {
      refreshMs: 5000,
      maxEntries: 100_000,
    });
  });

  it('turns on automatic blocking per detector, with its duration and status', () => {
    const s = anomalySettings({
      detectors: {
        auth_failures: { block: { enabled: true } },
        enumeration: { block: { enabled: true, for: '1h', status: 403 } },
      },
    });
    assert.deepEqual(blockPolicies(s), {
      auth_failures: { durationMs: 900_000, status: 429 },
      enumeration: { durationMs: 3_600_000, status: 403 },
    });
  });

  it('rejects zero windows and rates, unknown keys and statuses other than 403 and 429', () => {
    rejects(
      AnomalySchema,
      { detectors: { auth_failures: { window: '0s' } } },
      /auth_failures\/window must match pattern/,
    );
    rejects(
      AnomalySchema,
      { detectors: { rate_spike: { min_rate: '0/s' } } },
      /rate_spike\/min_rate must match pattern/,
    );
    rejects(
      AnomalySchema,
      { detectors: { rate_spike: { min_rate: '5 per second' } } },
      /rate_spike\/min_rate must match pattern/,
    );
    rejects(
      AnomalySchema,
      { detectors: { auth_failure: {} } },
      /section\/detectors must NOT have additional properties/,
    );
    rejects(
      AnomalySchema,
      { detectors: { scraping: { block: { enabled: true, status: 500 } } } },
      /scraping\/block\/status must match a schema in anyOf/,
    );
    rejects(
      AnomalySchema,
      { detectors: { gateway_spike: { block: { enabled: true } } } },
      /gateway_spike must NOT have additional properties/,
    );
  });

  it('parses rates per second, minute and hour', () => {
    assert.equal(parseRate('5/s'), 5);
    assert.equal(parseRate('300/m'), 5);
    assert.equal(parseRate('0.5/s'), 0.5);
    assert.equal(parseRate('3600/h'), 1);
    assert.throws(() => parseRate('5'), /not a rate/);
  });

  it('accepts a webhook URL by reference, or a literal one without credentials or query', () => {
    const ok = validSection<RawAlerts>(AlertsSchema, {
      webhooks: [
        { name: 'slack', url: '${env:SLACK_WEBHOOK_URL}', format: 'slack', min_severity: 'critical' },
        { name: 'siem', url: 'https://siem.internal/hooks/portcullis', token: '${file:siem.token}' },
      ],
    });
    assert.equal(ok.webhooks[1]!.format, 'json');
    assert.equal(ok.webhooks[1]!.min_severity, 'warning');
    rejects(
      AlertsSchema,
      { webhooks: [{ name: 'x', url: 'https://hooks.example/h?token=abc' }] },
      /webhooks\/0\/url must match a schema in anyOf/,
    );
    rejects(
      AlertsSchema,
      { webhooks: [{ name: 'x', url: 'https://user:pw@hooks.example/h' }] },
      /webhooks\/0\/url must match a schema in anyOf/,
    );
    rejects(
      AlertsSchema,
      { webhooks: [{ name: 'x', url: 'https://h.example', token: 'plain' }] },
      /webhooks\/0\/token must match pattern/,
    );
  });

  it('reports duplicate webhook names and a reference that does not hold a URL, without the value', () => {
    const raw = validSection<RawAlerts>(AlertsSchema, {
      webhooks: [
        { name: 'a', url: '${env:A}' },
        { name: 'a', url: '${env:B}' },
      ],
    });
    // As loadConfig hands it over: references resolved.
    raw.webhooks[0]!.url = 'not a url s3cr3t';
    raw.webhooks[1]!.url = 'https://hooks.example/T000/B000/s3cr3t';
    const { settings, issues } = compileAlerts(raw);
    assert.deepEqual(issues, [
      { path: ['webhooks', 0, 'url'], message: 'expected the reference to hold an http(s):// URL' },
      { path: ['webhooks', 1, 'name'], message: '"a" is used twice' },
    ]);
    assert.ok(!JSON.stringify(issues).includes('s3cr3t'));
    assert.equal(settings.webhooks[1]!.url, 'https://hooks.example/T000/B000/s3cr3t');
  });

  it('accepts secret references exactly as the rest of the config does', () => {
    assert.equal(SECRET_REF_PATTERN, CONFIG_SECRET_REF_PATTERN);
  });

  it('documents every key, with its default, for the configuration reference', () => {
    const table = configReference(
      Type.Object({ anomaly: AnomalySchema, alerts: AlertsSchema, blocks: BlocksSchema }) as never,
    );
    const rows = table.split('\n').slice(2);
    assert.ok(rows.length > 60, `${rows.length} rows`);
    for (const row of rows) assert.doesNotMatch(row, /\|\s*\|$/, `no description: ${row}`);
    assert.match(table, /\| `anomaly\.detectors\.auth_failures\.threshold` \| integer \| `20` \|/);
    assert.match(table, /\| `alerts\.webhooks\[\]\.url` \|/);
  });
});
