/**
 * Readiness that reflects what this instance can do (issue 18, item 6),
 * through a real gateway: a store that stops answering is a note on /readyz
 * (200) and a "degraded" entry on /healthz/deps, not a 503 that would take
 * every instance out at once; a draining instance is not ready.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { send } from '../test-support/http.js';

describe('readiness and /healthz/deps', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startUpstream();
    gw = await startTestGateway({
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/public', methods: ['GET'], upstream: 'app', auth: 'none' }],
    });
  });

  after(async () => {
    await upstream.close();
  });

  it('lists every dependency, and stays ready with a note while the store is down', async () => {
    const deps = (await send(gw.adminUrl, '/healthz/deps')).json<{
      dependencies: Record<string, { status: string }>;
    }>();
    assert.equal(deps.dependencies.store?.status, 'up');
    assert.equal(deps.dependencies.listener?.status, 'up');
    assert.equal((await send(gw.adminUrl, '/readyz')).status, 200);

    // The store goes away (as a shared PostgreSQL would for every instance).
    const ping = gw.running.store.ping.bind(gw.running.store);
    gw.running.store.ping = () => Promise.reject(new Error('connection refused'));
    const ready = await send(gw.adminUrl, '/readyz');
    assert.equal(ready.status, 200);
    assert.match(ready.json<{ checks: Record<string, string> }>().checks.store ?? '', /unreachable/);
    const down = (await send(gw.adminUrl, '/healthz/deps')).json<{
      dependencies: Record<string, { status: string }>;
    }>();
    assert.equal(down.dependencies.store?.status, 'degraded');
    assert.equal((await send(gw.url, '/public')).status, 200, 'requests are still served');
    gw.running.store.ping = ping;
  });

  it('is not ready once draining', async () => {
    const closing = gw.running.close(1000);
    // The admin listener closes last; the drain has begun.
    await closing;
    await assert.rejects(send(gw.adminUrl, '/readyz'));
  });
});
