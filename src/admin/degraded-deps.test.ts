/**
 * Readiness with real dependencies taken down (issue 18, item 6): a real
 * PostgreSQL store reached through a TCP relay that the test cuts, and a
 * real redis-server that the test kills. Dependencies the configured policy
 * serves without (the shared store, Redis under fail-open) are notes on
 * /readyz with the status staying 200, "degraded" on /healthz/deps and in
 * the metrics; Redis under fail-closed makes the instance unready. While
 * Redis is down, its outage is logged once per interval with a count, not
 * once per request (item 7).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { loadConfig } from '../config/load.js';
import { PrivateRedis, requireRedisServerBinary } from '../ratelimit/test-support/redis.js';
import { type Running, startGateway } from '../runtime.js';
import { migrations, openPostgresStore, type Store } from '../store/index.js';
import { startUpstream, type TestUpstream } from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { captureLogger } from '../test-support/log.js';
import { postgresSkipMessage, requirePostgres, type TestPostgres } from '../test-support/postgres.js';

/** A TCP relay to `target` that can be cut (connections reset, port closed) and restored on the same port. */
class Relay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;
  constructor(
    private readonly host: string,
    private readonly targetPort: number,
  ) {}

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.targetPort, this.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

interface Gw {
  running: Running;
  url: string;
  adminUrl: string;
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

/** A gateway from `config`, on a store the test opened itself (so that it can cut it). */
async function startOn(config: Record<string, unknown>, store?: Store): Promise<Gw> {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-deps-'));
  const file = join(dataDir, 'portcullis.yaml');
  writeFileSync(
    file,
    stringify({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      log: { level: 'info' },
      ...config,
    }),
  );
  const { config: loaded } = await loadConfig(file, { env: { ...process.env, PORTCULLIS_DATA: dataDir } });
  const { logger, lines: logs } = captureLogger(loaded.log.level, loaded.log.redact);
  const running = await startGateway(loaded, { logger, ...(store ? { store } : {}) });
  return {
    running,
    url: `http://127.0.0.1:${running.port}`,
    adminUrl: `http://127.0.0.1:${running.adminPort}`,
    logs,
    async close() {
      await running.close(1000);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function metricsText(adminUrl: string): Promise<string> {
  return (await send(adminUrl, '/metrics')).body;
}

function gauge(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

type Deps = Record<string, { status: string; note: string }>;

const pgTarget = await requirePostgres();
const redisBinary = requireRedisServerBinary();

describe('readiness with dependencies down', () => {
  let upstream: TestUpstream;

  before(async () => {
    upstream = await startUpstream();
  });

  after(async () => {
    await upstream.close();
  });

  const routes = () => [
    { path: '/public', methods: ['GET'], upstream: 'app', auth: 'none', inspection: { mode: 'off' } },
  ];
  const rateLimit = (url: string, onFailure: string) => ({
    backend: 'redis',
    redis: {
      url,
      on_failure: onFailure,
      timeout: '200ms',
      connect_timeout: '500ms',
      key_prefix: 'deps-test:',
    },
    limits: { per_ip: { key: ['ip'], rate: '10000/s', burst: 10000, all_routes: true } },
  });

  it('stays ready (200) with notes while PostgreSQL and Redis (fail-open) are down, and says so in /healthz/deps and the metrics', {
    skip: pgTarget === undefined ? postgresSkipMessage() : !redisBinary ? 'no redis-server binary' : false,
  }, async (t) => {
    const target = pgTarget as TestPostgres;
    const pgUrl = new URL(target.url);
    const relay = new Relay(pgUrl.hostname, Number(pgUrl.port || 5432));
    await relay.start();
    const relayed = new URL(target.url);
    relayed.hostname = '127.0.0.1';
    relayed.port = String(relay.port);
    const store = openPostgresStore(relayed.toString(), migrations, { schema: target.schema });
    await store.migrate();
    const redis = await PrivateRedis.start();
    const gw = await startOn(
      {
        upstreams: { app: { url: upstream.url } },
        routes: routes(),
        rate_limit: rateLimit(redis.url, 'fail-open'),
      },
      store,
    );
    try {
      const ready = await send(gw.adminUrl, '/readyz');
      assert.equal(ready.status, 200, ready.body);
      let m = await metricsText(gw.adminUrl);
      assert.equal(gauge(m, 'portcullis_ready'), 1);
      assert.equal(gauge(m, 'portcullis_readiness_check{check="store",state="up"}'), 1);

      // Both go away: the relay to PostgreSQL is cut, redis-server is killed.
      await relay.cut();
      await redis.stop();
      let served = 0;
      for (let i = 0; i < 200; i++) if ((await send(gw.url, '/public')).status === 200) served++;
      assert.equal(served, 200, 'requests are still served');

      const down = await send(gw.adminUrl, '/readyz');
      const checks = down.json<{ checks: Record<string, string> }>().checks;
      t.diagnostic(`/readyz ${down.status}: ${JSON.stringify(checks)}`);
      assert.equal(down.status, 200);
      assert.match(checks.store ?? '', /unreachable/);
      assert.match(checks.rate_limit_redis ?? '', /^degraded: redis unreachable, fail-open/);
      const deps = (await send(gw.adminUrl, '/healthz/deps')).json<{ dependencies: Deps }>().dependencies;
      assert.equal(deps.store?.status, 'degraded');
      assert.equal(deps.rate_limit_redis?.status, 'degraded');
      assert.equal(deps.listener?.status, 'up');
      m = await metricsText(gw.adminUrl);
      assert.equal(gauge(m, 'portcullis_ready'), 1);
      assert.equal(gauge(m, 'portcullis_readiness_check{check="store",state="degraded"}'), 1);
      assert.equal(gauge(m, 'portcullis_readiness_check{check="rate_limit_redis",state="degraded"}'), 1);
      assert.equal(gauge(m, 'portcullis_readiness_check{check="store",state="down"}'), 0);

      // 200 requests decided on local limits: one outage line, not 200.
      const redisLines = gw.logs.filter((l) => String(l.msg).startsWith('rate-limit Redis'));
      t.diagnostic(`Redis log lines during the outage: ${redisLines.map((l) => l.msg).join(' | ')}`);
      assert.equal(redisLines.length, 1);

      // Redis comes back: the recovery line counts what the outage cost.
      await redis.start();
      const deadline = Date.now() + 10_000;
      let back: Record<string, unknown> | undefined;
      while (back === undefined && Date.now() < deadline) {
        await send(gw.url, '/public');
        await new Promise((r) => setTimeout(r, 100));
        back = gw.logs.find((l) => String(l.msg).startsWith('rate-limit Redis reachable again'));
      }
      assert.ok(back, 'Redis recovery was logged');
      assert.ok(Number(back.requests) >= 200, `recovery line counts ${String(back.requests)} requests`);
    } finally {
      await gw.close();
      await store.close();
      await redis.stop();
      await target.drop();
    }
  });

  it('is not ready (503) while Redis under fail-closed is down, and the metrics say which check', {
    skip: redisBinary ? false : 'no redis-server binary',
  }, async (t) => {
    const redis = await PrivateRedis.start();
    const gw = await startOn({
      upstreams: { app: { url: upstream.url } },
      routes: routes(),
      rate_limit: rateLimit(redis.url, 'fail-closed'),
    });
    try {
      assert.equal((await send(gw.adminUrl, '/readyz')).status, 200);
      await redis.stop();
      const statuses: number[] = [];
      for (let i = 0; i < 100; i++) statuses.push((await send(gw.url, '/public')).status);
      assert.ok(statuses.every((s) => s === 503));
      const down = await send(gw.adminUrl, '/readyz');
      assert.equal(down.status, 503);
      const m = await metricsText(gw.adminUrl);
      assert.equal(gauge(m, 'portcullis_ready'), 0);
      assert.equal(gauge(m, 'portcullis_readiness_check{check="rate_limit_redis",state="down"}'), 1);
      const deps = (await send(gw.adminUrl, '/healthz/deps')).json<{ dependencies: Deps }>().dependencies;
      assert.equal(deps.rate_limit_redis?.status, 'down');
      const redisLines = gw.logs.filter((l) => String(l.msg).startsWith('rate-limit Redis'));
      const perRequest = gw.logs.filter((l) => l.msg === 'request failed').length;
      t.diagnostic(`100 refused requests: ${redisLines.length} Redis outage line(s)`);
      assert.equal(redisLines.length, 1);
      // The outage is logged where it is; the 503s it causes add no line each.
      assert.equal(perRequest, 0);
    } finally {
      await gw.close();
      await redis.stop();
    }
  });
});
