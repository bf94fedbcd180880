import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AlertSettings, WebhookSettings } from '../anomaly/schema.js';
import type { Finding } from '../anomaly/types.js';
import type { AdminEvent } from '../events/types.js';
import type { Store } from '../store/index.js';
import { type Alerter, createAlerter } from './alerter.js';
import { createBlocklist } from './blocklist.js';
import { createAlertStore, createBlockStore } from './store.js';
import { type Receiver, startReceiver } from './test-support/receiver.js';
import { openTestSqlite } from './test-support/store.js';

const T0 = Date.parse('2030-01-01T00:00:00.000Z');

const stuffing: Finding = {
  detector: 'auth_failures',
  severity: 'warning',
  subject: { kind: 'ip', id: '192.0.2.66' },
  summary: '20 failed authentications from IP 192.0.2.66 within 1m: credential stuffing or brute force.',
  evidence: { failures: 20, threshold: 20, window: '1m' },
};

function webhook(url: string, overrides: Partial<WebhookSettings> = {}): WebhookSettings {
  return { name: 'ops', url, format: 'json', minSeverity: 'warning', token: undefined, ...overrides };
}

function settings(webhooks: WebhookSettings[], overrides: Partial<AlertSettings> = {}): AlertSettings {
  return {
    webhooks,
    cooldownMs: 600_000,
    timeoutMs: 2000,
    retry: { attempts: 5, backoffMs: 10, maxBackoffMs: 100 },
    queueSize: 100,
    concurrency: 4,
    ...overrides,
  };
}

