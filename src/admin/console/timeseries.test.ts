/** The overview's in-memory time series: buckets, reasons, percentiles and bounded top tables. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RequestEvent } from '../../events/types.js';
import { BUCKET_MS, BUCKETS, TrafficSeries } from './timeseries.js';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

function request(over: Partial<RequestEvent>): RequestEvent {
  return {
    type: 'request',
    time: new Date(T0).toISOString(),
    requestId: 'r',
    traceId: '0'.repeat(32),
    clientIp: '192.0.2.1',
    method: 'GET',
    path: '/x',
    route: 'x',
    principal: undefined,
    decision: 'allow',
    reason: 'ok',
    detail: undefined,
    status: 200,
    latencyMs: 2,
    upstreamMs: 1,
    stage: undefined,
    shadowDenials: [],
    ...over,
  };
}

describe('the console’s time series', () => {
  it('counts each request in the bucket of its time, by decision, 429 and 5xx', () => {
    let now = T0;
    const s = new TrafficSeries(() => now);
    s.emit(request({}));
    s.emit(request({ decision: 'deny', status: 429, reason: 'ratelimit.exceeded' }));
    now += BUCKET_MS;
    s.emit(request({ decision: 'error', status: 502, reason: 'upstream.unavailable' }));
    s.emit(request({ decision: 'deny', status: 401, reason: 'auth.required' }));
    const j = s.toJSON(1);
    assert.equal(j.times.length, 6);
    assert.deepEqual(j.requests.slice(-2), [2, 2]);
    assert.deepEqual(j.allowed.slice(-2), [1, 0]);
    assert.deepEqual(j.denied.slice(-2), [1, 2]);
    assert.deepEqual(j.limited.slice(-2), [1, 0]);
    assert.deepEqual(j.errors.slice(-2), [0, 1]);
    assert.deepEqual(j.reasons['ratelimit.exceeded']?.slice(-2), [1, 0]);
    assert.deepEqual(j.reasons['auth.required']?.slice(-2), [0, 1]);
    assert.equal(j.reasons.ok, undefined, 'allowed requests have no denial reason');
    assert.deepEqual(j.times.slice(-1), [(T0 + BUCKET_MS) / 1000]);
  });

  it('forgets a bucket once the ring comes round to it again', () => {
    let now = T0;
    const s = new TrafficSeries(() => now);
    s.emit(request({}));
    now += BUCKETS * BUCKET_MS;
    s.emit(request({ decision: 'deny', status: 403, reason: 'authz.forbidden' }));
    const j = s.toJSON(60);
    assert.equal(j.totals.requests, 1);
    assert.equal(j.totals.allowed, 0);
  });

  it('estimates p50 and p99 latency from a bounded histogram, within its 25% steps', () => {
    const s = new TrafficSeries(() => T0);
    for (let i = 1; i <= 100; i++) s.emit(request({ latencyMs: i }));
    const { p50, p99 } = s.toJSON(1).totals;
    assert.ok(p50 !== null && p50 >= 50 && p50 <= 50 * 1.25, `p50 ${p50}`);
    assert.ok(p99 !== null && p99 >= 99 && p99 <= 99 * 1.25, `p99 ${p99}`);
    assert.equal(new TrafficSeries(() => T0).toJSON(1).totals.p50, null);
  });

  it('keeps the most denied principals, IPs and routes in bounded tables, heavy hitters first', () => {
    const s = new TrafficSeries(() => T0);
    for (let i = 0; i < 5000; i++) {
      s.emit(
        request({
          decision: 'deny',
          status: 403,
          reason: `code.${i % 50}`,
          clientIp: i % 3 === 0 ? '203.0.113.9' : `198.51.100.${i % 250}`,
          principal: { kind: 'jwt', id: i % 2 === 0 ? 'mallory' : `user-${i}`, tenant: undefined },
        }),
      );
    }
    const j = s.toJSON(1);
    assert.equal(j.top.principals[0]?.key, 'mallory');
    assert.equal(j.top.ips[0]?.key, '203.0.113.9');
    assert.equal(j.top.principals.length, 10);
    // Reason codes beyond the first 31 share one series.
    assert.equal(Object.keys(j.reasons).length, 32);
    assert.ok(j.reasons.other !== undefined);
  });
});
