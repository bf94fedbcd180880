/**
 * End to end, without a gateway: scripted request events through anomaly
 * detection, the alerter and a real webhook receiver, on a fake clock.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { blockPolicies, createAnomalyEngine } from '../anomaly/index.js';
import {
  anomalySettings,
  apiKey,
  authFailure,
  FakeClock,
  ordinaryTraffic,
  requestEvent,
} from '../anomaly/test-support/traffic.js';
import type { ObservedRequest } from '../anomaly/types.js';
import type { Store } from '../store/index.js';
import { createAlerter } from './alerter.js';
import { createBlocklist } from './blocklist.js';
import { createAlertStore, createBlockStore } from './store.js';
import { type Receiver, startReceiver } from './test-support/receiver.js';
import { openTestSqlite } from './test-support/store.js';

describe('detection to delivery', () => {
  let store: Store;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ store, cleanup } = await openTestSqlite());
  });
  after(() => cleanup?.());

  /** Engine → alerter → receiver; `sent` counts events, `raisedAt` when each finding came. */
  async function pipeline(raw: Record<string, unknown> = {}) {
    const clock = new FakeClock();
    const receiver: Receiver = await startReceiver();
    const anomaly = anomalySettings(raw);
    const blocklist = createBlocklist({
      store: createBlockStore(store, { now: clock.now }),
      settings: { refreshMs: 5000, maxEntries: 1000 },
      now: clock.now,
    });
    const alerter = createAlerter({
      store: createAlertStore(store),
      settings: {
        webhooks: [
          { name: 'siem', url: receiver.url, format: 'json', minSeverity: 'info', token: undefined },
        ],
        cooldownMs: 600_000,
        timeoutMs: 2000,
        retry: { attempts: 3, backoffMs: 10, maxBackoffMs: 50 },
        queueSize: 100,
        concurrency: 2,
      },
      blocklist,
      blockPolicies: blockPolicies(anomaly),
      now: clock.now,
    });
    const raisedAt: Array<{ detector: string; subject: string; sent: number }> = [];
    let sent = 0;
    const engine = createAnomalyEngine(anomaly, {
      now: clock.now,
      onFinding(finding) {
        raisedAt.push({
          detector: finding.detector,
          subject: `${finding.subject.kind}:${finding.subject.id}`,
          sent,
        });
        alerter.raise(finding);
      },
    });
    return {
      clock,
      receiver,
      blocklist,
      alerter,
      raisedAt,
      send(event: ObservedRequest, gapMs = 0) {
        clock.advance(gapMs);
        sent++;
        engine.emit(event);
        return sent;
      },
      async close() {
        await alerter.close();
        blocklist.close();
        await receiver.close();
      },
    };
  }

  it('credential stuffing from one IP: one alert at the 20th failure, delivered, and the IP blocked', async () => {
    const p = await pipeline({
      detectors: { auth_failures: { block: { enabled: true, for: '15m', status: 429 } } },
    });
    try {
      for (let i = 0; i < 360; i++) p.send(requestEvent({ clientIp: `203.0.113.${i % 30}` }), 500);
      const first = p.send(authFailure('192.0.2.66'), 100);
      for (let i = 1; i < 300; i++) p.send(authFailure('192.0.2.66'), 100);
      await p.alerter.idle();
      const [alert] = await p.receiver.waitFor(1);
      assert.equal(p.receiver.received.length, 1, 'one attack, one alert');
      assert.equal(alert!.body.detector, 'auth_failures');
      // The alert is about the attacked route; the attacking IP is its source.
      assert.deepEqual(alert!.body.subject, { kind: 'route', id: 'list-orders' });
      assert.match(JSON.stringify(alert!.body.evidence), /ip:192\.0\.2\.66/);
      assert.equal(p.raisedAt[0]!.sent - first + 1, 20, 'raised at the 20th failure');
      assert.equal((alert!.body.block as { status: number }).status, 429);
      assert.ok(p.blocklist.isBlocked('ip', '192.0.2.66'));
      assert.throws(() => p.blocklist.checkIp('192.0.2.66'), { code: 'client.blocked', status: 429 });
    } finally {
      await p.close();
    }
  });

  it('enumeration of ids by one API key: alerts within 20 requests, delivered', async () => {
    const p = await pipeline();
    try {
      let first = 0;
      for (let id = 1; id <= 60; id++) {
        const n = p.send(
          requestEvent({
            clientIp: '192.0.2.50',
            principal: apiKey('key_enum'),
            path: `/orders/${id}`,
            route: 'get-order',
            objectId: String(id),
            status: id % 10 === 0 ? 200 : 404,
          }),
          250,
        );
        if (id === 1) first = n;
      }
      await p.alerter.idle();
      await p.receiver.waitFor(2);
      const enumeration = p.raisedAt.filter((f) => f.detector === 'enumeration');
      assert.deepEqual(enumeration.map((f) => f.subject).sort(), ['api_key:key_enum', 'ip:192.0.2.50']);
      for (const f of enumeration)
        assert.ok(f.sent - first + 1 <= 20, `after ${f.sent - first + 1} requests`);
      assert.deepEqual(
        p.receiver.received
          .map((r) => `${r.body.detector} ${(r.body.subject as { kind: string }).kind}`)
          .sort(),
        ['enumeration api_key', 'enumeration ip'],
      );
    } finally {
      await p.close();
    }
  });

  it('a sudden 20× spike of one client: an alert within 60 requests of its start, delivered once', async () => {
    const p = await pipeline();
    try {
      const client = { clientIp: '198.51.100.77', principal: apiKey('key_spiky') };
      for (let i = 0; i < 300; i++) p.send(requestEvent(client), 2000);
      const start = p.send(requestEvent(client), 100);
      for (let i = 0; i < 1200; i++) p.send(requestEvent(client), 100);
      await p.alerter.idle();
      await p.receiver.waitFor(2);
      assert.deepEqual(p.raisedAt.map((f) => [f.detector, f.subject]).sort(), [
        ['rate_spike', 'api_key:key_spiky'],
        ['rate_spike', 'ip:198.51.100.77'],
      ]);
      for (const f of p.raisedAt) assert.ok(f.sent - start + 1 <= 60, `after ${f.sent - start + 1} requests`);
      assert.equal(p.receiver.received.length, 2);
    } finally {
      await p.close();
    }
  });

  it('an hour of ordinary mixed traffic (20,000 requests) raises no alert', async () => {
    const p = await pipeline();
    try {
      for (const { at, event } of ordinaryTraffic({
        seed: 7,
        count: 20_000,
        durationMs: 3_600_000,
        start: p.clock.time,
      })) {
        p.clock.time = at;
        p.send(event);
      }
      await p.alerter.idle();
      assert.deepEqual(p.raisedAt, []);
      assert.equal(p.receiver.attempts, 0);
    } finally {
      await p.close();
    }
  });
});
