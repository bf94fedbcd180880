/**
 * Upstream timeouts that fire on time (issue 18, item 7). undici checks its
 * timeouts above 1 s on a coarse 499 ms clock (lib/util/timers.js), so a
 * 2 s `headers_timeout` fired anywhere between 1.5 and 2.5 s; the proxy now
 * holds its own timer for the response headers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';

describe('the upstream headers timeout fires on time', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    // /hang never answers; everything else is answered at once.
    upstream = await startUpstream((req) => new URL(req.url ?? '/', 'http://x').pathname === '/hang');
    gw = await startTestGateway({
      upstreams: { app: { url: upstream.url, headers_timeout: '2s' } },
      routes: ['/hang', '/ok'].map((path) => ({
        path,
        methods: ['GET', 'POST'],
        upstream: 'app',
        auth: 'none',
        inspection: { mode: 'off' },
      })),
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('answers 504 at 2 s for a 2 s headers_timeout, not up to half a second late', async (t) => {
    const times: number[] = [];
    // Staggered starts: undici's coarse clock made the error depend on where in its tick a request began.
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 90));
        const started = performance.now();
        const res = await fetch(`${gw.url}/hang`);
        await res.arrayBuffer();
        times.push(performance.now() - started);
        assert.equal(res.status, 504);
      }),
    );
    t.diagnostic(`504 after ${times.map((ms) => Math.round(ms)).join(', ')} ms`);
    for (const ms of times) {
      assert.ok(ms >= 1990, `fired early: ${Math.round(ms)} ms`);
      assert.ok(ms < 2400, `fired late: ${Math.round(ms)} ms`);
    }
    // The pool is usable afterwards.
    assert.equal((await fetch(`${gw.url}/ok`)).status, 200);
  });

  it('counts the headers timeout from the end of the request body, as undici does', async () => {
    // A request body that takes 3 s to arrive, with a 2 s headers timeout: answered, not 504.
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${gw.url}/ok`,
        { method: 'POST', headers: { 'content-type': 'text/plain' } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      let n = 0;
      const tick = setInterval(() => {
        req.write('x'.repeat(100));
        if (++n === 6) {
          clearInterval(tick);
          req.end();
        }
      }, 500);
    });
    assert.equal(status, 200);
  });
});
