import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import type { AdminEvent, RequestEvent } from '../events/types.js';
import { createMetrics, type Metrics } from './index.js';

function request(overrides: Partial<RequestEvent> = {}): RequestEvent {
  return {
    type: 'request',
    time: '2030-01-01T00:00:00.000Z',
    requestId: 'req_1',
    traceId: '0'.repeat(32),
    clientIp: '198.51.100.23',
    method: 'GET',
    path: '/orders/8812',
    route: 'get-order',
    principal: { kind: 'api_key', id: 'key_secretprincipal', tenant: 'acme' },
    decision: 'allow',
    reason: 'ok',
    detail: undefined,
    status: 200,
    latencyMs: 12,
    upstreamMs: 10,
    stage: undefined,
    shadowDenials: [],
    ...overrides,
  };
}

const deny = (reason: string, status: number, stage: string) =>
  request({ decision: 'deny', reason, status, stage, upstreamMs: undefined, latencyMs: 1 });

/** Series of the exposition text as `name{labels}` → value; every non-comment line must parse. */
function parse(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const m =
      /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    // Prometheus parses values as Go's ParseFloat does: NaN in any case, ±Inf.
    const nan = m[3]!.toLowerCase() === 'nan';
    const value = m[3] === '+Inf' ? Number.POSITIVE_INFINITY : nan ? Number.NaN : Number(m[3]);
    assert.ok(!Number.isNaN(value) || nan, `bad value in ${line}`);
    series.set(`${m[1]}${m[2] ?? ''}`, value);
  }
  return series;
}

function feed(metrics: Metrics) {
  metrics.emit(request());
  metrics.emit(request({ status: 404, path: '/orders/77' }));
  metrics.emit(deny('auth.invalid_credentials', 401, 'authenticate'));
  metrics.emit(deny('auth.invalid_credentials', 401, 'authenticate'));
  metrics.emit(deny('auth.required', 401, 'authenticate'));
  metrics.emit(deny('authz.forbidden', 403, 'authorize'));
  metrics.emit(deny('input.invalid', 400, 'validate'));
  metrics.emit(deny('input.rejected', 400, 'inspect'));
  metrics.emit(deny('rate_limit.exceeded', 429, 'rate-limit'));
  metrics.emit(deny('client.blocked', 429, 'pre-auth'));
  metrics.emit(
    request({ decision: 'error', reason: 'upstream.timeout', status: 504, upstreamMs: undefined }),
  );
  metrics.emit(
    request({ decision: 'error', reason: 'upstream.unavailable', status: 502, upstreamMs: undefined }),
  );
  metrics.emit(request({ route: undefined, status: 404, decision: 'deny', reason: 'route.not_found' }));
  metrics.emit(request({ shadowDenials: ['orders-owner'] }));
  const admin: AdminEvent = {
    type: 'admin',
    time: '2030-01-01T00:00:00.000Z',
    action: 'alert.raised',
    actor: 'system',
    target: 'ip:198.51.100.23',
    detail: undefined,
  };
  metrics.emit(admin);
}

