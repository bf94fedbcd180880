import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import type { BuildDeps } from '../../pipeline/types.js';
import { RateLimitService } from '../../ratelimit/index.js';
import { compileForTest, migrationsWithQuotas } from '../../ratelimit/test-support/config.js';
import { openSqliteStore } from '../../store/sqlite.js';
import type { Store } from '../../store/types.js';
import { send } from '../../test-support/http.js';
import {
  captureLogger,
  makeContext,
  principal,
  type StageServer,
  startStageServer,
  testRoute,
} from '../../test-support/stage.js';
import { admissionStage } from '../admission/index.js';
import { createRateLimitStage } from './index.js';

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close();
});

/** Polls until `condition` holds (the machine may be busy: no fixed sleeps). */
async function until(what: string, condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Builds the service and the stages of each route from a config section, and serves them. */
async function serve(
  section: Record<string, unknown>,
  routes: Record<string, Record<string, unknown>>,
  options: { now?: () => number; store?: Store } = {},
) {
  const { settings, routes: plans, issues } = compileForTest(section, routes);
  assert.deepEqual(issues, []);
  const { logger, lines } = captureLogger();
  const service = new RateLimitService(settings, {
    logger,
    store: options.store,
    ...(options.now ? { now: options.now } : {}),
  });
  await service.start();
  open.push(service);
  const deps = { config: { rateLimit: settings }, rateLimit: service } as unknown as BuildDeps & BuildDeps;
  const stages = Object.fromEntries(
    Object.entries(plans).map(([name, plan]) => {
      const admission = admissionStage.create(testRoute(name), deps);
      return [
        name,
        [...(admission ? [admission] : []), ...(plan ? [createRateLimitStage(service, plan)] : [])],
      ];
    }),
  );
  const server: StageServer = await startStageServer(stages);
  open.push(server);
  return {
    service,
    server,
    lines,
    get: (path: string, headers: Record<string, string> = {}) => send(server.url, path, { headers }),
  };
}

describe('the rate-limit stage, answering over HTTP', () => {
  it('refuses the request past the limit with 429 problem+json, Retry-After and the IETF RateLimit fields', async () => {
    let t = 0;
    const gw = await serve(
      { limits: { per_ip: { key: ['ip'], rate: '3/m', all_routes: true } } },
      { orders: {} },
      { now: () => t },
    );
    for (let i = 0; i < 3; i++) {
      const ok = await gw.get('/orders');
      assert.equal(ok.status, 200);
      assert.equal(ok.headers['ratelimit-policy'], '"per_ip";q=3;w=60');
      assert.equal(ok.headers.ratelimit, `"per_ip";r=${2 - i};t=${20 * (i + 1)}`);
    }
    const refused = await gw.get('/orders');
    assert.equal(refused.status, 429);
    assert.equal(refused.headers['content-type'], 'application/problem+json');
    assert.equal(refused.headers['retry-after'], '20');
    assert.equal(refused.headers['ratelimit-policy'], '"per_ip";q=3;w=60');
    assert.equal(refused.headers.ratelimit, '"per_ip";r=0;t=60');
    const body = refused.json<{ code: string; status: number; type: string }>();
    assert.equal(body.code, 'rate_limit.exceeded');
    assert.equal(body.status, 429);
    assert.equal(body.type, 'urn:portcullis:problem:rate_limit.exceeded');
    assert.ok(!refused.body.includes('127.0.0.1'), 'the key stays out of the answer');
    const logged = gw.lines.find((l) => l.msg === 'rate limited');
    assert.equal(logged?.limit, 'per_ip');
    assert.equal(logged?.key, '127.0.0.1');
    assert.equal(gw.service.stats.get('per_ip')?.limited, 1);
    assert.equal(gw.service.stats.get('per_ip')?.allowed, 3);
    t += 20_000;
    assert.equal((await gw.get('/orders')).status, 200, 'one unit back after 20 s');
  });

  it('counts clients apart by IP, and one IPv6 /64 as one client', async () => {
    const gw = await serve(
      { limits: { per_ip: { key: ['ip'], rate: '2/h', all_routes: true } } },
      { orders: {} },
    );
    const from = (ip: string) => gw.get('/orders', { 'x-test-ip': ip });
    assert.equal((await from('192.0.2.1')).status, 200);
    assert.equal((await from('192.0.2.1')).status, 200);
    assert.equal((await from('192.0.2.1')).status, 429);
    assert.equal((await from('::ffff:192.0.2.1')).status, 429, 'the IPv4-mapped spelling is the same client');
    assert.equal((await from('192.0.2.2')).status, 200);
    assert.equal((await from('2001:db8:0:1::1')).status, 200);
    assert.equal((await from('2001:db8:0:1::2')).status, 200);
    assert.equal(
      (await from('2001:db8:0:1:ffff::3')).status,
      429,
      'a new address in the same /64 does not help',
    );
    assert.equal((await from('2001:db8:0:2::1')).status, 200);
  });

  it('takes the route cost from the limit and from the quota', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pc-rl-'));
    const store = openSqliteStore(join(dir, 'db'), migrationsWithQuotas);
    await store.migrate();
    open.push({
      async close() {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    });
    const gw = await serve(
      {
        limits: { per_key: { key: ['principal'], rate: '30/h' } },
        quotas: { daily: { key: ['principal'], limit: 25, period: 'day' } },
      },
      {
        export: { rate_limits: ['per_key', 'daily'], cost: 10 },
        list: { rate_limits: ['per_key', 'daily'] },
      },
      { store },
    );
    const who = { 'x-test-principal': JSON.stringify(principal('api_key', 'key_1')) };
    const first = await gw.get('/export', who);
    assert.equal(first.status, 200);
    assert.match(String(first.headers.ratelimit), /^"per_key";r=20;t=\d+, "daily";r=15;t=\d+$/);
    assert.equal((await gw.get('/export', who)).status, 200);
    const third = await gw.get('/export', who);
    assert.equal(third.status, 429);
    assert.equal(third.json<{ code: string }>().code, 'rate_limit.quota_exceeded');
    assert.match(String(third.headers.ratelimit), /"daily";r=5;t=\d+/);
    assert.ok(Number(third.headers['retry-after']) > 0, 'until the end of the UTC day');
    assert.equal((await gw.get('/list', who)).status, 200, 'a cheaper request still fits in the quota');
  });

  it('answers 503 rate_limit.unavailable, not a free pass, when quota usage cannot be read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pc-rl-'));
    const store = openSqliteStore(join(dir, 'db'), migrationsWithQuotas);
    await store.migrate();
    const gw = await serve(
      { quotas: { daily: { key: ['ip'], limit: 5, period: 'day', all_routes: true } } },
      { orders: {} },
      { store },
    );
    assert.equal((await gw.get('/orders', { 'x-test-ip': '192.0.2.1' })).status, 200);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    const refused = await gw.get('/orders', { 'x-test-ip': '192.0.2.2' });
    assert.equal(refused.status, 503);
    assert.equal(refused.json<{ code: string }>().code, 'rate_limit.unavailable');
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(
      (await gw.get('/orders', { 'x-test-ip': '192.0.2.1' })).status,
      200,
      'a counter in memory still works',
    );
  });

  it('runs a shadow limit without ever refusing, counting and logging what it would have refused', async () => {
    const gw = await serve(
      { limits: { trial: { key: ['ip'], rate: '2/h', mode: 'shadow', all_routes: true } } },
      { orders: {} },
    );
    for (let i = 0; i < 5; i++) {
      const r = await gw.get('/orders');
      assert.equal(r.status, 200);
      assert.equal(r.headers.ratelimit, undefined, 'a shadow limit is not advertised');
    }
    assert.deepEqual(gw.service.stats.get('trial'), { allowed: 2, limited: 0, shadowLimited: 3 });
    assert.equal(
      gw.lines.filter((l) => l.msg === 'rate limit in shadow mode would have refused this request').length,
      3,
    );
    const metrics = await gw.service.registry.metrics();
    assert.match(
      metrics,
      /portcullis_rate_limit_decisions_total\{limit="trial",decision="shadow_limited"\} 3/,
    );
  });

  it('records a shadow refusal on the request for its audit event', async () => {
    const { settings, routes } = compileForTest(
      { limits: { s: { key: [], rate: '1/h', mode: 'shadow' } } },
      { r: { rate_limits: ['s'] } },
    );
    const service = new RateLimitService(settings, { logger: captureLogger().logger, store: undefined });
    open.push(service);
    const stage = createRateLimitStage(service, routes.r!);
    const ctxFor = () =>
      makeContext({ headers: {} } as IncomingMessage, {} as ServerResponse, {
        route: testRoute('r'),
        clientIp: '192.0.2.1',
      });
    const first = ctxFor();
    await stage.handle(first);
    assert.deepEqual(first.shadowDenials, []);
    const second = ctxFor();
    await stage.handle(second);
    assert.deepEqual(second.shadowDenials, ['rate-limit:s']);
  });

  it('keeps at most N requests of one key in flight, and frees the slot when the response ends', async () => {
    const gw = await serve(
      { concurrency: { one_at_a_time: { key: ['principal'], max: 2 } } },
      { slow: { rate_limits: ['one_at_a_time'] } },
    );
    const alice = { 'x-test-principal': JSON.stringify(principal('jwt', 'alice')) };
    const bob = { 'x-test-principal': JSON.stringify(principal('jwt', 'bob')) };
    const held = [gw.get('/slow?hold=1000', alice), gw.get('/slow?hold=1000', alice)];
    await until('two requests in flight', () => gw.service.inFlight.total === 2);
    const third = await gw.get('/slow', alice);
    assert.equal(third.status, 429);
    assert.equal(third.json<{ code: string }>().code, 'rate_limit.concurrency_exceeded');
    assert.equal((await gw.get('/slow', bob)).status, 200, 'another principal has its own slots');
    assert.deepEqual(
      (await Promise.all(held)).map((r) => r.status),
      [200, 200],
    );
    assert.equal((await gw.get('/slow', alice)).status, 200);
    assert.equal(gw.service.inFlight.keys, 0, 'no entry outlives its requests');
    assert.equal(gw.service.inFlight.total, 0);
  });

  it('frees the slot of a request whose client went away', async () => {
    const gw = await serve({ concurrency: { c: { key: [], max: 1, all_routes: true } } }, { slow: {} });
    const controller = new AbortController();
    const gone = fetch(`${gw.server.url}/slow?hold=5000`, { signal: controller.signal }).catch(
      () => undefined,
    );
    await until('the request in flight', () => gw.service.inFlight.total === 1);
    controller.abort();
    await gone;
    await until('the slot to be freed long before the answer', () => gw.service.inFlight.total === 0, 2000);
  });

  it('answers 503 gateway.overloaded past the global in-flight cap', async () => {
    const gw = await serve({ global_concurrency: 2 }, { slow: {} });
    const held = [gw.get('/slow?hold=1000'), gw.get('/slow?hold=1000')];
    await until('two requests in flight', () => gw.service.globalInFlight === 2);
    const shed = await gw.get('/slow');
    assert.equal(shed.status, 503);
    assert.equal(shed.json<{ code: string }>().code, 'gateway.overloaded');
    assert.equal(shed.headers['retry-after'], '1');
    await Promise.all(held);
    assert.equal((await gw.get('/slow')).status, 200);
    assert.equal(gw.service.globalInFlight, 0);
    assert.equal(gw.service.shed.inFlight, 1);
  });

  it('sheds load with a quick 503 while the event loop is stalled, and recovers by itself', async () => {
    const gw = await serve({ load_shedding: { max_event_loop_delay: '50ms' } }, { orders: {} });
    assert.equal((await gw.get('/orders')).status, 200);
    // The monitor's first tick only sets its baseline: let it tick before stalling.
    await new Promise((r) => setTimeout(r, 50));
    const stallUntil = performance.now() + 250;
    while (performance.now() < stallUntil) {
      // The gateway's own loop is busy: what a CPU-bound overload looks like.
    }
    // The monitor's own timer (every 500 ms) reports the stall.
    const monitor = gw.service.overload!;
    const waitFor = (state: boolean) =>
      until(`overloaded = ${state}`, () => monitor.overloaded === state, 3000);
    await waitFor(true);
    const started = performance.now();
    const shed = await gw.get('/orders');
    assert.equal(shed.status, 503);
    assert.equal(shed.json<{ code: string }>().code, 'gateway.overloaded');
    assert.equal(shed.headers['retry-after'], '1');
    const took = performance.now() - started;
    assert.ok(took < 250, `answered at once (${took} ms)`);
    assert.ok(gw.lines.some((l) => l.msg === 'gateway overloaded: shedding load'));
    await waitFor(false);
    assert.equal((await gw.get('/orders')).status, 200);
  });

  it('keeps memory bounded: ten thousand distinct client IPs never hold more keys than max_keys', async () => {
    const { settings, routes } = compileForTest(
      {
        max_keys: 1000,
        limits: { per_ip: { key: ['ip'], rate: '5/s' }, per_ip_sustained: { key: ['ip'], rate: '100/h' } },
      },
      { r: { rate_limits: ['per_ip', 'per_ip_sustained'] } },
    );
    const service = new RateLimitService(settings, { logger: captureLogger().logger, store: undefined });
    open.push(service);
    const stage = createRateLimitStage(service, routes.r!);
    const res = {} as ServerResponse;
    const req = { headers: {} } as IncomingMessage;
    let maxSize = 0;
    for (let i = 0; i < 10_000; i++) {
      const ip =
        i % 2 === 0 ? `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` : `2001:db8:${i.toString(16)}::1`;
      stage.handle(makeContext(req, res, { route: testRoute('r'), clientIp: ip }));
      maxSize = Math.max(maxSize, service.memory.size);
    }
    assert.equal(maxSize, 2000, 'two limits of at most 1000 keys each');
    assert.equal(service.memory.size, 2000);
  });
});

after(() => {
  // Timers are unref'd; nothing to wait for.
});
