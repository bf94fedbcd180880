import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { ConfigError, loadConfig } from '../config/load.js';
import type { RequestEvent } from '../events/types.js';
import { captureLogger } from '../test-support/log.js';
import { compileTelemetry, type TracesSettings } from './schema.js';
import { createTraceSink, sampledByRatio, spanName, type TracedRequestEvent } from './traces.js';

const settings = (over: Partial<TracesSettings> = {}): TracesSettings => ({
  ...compileTelemetry({ traces: { enabled: true } } as never).settings.traces,
  ...over,
});

const event = (over: Partial<TracedRequestEvent> = {}): TracedRequestEvent => ({
  type: 'request',
  time: '2026-12-03T05:00:00.000Z',
  requestId: 'req_11111111-2222-4333-8444-555555555555',
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  clientIp: '198.51.100.7',
  method: 'GET',
  path: '/orders/42',
  route: 'GET /orders/{id}',
  principal: { kind: 'jwt', id: 'alice@example.com', tenant: 'acme' },
  decision: 'allow',
  reason: 'ok',
  detail: undefined,
  status: 200,
  latencyMs: 12.5,
  upstreamMs: 10,
  stage: undefined,
  shadowDenials: [],
  ...over,
});

async function spansOf(s: Partial<TracesSettings>, events: RequestEvent[]) {
  const exporter = new InMemorySpanExporter();
  const sink = createTraceSink(settings(s), captureLogger().logger, { exporter });
  for (const e of events) sink.emit(e);
  await sink.flush();
  const spans = exporter.getFinishedSpans();
  await sink.close();
  return spans;
}

describe('the trace sink', () => {
  it('names spans after the route template, never the request path', () => {
    assert.equal(spanName('GET', 'GET,HEAD /orders/{id}'), 'GET /orders/{id}');
    assert.equal(spanName('POST', 'create-order'), 'POST create-order');
    assert.equal(spanName('GET', undefined), 'GET');
  });

  it('names a method the HTTP spec does not know _OTHER, so a caller cannot mint span names', async () => {
    const [server] = await spansOf({}, [
      event({ method: 'X-SECRET-abc123', route: undefined, upstreamMs: undefined }),
    ]);
    assert.equal(server?.name, '_OTHER');
    assert.equal(server?.attributes['http.request.method'], '_OTHER');
  });

  it('times the spans from the event: the server span over the request, the client span inside it', async () => {
    const [server, client] = await spansOf({}, [event()]);
    assert.equal(server?.kind, SpanKind.SERVER);
    assert.equal(client?.kind, SpanKind.CLIENT);
    const start = Date.parse('2026-12-03T05:00:00.000Z') / 1000;
    assert.deepEqual(server?.startTime, [start, 0]);
    assert.deepEqual(server?.endTime, [start, 12_500_000]);
    assert.deepEqual(client?.startTime, [start, 2_500_000]);
    assert.deepEqual(client?.endTime, [start, 12_500_000]);
    assert.equal(client?.parentSpanContext?.spanId, server?.spanContext().spanId);
  });

  it('hangs the server span under the caller’s span and follows its sampled flag, when the event has the traceparent', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const [server] = await spansOf({ sample: 0 }, [
      event({ traceparent: `00-${traceId}-00f067aa0ba902b7-01` }),
    ]);
    assert.equal(server?.parentSpanContext?.spanId, '00f067aa0ba902b7');
    assert.equal(server?.parentSpanContext?.isRemote, true);
    const none = await spansOf({ sample: 1 }, [event({ traceparent: `00-${traceId}-00f067aa0ba902b7-00` })]);
    assert.equal(none.length, 0);
  });

  it('keeps the share of traces set by sample, the same way for the same trace id', async () => {
    let kept = 0;
    for (let i = 0; i < 4000; i++) {
      const id = randomBytes(16).toString('hex');
      const once = sampledByRatio(id, 0.25);
      assert.equal(sampledByRatio(id, 0.25), once);
      if (once) kept++;
    }
    assert.ok(kept > 800 && kept < 1200, `kept ${kept} of 4000 at 0.25`);
    assert.equal(sampledByRatio('4bf92f3577b34da6a3ce929d0e0e4736', 0), false);
    assert.equal(sampledByRatio('4bf92f3577b34da6a3ce929d0e0e4736', 1), true);
  });

  it('hashes the principal id with the salt by default, or shows or omits it as configured', async () => {
    const a = await spansOf({ principalSalt: 'salt-one' }, [event()]);
    const b = await spansOf({ principalSalt: 'salt-one' }, [event()]);
    const c = await spansOf({ principalSalt: 'salt-two' }, [event()]);
    const hashed = a[0]?.attributes['enduser.id'] as string;
    assert.match(hashed, /^[0-9a-f]{32}$/);
    assert.equal(b[0]?.attributes['enduser.id'], hashed);
    assert.notEqual(c[0]?.attributes['enduser.id'], hashed);
    assert.equal(
      (await spansOf({ principal: 'plain' }, [event()]))[0]?.attributes['enduser.id'],
      'alice@example.com',
    );
    assert.equal((await spansOf({ principal: 'omit' }, [event()]))[0]?.attributes['enduser.id'], undefined);
  });

  it('marks a gateway error as an error span, and a denial not', async () => {
    const [error] = await spansOf({}, [
      event({ decision: 'error', reason: 'upstream.unavailable', status: 502 }),
    ]);
    assert.equal(error?.status.code, 2);
    assert.equal(error?.attributes['error.type'], 'upstream.unavailable');
    const [denied] = await spansOf({}, [
      event({
        decision: 'deny',
        reason: 'auth.missing_credentials',
        status: 401,
        stage: 'authenticate',
        upstreamMs: undefined,
        principal: undefined,
      }),
    ]);
    assert.equal(denied?.status.code, 0);
    assert.equal(denied?.attributes['portcullis.stage'], 'authenticate');
  });

  it('drops spans past max_queue rather than holding requests', async () => {
    const exporter = new InMemorySpanExporter();
    const sink = createTraceSink(settings({ maxQueue: 10 }), captureLogger().logger, {
      exporter,
      scheduledDelayMs: 60_000,
    });
    for (let i = 0; i < 100; i++) sink.emit(event({ upstreamMs: undefined }));
    await sink.close();
    assert.ok(exporter.getFinishedSpans().length <= 10 + 10);
  });
});