describe('metrics', () => {
  it('counts requests, denials by reason, upstream errors and latencies from the event stream', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    feed(metrics);
    const s = parse(await metrics.text());
    const expect = {
      'portcullis_requests_total{route="get-order",method="GET",status="200",decision="allow"}': 2,
      'portcullis_requests_total{route="get-order",method="GET",status="401",decision="deny"}': 3,
      'portcullis_requests_total{route="(none)",method="GET",status="404",decision="deny"}': 1,
      'portcullis_auth_failures_total{reason="auth.invalid_credentials"}': 2,
      'portcullis_auth_failures_total{reason="auth.required"}': 1,
      'portcullis_authz_denials_total{route="get-order",reason="authz.forbidden"}': 1,
      'portcullis_input_rejections_total{route="get-order",reason="input.invalid"}': 1,
      'portcullis_input_rejections_total{route="get-order",reason="input.rejected"}': 1,
      'portcullis_rate_limit_hits_total{route="get-order",reason="rate_limit.exceeded"}': 1,
      'portcullis_upstream_errors_total{route="get-order",reason="upstream.timeout"}': 1,
      'portcullis_upstream_errors_total{route="get-order",reason="upstream.unavailable"}': 1,
      'portcullis_blocked_requests_total{route="get-order"}': 1,
      'portcullis_shadow_denials_total{route="get-order",rule="orders-owner"}': 1,
      'portcullis_admin_events_total{action="alert.raised"}': 1,
      'portcullis_upstream_duration_seconds_count{route="get-order"}': 3,
      'portcullis_upstream_duration_seconds_bucket{le="0.01",route="get-order"}': 3,
      'portcullis_gateway_duration_seconds_count{route="get-order"}': 13,
      // All but the two upstream failures, whose 12 ms are all the gateway's.
      'portcullis_gateway_duration_seconds_bucket{le="0.0025",route="get-order"}': 11,
    };
    for (const [name, value] of Object.entries(expect)) assert.equal(s.get(name), value, name);
    assert.ok(Math.abs(s.get('portcullis_upstream_duration_seconds_sum{route="get-order"}')! - 0.03) < 1e-9);
  });

  it('never labels with paths, IPs or principal ids, and bounds every label', async () => {
    const metrics = createMetrics({ defaultMetrics: false, maxRoutes: 50, maxReasons: 10 });
    feed(metrics);
    for (let i = 0; i < 500; i++) {
      metrics.emit(request({ route: `route-${i}`, method: `M${i}`, status: 1000 + i }));
      metrics.emit(deny(`auth.made_up_${i}`, 401, 'authenticate'));
    }
    const text = await metrics.text();
    for (const leak of ['/orders/8812', '198.51.100.23', 'key_secretprincipal', 'acme', 'M42']) {
      assert.ok(!text.includes(leak), `${leak} appears in the metrics`);
    }
    const s = parse(text);
    const routes = new Set([...s.keys()].map((k) => /route="([^"]*)"/.exec(k)?.[1]).filter(Boolean));
    assert.ok(routes.size <= 52, `${routes.size} route values: 50, other and (none)`);
    assert.ok(routes.has('other'));
    const reasons = new Set([...s.keys()].map((k) => /reason="([^"]*)"/.exec(k)?.[1]).filter(Boolean));
    assert.ok(reasons.size <= 11, `${reasons.size} reason values`);
    assert.equal(
      s.get('portcullis_requests_total{route="other",method="other",status="other",decision="allow"}'),
      451, // get-order and route-0…48 fill the 50 slots
    );
  });

  it('samples caches, dependencies and registered gauges and counters at scrape time', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const keys = { hits: 0, misses: 0 };
    metrics.observeCache('api_keys', () => keys);
    metrics.observeCache('jwks', () => ({ hits: 9, misses: 1 }));
    metrics.observeCache('broken', () => {
      throw new Error('stats unavailable');
    });
    let dropped = 2;
    metrics.registerCounter('portcullis_audit_dropped_total', 'Dropped.', () => dropped);
    metrics.observeDependency('redis', () => false);
    metrics.observeDependency('store', () => true);
    metrics.registerGauge('portcullis_blocks_active', 'Active blocks.', () => 3);
    assert.throws(() => metrics.registerGauge('blocks', 'x', () => 1), /must start with portcullis_/);

    let s = parse(await metrics.text());
    assert.equal(s.get('portcullis_cache_hit_ratio{cache="jwks"}'), 0.9);
    assert.equal(s.has('portcullis_cache_hit_ratio{cache="api_keys"}'), false, 'no ratio before any lookup');
    assert.equal(s.has('portcullis_cache_hits_total{cache="broken"}'), false);
    assert.equal(s.get('portcullis_audit_dropped_total'), 2);
    assert.equal(s.get('portcullis_dependency_up{dependency="redis"}'), 0);
    assert.equal(s.get('portcullis_dependency_up{dependency="store"}'), 1);
    assert.equal(s.get('portcullis_blocks_active'), 3);

    keys.hits = 3;
    keys.misses = 1;
    dropped = 5;
    s = parse(await metrics.text());
    assert.equal(s.get('portcullis_cache_hits_total{cache="api_keys"}'), 3);
    assert.equal(s.get('portcullis_cache_hit_ratio{cache="api_keys"}'), 0.75);
    assert.equal(s.get('portcullis_audit_dropped_total'), 5, 'a counter follows its source, not adds to it');
  });

  it('serves the text format over HTTP with Node.js process metrics, and keeps registries apart', async () => {
    const metrics = createMetrics();
    const other = createMetrics();
    feed(metrics);
    const server = createServer((req, res) => metrics.handler(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
      const res = await fetch(url);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const s = parse(await res.text());
      assert.ok(s.has('portcullis_process_cpu_user_seconds_total'));
      assert.ok([...s.keys()].some((k) => k.startsWith('portcullis_nodejs_eventloop_lag_seconds')));
      assert.ok([...s.keys()].every((k) => k.startsWith('portcullis_')));
      assert.equal((await fetch(url, { method: 'POST' })).status, 405);
    } finally {
      server.close();
    }
    const untouched = parse(await other.text());
    assert.equal([...untouched.keys()].filter((k) => k.startsWith('portcullis_requests_total')).length, 0);
  });
});
