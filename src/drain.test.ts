/**
 * A drain that drops nothing (issue 18, item 2), against a real gateway in a
 * child process: SIGTERM under load from keep-alive clients. Every request in
 * flight is answered (with `Connection: close`), a request that arrives on a
 * kept-alive connection after the signal is answered too, idle connections
 * are closed at once, and the process exits as soon as nothing is in flight;
 * only what still runs at the deadline is cut, and counted.
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type ChildGateway, startChildGateway } from './test-support/child-gateway.js';
import { startUpstream, type TestUpstream } from './test-support/gateway.js';

interface Outcome {
  status: number;
  body: string;
  connection: string | undefined;
  sentAt: number;
}

/** One GET on `agent`; resolves with the status, or rejects with the client error. */
function get(agent: Agent, url: string, path: string): Promise<Outcome> {
  const sentAt = Date.now();
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { agent }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection, sentAt }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('SIGTERM drains without dropping a request', () => {
  let upstream: TestUpstream;
  const gateways: ChildGateway[] = [];

  before(async () => {
    // Answers after ?ms= milliseconds.
    upstream = await startUpstream((req, res) => {
      const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0);
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      }, ms);
      return true;
    });
  });

  after(async () => {
    for (const g of gateways) await g.close();
    await upstream.close();
  });

  const config = (drainTimeout: string) => ({
    listen: { limits: { drain_timeout: drainTimeout, keep_alive_timeout: '30s' } },
    upstreams: { app: { url: upstream.url } },
    routes: [{ path: '/work', methods: ['GET'], upstream: 'app', auth: 'none' }],
  });

  it('answers every request in flight, closes idle connections, exits with the longest request', async (t) => {
    const gw = await startChildGateway(config('10s'));
    gateways.push(gw);
    const LONGEST = 1500;
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const errors: string[] = [];
    const outcomes: Outcome[] = [];
    let stopping = false;
    let signalledAt = 0;
    // 64 keep-alive clients, each sending one request after another, of up to LONGEST ms.
    const loops = Array.from({ length: 64 }, async (_, i) => {
      let n = 0;
      while (!stopping) {
        const ms = (i * 37 + n++ * 101) % LONGEST;
        try {
          outcomes.push(await get(agent, gw.url, `/work?ms=${ms}`));
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
    });
    // 16 more connections, kept alive and idle when the signal comes.
    const idleAgent = new Agent({ keepAlive: true, maxSockets: 16 });
    await Promise.all(Array.from({ length: 16 }, () => get(idleAgent, gw.url, '/work?ms=0')));
    const idleClosedAt: number[] = [];
    for (const sockets of Object.values(idleAgent.freeSockets)) {
      for (const s of sockets ?? []) s.once('close', () => idleClosedAt.push(Date.now()));
    }
    // A kept-alive connection whose next request is half sent at the signal and finished after it.
    const late = connect(gw.port, '127.0.0.1');
    let lateReply = '';
    late.on('data', (c) => {
      lateReply += c.toString('latin1');
    });
    const lateClosed = new Promise<void>((resolve) => late.once('close', () => resolve()));
    late.write('GET /work?ms=0 HTTP/1.1\r\nhost: localhost\r\n\r\n');
    for (let i = 0; i < 500 && !lateReply.includes('{"ok":true}'); i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.match(lateReply, /\{"ok":true\}/);
    lateReply = '';
    late.write('GET /work?ms=200 HTTP/1.1\r\nhost: localhost\r\n');

    await new Promise((r) => setTimeout(r, 1000));
    stopping = true;
    signalledAt = Date.now();
    gw.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    late.write('x-late: yes\r\n\r\n');
    await Promise.all(loops);
    await lateClosed;
    const { code, at } = await gw.exited;
    agent.destroy();
    idleAgent.destroy();

    assert.deepEqual(errors, [], 'no client error');
    assert.equal(code, 0);
    const afterSignal = outcomes.filter((o) => o.sentAt < signalledAt);
    assert.ok(afterSignal.length > 64, `load ran: ${afterSignal.length} requests`);
    const statuses: Record<number, number> = {};
    for (const o of outcomes) statuses[o.status] = (statuses[o.status] ?? 0) + 1;
    assert.deepEqual(
      Object.keys(statuses),
      ['200'],
      JSON.stringify(outcomes.filter((o) => o.status !== 200).slice(0, 3)),
    );
    // The last answer of each client came after the signal, with Connection: close.
    const closing = outcomes.filter((o) => o.connection === 'close');
    // (A response whose head went out before the signal keeps its keep-alive;
    // its connection is closed as idle right after it.)
    assert.ok(closing.length > 0, `${closing.length} answers said Connection: close`);
    assert.match(lateReply, /^HTTP\/1\.1 200 /);
    assert.match(lateReply, /\r\nconnection: close\r\n/i);
    assert.equal(idleClosedAt.length, 16, 'every idle connection was closed');
    for (const t of idleClosedAt)
      assert.ok(t - signalledAt < 1000, `idle closed after ${t - signalledAt} ms`);
    const exitMs = at - signalledAt;
    // About the longest request in flight (1.5 s), far from the 10 s grace period.
    assert.ok(exitMs < LONGEST + 2500, `exited ${exitMs} ms after SIGTERM`);
    const drained = gw.logs.find((l) => l.msg === 'drained');
    assert.equal(drained?.cut, 0);
    t.diagnostic(
      `# drain: ${outcomes.length} requests, ${errors.length} errors, exit ${exitMs} ms after SIGTERM`,
    );
  });

  it('cuts and counts only the requests still running at the deadline', async () => {
    const gw = await startChildGateway(config('500ms'));
    gateways.push(gw);
    const agent = new Agent({ keepAlive: true });
    const quick = get(agent, gw.url, '/work?ms=100');
    const stuck = get(agent, gw.url, '/work?ms=5000').then(
      () => 'answered',
      (err: Error) => err.message,
    );
    await new Promise((r) => setTimeout(r, 50));
    const signalledAt = Date.now();
    gw.child.kill('SIGTERM');
    assert.equal((await quick).status, 200);
    assert.notEqual(await stuck, 'answered');
    const { code, at } = await gw.exited;
    agent.destroy();
    assert.equal(code, 0);
    assert.ok(at - signalledAt < 3000, `exited ${at - signalledAt} ms after SIGTERM`);
    const cut = gw.logs.find((l) => typeof l.msg === 'string' && l.msg.includes('were cut'));
    assert.equal(cut?.cut, 1);
  });
});
