import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { isoTime } from './request-event.js';
import type { RequestEvent, SecurityEvent } from './types.js';

describe('one security event per request', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  const events: SecurityEvent[] = [];

  before(async () => {
    upstream = await startUpstream();
    gw = await startTestGateway({
      auth: { api_keys: {} },
      upstreams: { app: { url: upstream.url }, dead: { url: 'http://127.0.0.1:1' } },
      routes: [
        { path: '/open', methods: ['GET'], upstream: 'app', auth: 'none' },
        { path: '/closed', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' },
        { path: '/dead', methods: ['GET'], upstream: 'dead', auth: 'none' },
      ],
    });
    gw.running.events.subscribe({ emit: (e) => events.push(e) });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  async function eventFor(path: string, headers: Record<string, string> = {}): Promise<RequestEvent> {
    const reply = await send(gw.url, path, { headers });
    const id = reply.headers['x-request-id'];
    for (let i = 0; i < 50; i++) {
      const e = events.find((x): x is RequestEvent => x.type === 'request' && x.requestId === id);
      if (e) return e;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.fail(`no event for ${path}`);
  }

  it('records an allowed request with its route, status, timings and a new trace', async () => {
    const e = await eventFor('/open');
    assert.equal(e.decision, 'allow');
    assert.equal(e.reason, 'ok');
    assert.equal(e.route, 'GET /open');
    assert.equal(e.status, 200);
    assert.equal(typeof e.upstreamMs, 'number');
    assert.match(e.traceId, /^[0-9a-f]{32}$/);
    const sent = upstream.requests.at(-1)!.headers.traceparent as string;
    assert.equal(sent.split('-')[1], e.traceId);
  });

  it("passes the caller's traceparent to the upstream and records its trace id", async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const e = await eventFor('/open', { traceparent });
    assert.equal(e.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(upstream.requests.at(-1)!.headers.traceparent, traceparent);
  });

  it('records a denial with the stage and the reason code, and no credential', async () => {
    const e = await eventFor('/closed', { 'x-api-key': 'pcl_not-a-real-key-but-secret-looking' });
    assert.equal(e.decision, 'deny');
    assert.equal(e.reason, 'auth.invalid_credentials');
    assert.equal(e.stage, 'authenticate');
    assert.equal(e.status, 401);
    assert.doesNotMatch(JSON.stringify(e), /not-a-real-key/);
  });

  it('records requests that match no route', async () => {
    const e = await eventFor('/nowhere');
    assert.equal(e.reason, 'route.not_found');
    assert.equal(e.route, undefined);
    assert.equal(e.status, 404);
  });

  it('records an upstream failure as an error', async () => {
    const e = await eventFor('/dead');
    assert.equal(e.decision, 'error');
    assert.equal(e.reason, 'upstream.unavailable');
    assert.equal(e.stage, 'proxy');
  });
});

describe('event times', () => {
  it('formats a time exactly as Date#toISOString does, within a second, across seconds and outside years 0-9999', () => {
    const base = Date.UTC(2026, 11, 3, 7, 59, 59, 990);
    const times = [0, -1, -0.5, 1.7, 999.999, base, base + 9.5, base + 10, base + 10.1, base + 1000];
    times.push(-62_167_219_200_001, 253_402_300_799_999, 253_402_300_800_000, 8.64e15);
    for (let i = 0; i < 2000; i++) times.push(base + i * 7.3);
    for (const t of times) assert.equal(isoTime(t), new Date(t).toISOString(), String(t));
  });
});