describe('the telemetry config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-telemetry-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const load = async (telemetry: string, env: NodeJS.ProcessEnv = {}) => {
    const file = join(dir, `c-${Math.random()}.yaml`);
    writeFileSync(
      file,
      `upstreams:\n  app:\n    url: http://127.0.0.1:3000\nroutes:\n  - path: /a\n    methods: [GET]\n    upstream: app\n    auth: none\n${telemetry}`,
    );
    return loadConfig(file, { env: { PORTCULLIS_DATA: dir, ...env } });
  };

  it('is off by default', async () => {
    const { config } = await load('');
    assert.equal(config.telemetry?.traces.enabled, false);
    assert.equal(config.telemetry?.traces.principal, 'hashed');
  });

  it('resolves header values given by reference', async () => {
    const { config } = await load(
      'telemetry:\n  traces:\n    enabled: true\n    headers:\n      Authorization: ${env:OTLP_TOKEN}\n',
      { OTLP_TOKEN: 'tok-123' },
    );
    assert.deepEqual(config.telemetry?.traces.headers, { authorization: 'tok-123' });
  });

  it('refuses an endpoint that is not an http URL, a bad sample and an unknown principal mode', async () => {
    for (const bad of [
      'telemetry:\n  traces:\n    endpoint: ftp://collector/v1/traces\n',
      'telemetry:\n  traces:\n    endpoint: https://user:pw@collector/v1/traces\n',
      'telemetry:\n  traces:\n    sample: 1.5\n',
      'telemetry:\n  traces:\n    principal: sometimes\n',
      `telemetry:\n  traces:\n    headers:\n      authorization: pw@${'x'.repeat(9000)}\n`,
    ]) {
      await assert.rejects(load(bad), (err) => {
        assert.ok(err instanceof ConfigError);
        assert.ok(
          err.issues.some((i) => i.path.startsWith('telemetry.traces')),
          JSON.stringify(err.issues),
        );
        assert.equal(JSON.stringify(err.issues).includes('pw@'), false);
        return true;
      });
    }
  });
});
