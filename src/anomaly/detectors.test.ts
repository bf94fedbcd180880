import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAnomalyEngine, type Finding, objectIdOf } from './index.js';
import {
  anomalySettings,
  apiKey,
  authFailure,
  FakeClock,
  ordinaryTraffic,
  requestEvent,
} from './test-support/traffic.js';
import type { ObservedRequest } from './types.js';

/** An engine on a fake clock that remembers, for each finding, how many events it had seen. */
function harness(raw: Record<string, unknown> = {}) {
  const clock = new FakeClock();
  const findings: Array<Finding & { afterEvents: number }> = [];
  let events = 0;
  const engine = createAnomalyEngine(anomalySettings(raw), {
    now: clock.now,
    onFinding: (f) => findings.push({ ...f, afterEvents: events }),
  });
  return {
    clock,
    engine,
    findings,
    /** Emits `event` after moving the clock by `gapMs`; returns the number of events so far. */
    send(event: ObservedRequest, gapMs = 0): number {
      clock.advance(gapMs);
      events++;
      engine.emit(event);
      return events;
    },
    /** A quiet background of `minutes` of requests from 30 API-key clients, 1 request every 500 ms. */
    background(minutes: number) {
      for (let i = 0; i < minutes * 120; i++) {
        const n = i % 30;
        this.send(requestEvent({ clientIp: `203.0.113.${n}`, principal: apiKey(`key_bg${n}`) }), 500);
      }
    },
    of(detector: string) {
      return findings.filter((f) => f.detector === detector);
    },
  };
}

