import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../config/load.js';
import { createApiKeyStore } from '../keys/store.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { freePort, send } from '../test-support/http.js';

/** A span as OTLP/HTTP JSON carries it. */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes: { key: string; value: Record<string, unknown> }[];
  status?: { code?: number };
  events?: { name: string; timeUnixNano: string | number; attributes: OtlpSpan['attributes'] }[];
}

const SERVER = 2;
const CLIENT = 3;

/** A local OTLP/HTTP receiver: keeps each JSON export body, raw, and its headers. */
async function startReceiver(): Promise<{
  url: string;
  bodies: string[];
  headers: IncomingHttpHeaders[];
  spans(): OtlpSpan[];
  close(): Promise<void>;
}> {
  const bodies: string[] = [];
  const headers: IncomingHttpHeaders[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      assert.equal(req.url, '/v1/traces');
      assert.match(req.headers['content-type'] ?? '', /^application\/json/);
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      headers.push(req.headers);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    bodies,
    headers,
    spans: () =>
      bodies.flatMap((b) =>
        (
          JSON.parse(b) as {
            resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[];
          }
        ).resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)),
      ),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function attr(span: OtlpSpan, key: string): unknown {
  const v = span.attributes.find((a) => a.key === key)?.value;
  if (v === undefined) return undefined;
  if ('intValue' in v) return Number(v.intValue);
  return Object.values(v)[0];
}

async function until<T>(probe: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
}

const routes = [
  { path: '/orders', methods: ['GET'], upstream: 'app', auth: ['api_key'], authorize: 'any-authenticated' },
];