describe('the alerter', () => {
  let store: Store;
  let cleanup: () => Promise<void>;
  const receivers: Receiver[] = [];
  const alerters: Alerter[] = [];
  const logs: Array<{ details: Record<string, unknown>; message: string }> = [];
  let now = T0;

  before(async () => {
    ({ store, cleanup } = await openTestSqlite());
  });
  after(async () => {
    for (const a of alerters) await a.close();
    for (const r of receivers) await r.close();
    await cleanup?.();
    const text = JSON.stringify(logs);
    assert.ok(!text.includes('s3cr3t'), 'a webhook URL reached the logs');
    assert.ok(!text.includes('127.0.0.1'), 'a webhook address reached the logs');
  });

  const receiver = async (answer?: Parameters<typeof startReceiver>[0]) => {
    const r = await startReceiver(answer);
    receivers.push(r);
    return r;
  };
  const alerter = (options: Partial<Parameters<typeof createAlerter>[0]> & { settings: AlertSettings }) => {
    const a = createAlerter({
      store: createAlertStore(store),
      now: () => now,
      random: () => 0.5,
      logger: { warn: (details, message) => logs.push({ details, message }) },
      ...options,
    });
    alerters.push(a);
    return a;
  };

  it('makes one alert of one attack: 50 identical findings, one delivery, a count of 50', async () => {
    const r = await receiver();
    const events: AdminEvent[] = [];
    const a = alerter({ settings: settings([webhook(r.url)]), onEvent: (e) => events.push(e) });
    const finding = { ...stuffing, subject: { kind: 'ip' as const, id: '192.0.2.1' } };
    for (let i = 0; i < 50; i++) {
      now += 1000;
      a.raise(finding);
    }
    await a.idle();
    const [delivered] = await r.waitFor(1);
    assert.equal(r.received.length, 1);
    const body = delivered!.body;
    assert.equal(body.type, 'portcullis.alert');
    assert.equal(body.detector, 'auth_failures');
    assert.equal(body.severity, 'warning');
    assert.deepEqual(body.subject, { kind: 'ip', id: '192.0.2.1' });
    assert.equal(body.summary, stuffing.summary);
    assert.deepEqual(body.evidence, stuffing.evidence);
    assert.equal(body.block, null);
    assert.match(String(body.id), /^alr_[0-9a-f]{16}$/);
    assert.equal(delivered!.headers['content-type'], 'application/json');
    const stored = await createAlertStore(store).get(String(body.id));
    assert.equal(stored?.count, 50);
    assert.deepEqual(stored?.delivery, { ops: 'delivered' });
    assert.equal(a.stats.suppressed, 49);
    assert.deepEqual(
      events.map((e) => [e.action, e.actor, e.target, e.detail?.detector]),
      [['alert.raised', 'system', 'ip:192.0.2.1', 'auth_failures']],
    );
  });

  it('raises again after the cooldown, and at once for a more severe finding', async () => {
    const r = await receiver();
    const a = alerter({ settings: settings([webhook(r.url)]) });
    const finding = { ...stuffing, subject: { kind: 'ip' as const, id: '192.0.2.2' } };
    a.raise(finding);
    await a.settle();
    now += 5 * 60_000;
    a.raise({ ...finding, severity: 'critical' });
    now += 5 * 60_000;
    a.raise({ ...finding, severity: 'critical' }); // a duplicate of the critical one
    now += 11 * 60_000;
    a.raise(finding);
    await a.idle();
    await r.waitFor(3);
    assert.deepEqual(
      r.received.map((x) => x.body.severity),
      ['warning', 'critical', 'warning'],
    );
  });

  it('finds duplicates raised by another instance through the store', async () => {
    const r = await receiver();
    const finding = { ...stuffing, subject: { kind: 'ip' as const, id: '192.0.2.3' } };
    const first = alerter({ settings: settings([webhook(r.url)]) });
    const second = alerter({ settings: settings([webhook(r.url)]) });
    first.raise(finding);
    await first.idle();
    second.raise(finding);
    await second.idle();
    assert.equal(r.received.length, 1);
    assert.equal(second.stats.suppressed, 1);
  });

  it('retries a delivery the receiver fails twice, and delivers it on the third attempt', async () => {
    const r = await receiver((attempt) => (attempt <= 2 ? 503 : 204));
    const a = alerter({ settings: settings([webhook(r.url)]) });
    a.raise({ ...stuffing, subject: { kind: 'ip', id: '192.0.2.4' } });
    await r.waitFor(1);
    await a.idle();
    assert.equal(r.attempts, 3);
    assert.deepEqual(a.stats.deliveries.retried, { ops: 2 });
    assert.deepEqual(a.stats.deliveries.delivered, { ops: 1 });
    const [stored] = await createAlertStore(store).list({ since: T0 - 1, limit: 100 });
    assert.ok(stored);
    const alert = (await createAlertStore(store).list({ since: T0 - 1, limit: 100 })).find(
      (x) => x.subject.id === '192.0.2.4',
    );
    assert.deepEqual(alert?.delivery, { ops: 'delivered' });
    assert.ok(logs.some((l) => l.message.includes('retrying') && l.details.webhook === 'ops'));
  });

  it('gives up at once on a 4xx answer, and records the failure', async () => {
    const r = await receiver(() => 404);
    const a = alerter({ settings: settings([webhook(r.url, { name: 'gone' })]) });
    a.raise({ ...stuffing, subject: { kind: 'ip', id: '192.0.2.5' } });
    await a.idle();
    assert.equal(r.attempts, 1);
    assert.deepEqual(a.stats.deliveries.failed, { gone: 1 });
    const alert = (await createAlertStore(store).list({ since: T0 - 1, limit: 100 })).find(
      (x) => x.subject.id === '192.0.2.5',
    );
    assert.deepEqual(alert?.delivery, { gone: 'failed' });
  });

  it('sends Slack-compatible messages: text, a header, escaped mrkdwn and at most ten fields', async () => {
    const r = await receiver(() => 200);
    const a = alerter({ settings: settings([webhook(r.url, { name: 'slack', format: 'slack' })]) });
    const evidence = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`e${i}`, i]));
    a.raise({
      detector: 'scraping',
      severity: 'critical',
      subject: { kind: 'principal', id: 'user-<b>' },
      summary: 'principal user-<b> requested about 120 distinct objects & more',
      evidence,
    });
    const [message] = await r.waitFor(1);
    const body = message!.body as { text: string; blocks: Array<Record<string, unknown>> };
    assert.deepEqual(Object.keys(body).sort(), ['blocks', 'text']);
    assert.match(
      body.text,
      /^:rotating_light: \[CRITICAL\] principal user-&lt;b&gt; requested .* &amp; more$/,
    );
    assert.deepEqual(
      body.blocks.map((b) => b.type),
      ['header', 'section', 'section', 'context'],
    );
    assert.deepEqual(body.blocks[0]!.text, { type: 'plain_text', text: 'Portcullis: scraping (critical)' });
    const fields = body.blocks[2]!.fields as Array<{ type: string; text: string }>;
    assert.equal(fields.length, 10);
    assert.ok(fields.every((f) => f.type === 'mrkdwn'));
    assert.equal(fields[1]!.text, '*Subject*\nprincipal user-&lt;b&gt;');
  });

  it('sends to each webhook only what reaches its minimum severity, with its token', async () => {
    const pager = await receiver();
    const chat = await receiver();
    const a = alerter({
      settings: settings([
        webhook(pager.url, { name: 'pager', minSeverity: 'critical', token: 'pager-t0ken' }),
        webhook(chat.url, { name: 'chat', minSeverity: 'info' }),
      ]),
    });
    a.raise({ ...stuffing, severity: 'info', subject: { kind: 'ip', id: '192.0.2.6' } });
    a.raise({ ...stuffing, severity: 'critical', subject: { kind: 'ip', id: '192.0.2.7' } });
    await a.idle();
    await chat.waitFor(2);
    assert.deepEqual(
      pager.received.map((x) => (x.body.subject as { id: string }).id),
      ['192.0.2.7'],
    );
    assert.equal(pager.received[0]!.headers.authorization, 'Bearer pager-t0ken');
    assert.equal(chat.received[0]!.headers.authorization, undefined);
  });

  it('keeps at most queue_size deliveries for a webhook that is down, dropping and counting the oldest', async () => {
    const down = await receiver();
    const url = down.url;
    await down.close();
    const a = alerter({
      settings: settings([webhook(url, { name: 'down' })], {
        queueSize: 5,
        concurrency: 1,
        retry: { attempts: 20, backoffMs: 3_600_000, maxBackoffMs: 3_600_000 },
      }),
    });
    for (let i = 0; i < 30; i++) a.raise({ ...stuffing, subject: { kind: 'ip', id: `198.51.100.${i}` } });
    await a.settle();
    assert.ok(a.queueDepth() <= 5, `${a.queueDepth()} deliveries queued`);
    assert.equal(a.stats.deliveries.dropped, 25);
    const dropped = (await createAlertStore(store).list({ since: T0 - 1, limit: 1000 })).filter(
      (x) => x.delivery.down === 'dropped',
    );
    assert.equal(dropped.length, 25);
    await a.close();
    assert.equal(a.queueDepth(), 0);
  });

  it('blocks the source when the detector says so, once, and says so in the alert', async () => {
    const r = await receiver();
    const events: AdminEvent[] = [];
    const blocklist = createBlocklist({
      store: createBlockStore(store, { now: () => now }),
      settings: { refreshMs: 5000, maxEntries: 100 },
      now: () => now,
      onEvent: (e) => events.push(e),
    });
    const a = alerter({
      settings: settings([webhook(r.url)]),
      blocklist,
      blockPolicies: { auth_failures: { durationMs: 15 * 60_000, status: 429 } },
      onEvent: (e) => events.push(e),
    });
    const finding = { ...stuffing, subject: { kind: 'ip' as const, id: '192.0.2.8' } };
    a.raise(finding);
    a.raise(finding);
    a.raise({ ...finding, detector: 'rate_spike' });
    await a.idle();
    const block = blocklist.isBlocked('ip', '192.0.2.8');
    assert.ok(block);
    assert.equal(block.until, now + 15 * 60_000);
    assert.equal(a.stats.blocks, 1);
    const [delivered] = await r.waitFor(2);
    assert.deepEqual(delivered!.body.block, {
      id: block.id,
      status: 429,
      until: new Date(block.until).toISOString(),
    });
    assert.deepEqual(
      events.map((e) => e.action),
      ['block.added', 'alert.raised', 'alert.raised'],
    );
    assert.equal(events[1]!.detail?.block, block.id);
  });

  it('follows at most max_active_alerts running alerts, however many attacks run at once', async () => {
    const a = alerter({ settings: settings([]), maxActiveAlerts: 3 });
    for (let i = 0; i < 200; i++) {
      now += 10;
      a.raise({ ...stuffing, subject: { kind: 'ip', id: `100.64.0.${i}` } });
    }
    await a.idle();
    assert.equal(a.activeAlerts(), 3);
    assert.equal(a.stats.activeEvicted, 197);
    assert.equal(a.stats.raised['auth_failures:warning'], 200);
  });

  it('evicts the least recently active alert, and one whose attack goes on is the same alert again: no duplicate, its count whole, updated and resolved', async () => {
    const events: AdminEvent[] = [];
    const cooldownMs = 60_000;
    const a = alerter({
      settings: settings([], { cooldownMs }),
      maxActiveAlerts: 2,
      onEvent: (e) => events.push(e),
    });
    const from = (id: string): Finding => ({ ...stuffing, subject: { kind: 'ip', id } });
    const [first, second, third] = [from('203.0.113.1'), from('203.0.113.2'), from('203.0.113.3')];
    // The first attack starts, then the second; the first goes on, so the second is now the
    // least recently active, and the third attack evicts it.
    a.raise(first);
    await a.settle();
    a.raise(second);
    await a.settle();
    for (let i = 0; i < 4; i++) {
      now += 1000;
      a.raise(first);
    }
    a.raise(third);
    await a.settle();
    assert.equal(a.activeAlerts(), 2);
    assert.equal(a.stats.activeEvicted, 1);
    // The second attack goes on: 30 more findings, 1 s apart. Its alert is taken back (which
    // evicts the first, the least recently active), the findings are folded into it.
    for (let i = 0; i < 30; i++) {
      now += 1000;
      a.raise(second);
    }
    await a.settle();
    assert.equal(a.activeAlerts(), 2);
    assert.equal(a.stats.activeEvicted, 2);
    const raised = events.filter((e) => e.action === 'alert.raised');
    assert.deepEqual(
      raised.map((e) => e.target),
      ['ip:203.0.113.1', 'ip:203.0.113.2', 'ip:203.0.113.3'],
      'one alert per attack, none raised again after an eviction',
    );
    const secondId = raised[1]!.detail!.alert as string;
    const firstId = raised[0]!.detail!.alert as string;
    assert.equal((await createAlertStore(store).get(secondId))?.count, 31);
    assert.equal(
      (await createAlertStore(store).get(firstId))?.count,
      5,
      'the evicted alert’s count was saved',
    );
    // Still followed: one update after a cooldown, then the resolution with every finding.
    now += cooldownMs - 20_000;
    a.raise(second);
    a.review();
    now += cooldownMs + 1;
    a.review();
    await a.settle();
    const about = events
      .filter((e) => e.detail?.alert === secondId)
      .map((e) => [e.action, e.detail?.findings]);
    assert.deepEqual(about, [
      ['alert.raised', undefined],
      ['alert.updated', 32],
      ['alert.resolved', 32],
    ]);
    assert.equal((await createAlertStore(store).get(secondId))?.count, 32);
  });

  it('counts at most max_active_sources sources across running alerts, and every finding still', async () => {
    const events: AdminEvent[] = [];
    const cooldownMs = 60_000;
    const a = alerter({
      settings: settings([], { cooldownMs }),
      maxActiveSources: 5,
      onEvent: (e) => events.push(e),
    });
    a.raise({
      ...stuffing,
      target: { kind: 'route', id: 'orders' },
      subject: { kind: 'ip', id: '192.0.2.100' },
    });
    await a.settle();
    for (let i = 1; i < 50; i++) {
      now += 100;
      a.raise({
        ...stuffing,
        target: { kind: 'route', id: 'orders' },
        subject: { kind: 'ip', id: `192.0.2.${100 + i}` },
      });
    }
    now += cooldownMs + 1;
    a.review();
    await a.settle();
    const resolved = events.find((e) => e.action === 'alert.resolved');
    assert.deepEqual([resolved?.detail?.findings, resolved?.detail?.sources], [50, 5]);
  });
});