describe('anomaly detection', () => {
  it('reports credential stuffing from one IP at its 20th failure, once for a 200-attempt attack', () => {
    const h = harness();
    h.background(5);
    const start = h.findings.length;
    let twentieth = 0;
    for (let i = 1; i <= 200; i++) {
      const n = h.send(authFailure('192.0.2.66'), 100);
      if (i === 20) twentieth = n;
    }
    const found = h.findings.slice(start);
    assert.deepEqual(
      found.map((f) => [f.detector, f.subject.kind, f.subject.id]),
      [['auth_failures', 'ip', '192.0.2.66']],
    );
    assert.equal(found[0]!.afterEvents, twentieth, 'raised at the 20th failure');
    assert.equal(found[0]!.severity, 'warning');
    assert.equal(found[0]!.evidence.failures, 20);
    assert.match(found[0]!.summary, /20 failed authentications from IP 192\.0\.2\.66 within 1m/);
  });

  it('reports key guessing against one API key from many IPs, per key, at the 20th failure', () => {
    const h = harness();
    for (let i = 1; i <= 40; i++) h.send(authFailure(`198.51.100.${i}`, 'key_target123'), 500);
    const found = h.of('auth_failures');
    assert.deepEqual(
      found.map((f) => [f.subject.kind, f.subject.id, f.afterEvents]),
      [['api_key', 'key_target123', 20]],
    );
    assert.match(found[0]!.summary, /against API key key_target123/);
  });

  it('reports a new episode of the same attack after it has died down, not during it', () => {
    const h = harness();
    for (let i = 0; i < 600; i++) h.send(authFailure('192.0.2.9'), 1000); // ten minutes, 1/s
    assert.equal(h.of('auth_failures').length, 1, 'a long attack is one finding');
    h.clock.advance(5 * 60_000);
    for (let i = 0; i < 25; i++) h.send(authFailure('192.0.2.9'), 100);
    assert.equal(h.of('auth_failures').length, 2, 'a new burst after a quiet spell is a new finding');
  });

  it('reports enumeration of order ids by one API key within 20 requests', () => {
    const h = harness();
    h.background(3);
    const before = h.findings.length;
    const first = h.send(
      requestEvent({ clientIp: '192.0.2.50', principal: apiKey('key_enum'), path: '/orders' }),
    );
    for (let id = 1000; id < 1100; id++) {
      // Nine ids in ten do not exist or belong to someone else.
      const status = id % 10 === 0 ? 200 : id % 2 === 0 ? 404 : 403;
      h.send(
        requestEvent({
          clientIp: '192.0.2.50',
          principal: apiKey('key_enum'),
          path: `/orders/${id}`,
          route: 'get-order',
          objectId: String(id),
          status,
          decision: status === 403 ? 'deny' : 'allow',
          reason: status === 403 ? 'authz.forbidden' : 'ok',
        }),
        200,
      );
    }
    const found = h.findings.slice(before).filter((f) => f.detector === 'enumeration');
    assert.deepEqual(found.map((f) => [f.subject.kind, f.subject.id]).sort(), [
      ['api_key', 'key_enum'],
      ['ip', '192.0.2.50'],
    ]);
    for (const f of found) {
      const requests = f.afterEvents - first + 1;
      assert.ok(requests <= 20, `raised after ${requests} requests`);
      assert.ok(Number(f.evidence.ratio) >= 0.5);
    }
  });

  it('reports BOLA scraping of 100 distinct objects by one key, within ±12 requests of the 100th', () => {
    const h = harness();
    h.background(2);
    const first = h.findings.length;
    let sent = 0;
    let at = 0;
    for (let id = 0; id < 200; id++) {
      sent++;
      h.send(
        requestEvent({
          clientIp: '192.0.2.51',
          principal: apiKey('key_scraper'),
          path: `/orders/${5000 + id * 7}`,
          route: 'get-order',
          objectId: String(5000 + id * 7),
        }),
        250,
      );
      if (h.findings.length > first && at === 0) at = sent;
    }
    const found = h.findings.slice(first);
    assert.deepEqual(
      found.map((f) => [f.detector, f.subject.kind, f.subject.id]),
      [['scraping', 'api_key', 'key_scraper']],
    );
    assert.ok(at >= 88 && at <= 112, `raised after ${at} distinct objects`);
  });

  it('reports a sudden 20× rate spike of one client within 60 requests, once', () => {
    const h = harness();
    const client = { clientIp: '198.51.100.77', principal: apiKey('key_spiky') };
    // Ten minutes at 0.5 requests per second: its baseline.
    for (let i = 0; i < 300; i++) h.send(requestEvent(client), 2000);
    assert.equal(h.findings.length, 0);
    const start = h.send(requestEvent(client), 100);
    // Then 10 per second for two minutes.
    for (let i = 0; i < 1200; i++) h.send(requestEvent(client), 100);
    const found = h.of('rate_spike');
    assert.deepEqual(found.map((f) => [f.subject.kind, f.subject.id]).sort(), [
      ['api_key', 'key_spiky'],
      ['ip', '198.51.100.77'],
    ]);
    for (const f of found) {
      const requests = f.afterEvents - start + 1;
      assert.ok(requests <= 60, `raised after ${requests} spike requests`);
      assert.ok(Number(f.evidence.baseline_per_second) > 0.4 && Number(f.evidence.baseline_per_second) < 0.6);
    }
    assert.deepEqual(
      h.findings.map((f) => f.detector).filter((d) => d !== 'rate_spike'),
      [],
      'nothing else: 10/s is below the gateway-wide minimum',
    );
  });

  it('does not call a new client a spike before it has a baseline', () => {
    const h = harness();
    for (let i = 0; i < 300; i++) h.send(requestEvent({ clientIp: '198.51.100.78' }), 100);
    assert.equal(h.of('rate_spike').length, 0);
  });

  it('reports a 20× spike of the whole gateway within 250 requests, and not per client', () => {
    const h = harness();
    // Ten minutes at 4 requests per second from 40 clients.
    for (let i = 0; i < 2400; i++) h.send(requestEvent({ clientIp: `203.0.113.${i % 40}` }), 250);
    assert.equal(h.findings.length, 0);
    const start = h.send(requestEvent({ clientIp: '203.0.113.1' }), 12);
    for (let i = 0; i < 2000; i++) h.send(requestEvent({ clientIp: `203.0.113.${i % 40}` }), 12);
    assert.deepEqual(
      h.findings.map((f) => [f.detector, f.subject.kind, f.subject.id]),
      [['gateway_spike', 'gateway', 'traffic']],
    );
    const requests = h.findings[0]!.afterEvents - start + 1;
    assert.ok(requests <= 250, `raised after ${requests} requests`);
    assert.equal(h.findings[0]!.severity, 'critical');
  });

  it('reports upstream errors when a quarter of the calls fail, once per outage', () => {
    const h = harness();
    for (let i = 0; i < 200; i++) h.send(requestEvent({ clientIp: `203.0.113.${i % 20}` }), 500);
    for (let i = 0; i < 400; i++) {
      const failing = i % 3 === 0;
      h.send(
        requestEvent({
          clientIp: `203.0.113.${i % 20}`,
          ...(failing
            ? { decision: 'error', reason: 'upstream.timeout', status: 504, upstreamMs: undefined }
            : {}),
        }),
        500,
      );
    }
    assert.deepEqual(
      h.findings.map((f) => [f.detector, f.subject.id]),
      [['gateway_spike', 'upstream_errors']],
    );
  });

  it('reports repeated injection attempts from one IP at the 10th', () => {
    const h = harness();
    for (let i = 0; i < 30; i++) {
      h.send(
        requestEvent({
          clientIp: '192.0.2.99',
          method: 'POST',
          decision: 'deny',
          reason: 'input.rejected',
          status: 400,
          stage: 'inspect',
          upstreamMs: undefined,
        }),
        1000,
      );
    }
    assert.deepEqual(
      h.findings.map((f) => [f.detector, f.subject.id, f.afterEvents]),
      [['injection', '192.0.2.99', 10]],
    );
  });

  it('ignores requests refused because their source is already blocked', () => {
    const h = harness();
    for (let i = 0; i < 100; i++) {
      h.send(
        requestEvent({ clientIp: '192.0.2.7', decision: 'deny', reason: 'client.blocked', status: 404 }),
        100,
      );
    }
    assert.equal(h.findings.length, 0);
  });

  it('raises nothing on an hour of ordinary mixed traffic (20,000 requests, seeded)', () => {
    const h = harness();
    let count = 0;
    for (const { at, event } of ordinaryTraffic({
      seed: 20300101,
      count: 20_000,
      durationMs: 3_600_000,
      start: h.clock.time,
    })) {
      h.clock.time = at;
      h.engine.emit(event);
      count++;
    }
    assert.equal(count, 20_000);
    assert.deepEqual(
      h.findings.map((f) => f.summary),
      [],
    );
    assert.equal(h.engine.stats.events, 20_000);
  });

  it('keeps at most max_sources entries per table with 10,000 distinct IPs', () => {
    const h = harness({ max_sources: 1000 });
    for (let i = 0; i < 10_000; i++) {
      const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      h.send(requestEvent({ clientIp: ip, path: `/orders/${i}`, route: 'get-order', status: 404 }), 10);
      h.send(authFailure(ip, `key_k${i}`), 0);
      h.send(requestEvent({ clientIp: ip, reason: 'input.invalid', status: 400 }), 0);
    }
    for (const [detector, tables] of Object.entries(h.engine.tracked())) {
      for (const [table, size] of Object.entries(tables)) {
        assert.ok(size <= 1000, `${detector}.${table} holds ${size}`);
      }
    }
    assert.equal(h.engine.tracked().auth_failures?.ip, 1000);
    // Still detecting after the churn.
    for (let i = 0; i < 20; i++) h.send(authFailure('192.0.2.200'), 50);
    assert.ok(h.findings.some((f) => f.detector === 'auth_failures' && f.subject.id === '192.0.2.200'));
  });

  it('runs only the enabled detectors, and none when anomaly detection is off', () => {
    const off = harness({ enabled: false });
    for (let i = 0; i < 50; i++) off.send(authFailure('192.0.2.1'), 10);
    assert.equal(off.findings.length, 0);
    assert.deepEqual(off.engine.tracked(), {});
    const some = harness({ detectors: { auth_failures: { enabled: false } } });
    for (let i = 0; i < 50; i++) some.send(authFailure('192.0.2.1'), 10);
    assert.equal(some.findings.length, 0);
    assert.equal(some.engine.tracked().auth_failures, undefined);
  });

  it('keeps control characters and long ids out of findings', () => {
    const h = harness();
    const id = `key_\u001b[31m${'x'.repeat(300)}`;
    for (let i = 0; i < 20; i++) h.send(authFailure('192.0.2.3', id), 10);
    const f = h.of('auth_failures').find((x) => x.subject.kind === 'api_key')!;
    assert.ok(![...(f.subject.id + f.summary)].some((c) => c.charCodeAt(0) < 0x20));
    assert.ok(f.subject.id.length <= 201);
  });
});

describe('the object id of a request', () => {
  it('is the objectId the gateway gives, or an id-looking last segment of a routed path', () => {
    assert.equal(objectIdOf(requestEvent({ objectId: 'acme/42' })), 'acme/42');
    assert.equal(objectIdOf(requestEvent({ path: '/orders/1234', route: 'get-order' })), '1234');
    assert.equal(
      objectIdOf(requestEvent({ path: '/orders/0b5e8c1e-2f4a-4c7b-9d1e-3a2b1c0d9e8f', route: 'o' })),
      '0b5e8c1e-2f4a-4c7b-9d1e-3a2b1c0d9e8f',
    );
    assert.equal(objectIdOf(requestEvent({ path: '/orders/ord_9f3k2', route: 'o' })), 'ord_9f3k2');
    assert.equal(objectIdOf(requestEvent({ path: '/orders', route: 'list-orders' })), undefined);
    assert.equal(objectIdOf(requestEvent({ path: '/orders/search', route: 'search' })), undefined);
    assert.equal(objectIdOf(requestEvent({ path: '/orders/1234', route: undefined })), undefined);
  });
});