describe('OpenTelemetry traces over OTLP/HTTP', () => {
  const EXPORT_TOKEN = 'otlp-export-token-9f2c1e';
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let upstream: TestUpstream;
  let gw: TestGateway;
  let key: string;
  let keyId: string;

  before(async () => {
    process.env.PORTCULLIS_TEST_OTLP_TOKEN = EXPORT_TOKEN;
    receiver = await startReceiver();
    upstream = await startUpstream();
    gw = await startTestGateway({
      auth: { api_keys: {} },
      upstreams: { app: { url: upstream.url } },
      routes,
      telemetry: {
        traces: {
          enabled: true,
          endpoint: receiver.url,
          headers: { authorization: '${env:PORTCULLIS_TEST_OTLP_TOKEN}' },
          service_name: 'gateway-under-test',
        },
      },
    });
    const pepper = readFileSync(join(gw.dataDir, 'secrets', 'api-key-pepper'), 'utf8').trim();
    const keys = createApiKeyStore(gw.running.store, { pepper, logger: { warn() {} } });
    const created = await keys.create({ name: 'ci', scopes: ['orders:read'] });
    key = created.key;
    keyId = created.record.id;
  });

  after(async () => {
    await gw.close();
    await upstream.close();
    await receiver.close();
    delete process.env.PORTCULLIS_TEST_OTLP_TOKEN;
  });

  const byTrace = (traceId: string, kind: number) =>
    receiver.spans().find((s) => s.traceId === traceId && s.kind === kind);

  it('exports a server span and an upstream client span for an allowed request, in the caller’s trace', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const reply = await send(gw.url, '/orders?page=2', {
      headers: { 'x-api-key': key, traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    });
    assert.equal(reply.status, 200);
    const server = await until(() => byTrace(traceId, SERVER));
    const client = await until(() => byTrace(traceId, CLIENT));
    assert.equal(server.name, 'GET /orders');
    assert.equal(attr(server, 'http.request.method'), 'GET');
    assert.equal(attr(server, 'http.response.status_code'), 200);
    assert.equal(attr(server, 'portcullis.route'), 'GET /orders');
    assert.equal(attr(server, 'portcullis.decision'), 'allow');
    assert.equal(attr(server, 'portcullis.reason'), 'ok');
    assert.equal(attr(server, 'portcullis.stage'), undefined);
    assert.equal(attr(server, 'portcullis.principal.kind'), 'api_key');
    const hashed = attr(server, 'enduser.id') as string;
    assert.match(hashed, /^[0-9a-f]{32}$/);
    assert.notEqual(hashed, keyId);
    // The SERVER span hangs under the caller's span; the CLIENT span is its child and lies within it.
    assert.equal(server.parentSpanId, '00f067aa0ba902b7');
    assert.equal(client.parentSpanId, server.spanId);
    assert.equal(client.name, 'GET');
    assert.ok(BigInt(client.startTimeUnixNano) >= BigInt(server.startTimeUnixNano));
    assert.ok(BigInt(client.endTimeUnixNano) <= BigInt(server.endTimeUnixNano));
    // Each stage that ran is an event with its duration, in order, within the span; the upstream
    // call began after the last of them ended.
    const stages = (server.events ?? []).map((ev) => ({
      name: ev.name,
      at: BigInt(ev.timeUnixNano),
      ms: attr(ev as unknown as OtlpSpan, 'portcullis.stage.duration_ms') as number,
    }));
    const names = stages.map((s) => s.name);
    assert.ok(names.includes('stage authenticate'), names.join());
    assert.ok(names.indexOf('stage pre-auth') < names.indexOf('stage authenticate'), names.join());
    for (const s of stages) {
      assert.ok(typeof s.ms === 'number' && s.ms >= 0, `${s.name}: ${s.ms}`);
      assert.ok(s.at >= BigInt(server.startTimeUnixNano) && s.at <= BigInt(server.endTimeUnixNano), s.name);
    }
    const last = stages.at(-1)!;
    assert.ok(BigInt(client.startTimeUnixNano) >= last.at + BigInt(Math.floor(last.ms * 1e6)) - 1000n);
    // The upstream got the same trace.
    assert.equal(upstream.requests.at(-1)?.headers.traceparent?.slice(3, 35), traceId);
    // The export carried its header, resolved from the reference.
    assert.equal(receiver.headers.at(-1)?.authorization, EXPORT_TOKEN);
  });

  it('exports a denied request’s span with its reason and stage, and no client span', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const reply = await send(gw.url, '/orders', {
      headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` },
    });
    assert.equal(reply.status, 401);
    const server = await until(() => byTrace(traceId, SERVER));
    assert.equal(server.name, 'GET /orders');
    assert.equal(attr(server, 'portcullis.decision'), 'deny');
    assert.equal(attr(server, 'portcullis.reason'), reply.json().code);
    assert.equal(attr(server, 'portcullis.stage'), 'authenticate');
    assert.equal(attr(server, 'http.response.status_code'), 401);
    assert.equal(attr(server, 'enduser.id'), undefined);
    // The stage that refused has no duration: it is marked failed, and no later stage ran.
    const lastStage = server.events?.at(-1);
    assert.equal(lastStage?.name, 'stage authenticate');
    assert.equal(attr(lastStage as unknown as OtlpSpan, 'portcullis.stage.failed'), true);
    // Give a stray client span time to arrive: there must be none.
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal(byTrace(traceId, CLIENT), undefined);
  });

  it('makes the client span the parent the upstream was told of, when the gateway starts the trace', async () => {
    const reply = await send(gw.url, '/orders', { headers: { 'x-api-key': key } });
    assert.equal(reply.status, 200);
    const sent = upstream.requests.at(-1)?.headers.traceparent as string;
    const [, traceId, parentId] = sent.split('-') as [string, string, string];
    const client = await until(() => byTrace(traceId, CLIENT));
    const server = await until(() => byTrace(traceId, SERVER));
    assert.equal(client.spanId, parentId);
    assert.equal(client.parentSpanId, server.spanId);
    assert.equal(server.parentSpanId ?? '', '');
  });

  it('never exports a credential: no API key, no wrong key, no query string, no export token', async () => {
    const wrong = `${key.slice(0, -4)}AAAA`;
    await send(gw.url, '/orders?api_key=query-secret-123&token=abc', { headers: { 'x-api-key': wrong } });
    await send(gw.url, '/orders?access_token=query-secret-456', {
      headers: { 'x-api-key': key, authorization: 'Bearer bearer-secret-789' },
    });
    await until(() => (receiver.spans().length >= 7 ? true : undefined));
    await new Promise((r) => setTimeout(r, 1300));
    const all = receiver.bodies.join('\n');
    for (const secret of [
      key,
      key.split('_').at(-1)!,
      wrong,
      'query-secret',
      'bearer-secret-789',
      EXPORT_TOKEN,
    ]) {
      assert.equal(all.includes(secret), false, `the export carries ${secret.slice(0, 8)}…`);
    }
    assert.equal(all.includes('?'), false, 'a query string was exported');
    assert.equal(JSON.stringify(gw.logs).includes(EXPORT_TOKEN), false);
  });
});

describe('OpenTelemetry traces, off or failing', () => {
  it('sends nothing when telemetry.traces is off (the default)', async () => {
    const receiver = await startReceiver();
    const upstream = await startUpstream();
    const gw = await startTestGateway({
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/open', methods: ['GET'], upstream: 'app', auth: 'none' }],
      telemetry: { traces: { enabled: false, endpoint: receiver.url } },
    });
    try {
      assert.equal((await send(gw.url, '/open')).status, 200);
      // Turning it on by a reload is not applied until a restart, and says so.
      const { config: current } = await loadConfig(gw.configFile, {
        env: { ...process.env, PORTCULLIS_DATA: gw.dataDir },
      });
      await gw.running.reload({
        ...current,
        telemetry: { traces: { ...current.telemetry!.traces, enabled: true } },
      });
      assert.ok(gw.logs.some((l) => l.msg === 'telemetry changes take effect after a restart'));
      assert.equal((await send(gw.url, '/open')).status, 200);
    } finally {
      await gw.close();
    }
    assert.equal(receiver.bodies.length, 0);
    await upstream.close();
    await receiver.close();
  });

  it('serves requests when the collector is unreachable, and logs the failure once without its headers', async () => {
    const port = await freePort();
    const upstream = await startUpstream();
    process.env.PORTCULLIS_TEST_OTLP_TOKEN2 = 'unreachable-token-77aa';
    const gw = await startTestGateway({
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/open', methods: ['GET'], upstream: 'app', auth: 'none' }],
      telemetry: {
        traces: {
          enabled: true,
          endpoint: `http://127.0.0.1:${port}/v1/traces`,
          headers: { authorization: '${env:PORTCULLIS_TEST_OTLP_TOKEN2}' },
          timeout: '1s',
        },
      },
    });
    try {
      for (let i = 0; i < 20; i++) assert.equal((await send(gw.url, '/open')).status, 200);
      const warned = await until(() =>
        gw.logs.find((l) => String(l.msg).startsWith('trace export to the collector failed')),
      );
      assert.ok(Number(warned.spansLost) >= 1);
      for (let i = 0; i < 5; i++) assert.equal((await send(gw.url, '/open')).status, 200);
    } finally {
      const started = Date.now();
      await gw.close();
      assert.ok(Date.now() - started < 8000, 'closing waited too long for the collector');
    }
    const failures = gw.logs.filter((l) => String(l.msg).startsWith('trace export to the collector failed'));
    assert.equal(failures.length, 1);
    assert.equal(JSON.stringify(gw.logs).includes('unreachable-token-77aa'), false);
    delete process.env.PORTCULLIS_TEST_OTLP_TOKEN2;
    await upstream.close();
  });
});
