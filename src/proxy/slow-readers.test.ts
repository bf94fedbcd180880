/**
 * No starvation by slow readers (issue 18, item 3), against a real gateway
 * in a child process (`portcullis start`) and real slow clients: raw TCP
 * connections that send a request for a large response and never read.
 *
 * The case was 140 such clients on a 128-connection upstream pool:
 * they held every upstream connection until the upstream body timeout
 * (30–40 s) and other routes of the upstream waited as long. Scaled down here
 * to run in seconds: 20 non-reading clients on an 8-connection pool, a
 * 500 ms `listen.limits.write_timeout`, and a normal client calling another
 * route of the same upstream throughout, which must be served in under 1 s
 * each time (the bound).
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type ChildGateway, startChildGateway } from '../test-support/child-gateway.js';
import { startUpstream, type TestUpstream } from '../test-support/gateway.js';

const MiB = 1024 * 1024;
/** Far more than the loopback socket buffers can absorb (4 MiB send, 128 KiB receive for a client that never reads). */
const LARGE = 24 * MiB;
const CHUNK = Buffer.alloc(MiB, 'x');

interface UpstreamRequest {
  path: string;
  startedAt: number;
  /** When the upstream saw the response finish, or the gateway abort it. */
  endedAt?: number;
  aborted?: boolean;
}

/** GET on a kept-alive agent; resolves with the status and how long it took. */
function timedGet(agent: Agent, url: string): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A client that sends a request and never reads: the socket is paused from the start. */
function slowReader(port: number, path: string): Socket {
  // Another client address than the normal client's (all of 127/8 is loopback on Linux).
  const socket = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
  socket.pause();
  socket.on('error', () => {});
  socket.write(`GET ${path} HTTP/1.1\r\nhost: api.test\r\n\r\n`);
  return socket;
}

/** Resumes a paused client and counts what it receives until the gateway's close. */
function drainReader(
  socket: Socket,
  timeoutMs: number,
): Promise<{ bytes: number; closed: boolean; status: string }> {
  return new Promise((resolve) => {
    let bytes = 0;
    let status = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ bytes, closed: false, status });
    }, timeoutMs);
    socket.on('data', (c: Buffer) => {
      if (bytes === 0) status = c.subarray(0, 12).toString('latin1');
      bytes += c.length;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ bytes, closed: true, status });
    });
    socket.resume();
  });
}

async function metric(adminUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
}

describe('slow readers do not starve the upstream pool', () => {
  let upstream: TestUpstream;
  const seen: UpstreamRequest[] = [];
  const gateways: ChildGateway[] = [];

  before(async () => {
    upstream = await startUpstream((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path !== '/big' && path !== '/medium') return false;
      const record: UpstreamRequest = { path, startedAt: performance.now() };
      seen.push(record);
      const total = path === '/big' ? LARGE : 6 * MiB;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          sent += CHUNK.length;
          if (!res.write(CHUNK)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('close', () => {
        record.endedAt = performance.now();
        record.aborted = !res.writableFinished;
      });
      pump();
      return true;
    });
  });

  after(async () => {
    for (const g of gateways) await g.close();
    await upstream.close();
  });

  const config = (limits: Record<string, string>, upstreamExtra: Record<string, unknown> = {}) => ({
    listen: { limits },
    upstreams: { app: { url: upstream.url, connections: 8, body_timeout: '30s', ...upstreamExtra } },
    routes: ['/big', '/medium', '/orders'].map((path) => ({
      path,
      methods: ['GET'],
      upstream: 'app',
      auth: 'none',
      // Not what is tested, and its time budget is short on a loaded machine.
      inspection: { mode: 'off' },
    })),
  });

  /**
   * Warms the gateway up, starts `count` non-reading clients for /big from
   * 127.0.0.2, and runs a normal client (127.0.0.1) on /orders, one request
   * after another, until every slow reader's upstream request has ended.
   */
  async function run(gw: ChildGateway, count: number) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const first = await fetch(`${gw.url}/orders`);
    assert.equal(first.status, 200, await first.text());
    // A gateway in service is warm: stream a few large responses through it first.
    for (let i = 0; i < 3; i++) {
      const bytes = (await fetch(`${gw.url}/medium`).then((r) => r.arrayBuffer())).byteLength;
      assert.equal(bytes, 6 * MiB);
    }
    seen.length = 0;
    const started = performance.now();
    const readers = Array.from({ length: count }, () => slowReader(gw.port, '/big'));
    const latencies: number[] = [];
    const statuses: number[] = [];
    const ended = () => seen.filter((r) => r.endedAt !== undefined).length;
    const refused = () => readers.length - seen.length;
    while (performance.now() - started < 1000 || ended() < seen.length) {
      const r = await timedGet(agent, `${gw.url}/orders`);
      statuses.push(r.status);
      latencies.push(r.ms);
      if (performance.now() - started > 30_000) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const elapsed = performance.now() - started;
    const big = seen.filter((r) => r.path === '/big');
    const held = big.map((r) => (r.endedAt ?? Number.POSITIVE_INFINITY) - r.startedAt);
    const outcomes = await Promise.all(readers.map((s) => drainReader(s, 5000)));
    const m = {
      timedOut: await metric(gw.adminUrl, 'portcullis_client_write_timeouts_total'),
      aborts: await metric(gw.adminUrl, 'portcullis_client_write_upstream_aborts_total'),
      contended: await metric(gw.adminUrl, 'portcullis_client_write_contended_aborts_total'),
    };
    agent.destroy();
    const sorted = [...latencies].sort((a, b) => a - b);
    const summary =
      `${count} slow readers, 8 upstream connections: ${big.length} reached the upstream, all ended in ${Math.round(elapsed)} ms; ` +
      `upstream connection held per slow reader: max ${Math.round(Math.max(...held))} ms; ` +
      `normal client: ${latencies.length} requests, max ${Math.round(sorted.at(-1)!)} ms, ` +
      `median ${Math.round(sorted[sorted.length >> 1]!)} ms; ` +
      `closed ${m.timedOut}, upstream aborts ${m.aborts} (contended ${m.contended}); ` +
      `bytes a slow reader got: max ${Math.max(...outcomes.map((o) => o.bytes))} of ${LARGE}`;
    return { big, held, latencies, statuses, outcomes, m, summary, refused: refused() };
  }

  it('cuts a non-reading client that holds an upstream connection others wait for after contended_write_timeout', async (t) => {
    // Defaults: write_timeout 10s, contended_write_timeout 500ms; no per-client cap.
    const gw = await startChildGateway(config({}));
    gateways.push(gw);
    const r = await run(gw, 20);
    t.diagnostic(r.summary);
    assert.ok(
      r.statuses.every((s) => s === 200),
      'every normal request was answered 200',
    );
    assert.equal(r.big.length, 20, 'every slow reader reached the upstream');
    assert.ok(
      r.big.every((x) => x.aborted === true),
      'every slow reader’s upstream request was aborted',
    );
    // Each held its upstream connection about contended_write_timeout plus the time
    // to fill the socket buffers (~4 MiB on loopback), never write_timeout (10 s) —
    // except the last ones, when nothing waited any more: then write_timeout.
    const early = r.held.filter((ms) => ms < 4000).length;
    assert.ok(early >= 12, `${early} of 20 slow readers were cut before write_timeout`);
    assert.ok(
      r.outcomes.every((o) => o.closed && o.bytes < LARGE),
      'every slow reader was closed with its response cut short',
    );
    assert.equal(r.m.timedOut, 20);
    assert.equal(r.m.aborts, 20);
    assert.ok(r.m.contended >= 12);
  });

  it('with max_connections_per_client, serves a normal client in under 1 s throughout', async (t) => {
    const gw = await startChildGateway(config({ write_timeout: '500ms' }, { max_connections_per_client: 4 }));
    gateways.push(gw);
    const r = await run(gw, 20);
    const stall = Math.max(...r.latencies);
    t.diagnostic(`${r.summary}; refused with 503 at once: ${r.refused}`);
    assert.ok(
      r.statuses.every((s) => s === 200),
      'every normal request was answered 200',
    );
    assert.ok(stall < 1000, `the normal client waited ${Math.round(stall)} ms at worst`);
    assert.equal(r.big.length, 4, 'one client holds at most 4 upstream connections');
    assert.ok(
      r.big.every((x) => x.aborted === true),
      'every slow reader’s upstream request was aborted',
    );
    // write_timeout (500 ms) plus the time to fill the socket buffers, with a wide margin.
    assert.ok(
      Math.max(...r.held) < 4000,
      `an upstream connection was held ${Math.round(Math.max(...r.held))} ms`,
    );
    const served = r.outcomes.filter((o) => o.status === 'HTTP/1.1 200');
    assert.equal(served.length, 4);
    assert.ok(served.every((o) => o.closed && o.bytes < LARGE));
    assert.ok(r.outcomes.filter((o) => o.status === 'HTTP/1.1 503').length === 16);
    assert.equal(r.m.timedOut, 4);
    assert.equal(r.m.aborts, 4);
  });

  it('reads a response that fits in write_buffer whole: the upstream connection is freed at once', async (t) => {
    const gw = await startChildGateway(config({ write_buffer: '8mb', write_timeout: '1s' }));
    gateways.push(gw);
    seen.length = 0;
    const SLOW = 10;
    const readers = Array.from({ length: SLOW }, () => slowReader(gw.port, '/medium'));
    const deadline = performance.now() + 15_000;
    while (seen.filter((r) => r.endedAt !== undefined).length < SLOW && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const held = seen.map((r) => (r.endedAt ?? Number.POSITIVE_INFINITY) - r.startedAt);
    t.diagnostic(
      `upstream connection held per non-reading client (6 MiB each): max ${Math.round(Math.max(...held))} ms`,
    );
    assert.equal(seen.length, SLOW);
    assert.ok(
      seen.every((r) => r.aborted === false),
      'every upstream response was read to its end',
    );
    // The clients are still closed once they have taken nothing for write_timeout.
    let timedOut = 0;
    while (performance.now() < deadline + 5000) {
      timedOut = await metric(gw.adminUrl, 'portcullis_client_write_timeouts_total');
      if (timedOut === SLOW) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const outcomes = await Promise.all(readers.map((s) => drainReader(s, 5000)));
    t.diagnostic(`closed clients ${timedOut}; bytes received ${outcomes.map((o) => o.bytes).join(', ')}`);
    assert.equal(timedOut, SLOW);
    assert.equal(await metric(gw.adminUrl, 'portcullis_client_write_upstream_aborts_total'), 0);
    assert.ok(outcomes.every((o) => o.closed && o.bytes < 6 * MiB));
  });
});
