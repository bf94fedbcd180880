/**
 * Cluster mode (`listen.workers`), from outside: `portcullis start` in a
 * child process with two workers on one port, in front of a real upstream.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { runAdminCommand } from './admin/tokens/cli.js';
import { ConfigError, loadConfig } from './config/load.js';
import { runClientsCommand } from './issuer/cli.js';
import { type ChildGateway, startChildGateway } from './test-support/child-gateway.js';
import { startUpstream, type TestUpstream } from './test-support/gateway.js';
import { adminApi, freePort, send } from './test-support/http.js';

/** The live Node.js child processes of `pid` (the workers of a primary; not tsx's esbuild). */
function childrenOf(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter(([, comm]) => comm === 'node')
      .map(([n]) => Number(n))
      .filter((n) => n > 0);
  } catch {
    return []; // ps exits 1 when there are none
  }
}

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A request on a fresh connection, so that the cluster hands it to the next worker. */
const get = (url: string, path: string) => send(url, path, { headers: { connection: 'close' } });

/** The sum of `portcullis_requests_total` for `route` in a Prometheus text page. */
function requestsOn(metrics: string, route: string): number {
  let sum = 0;
  for (const line of metrics.split('\n')) {
    if (line.startsWith('portcullis_requests_total{') && line.includes(`route="${route}"`)) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

describe('cluster mode (listen.workers)', () => {
  let upstream: TestUpstream;
  let gw: ChildGateway;
  /** Worker 1's admin listener (the helper's adminUrl is that of whichever worker logged first). */
  let adminUrl: string;

  before(async () => {
    process.env.PC_CLUSTER_TEST_SECRET = 'cluster-test-hmac-secret-of-32-bytes-or-more';
    upstream = await startUpstream();
    const adminPort = await freePort();
    adminUrl = `http://127.0.0.1:${adminPort}`;
    const port = await freePort();
    gw = await startChildGateway({
      listen: { port, workers: 2, trusted_proxies: ['127.0.0.1'] },
      admin: { port: adminPort },
      upstreams: { backend: { url: upstream.url } },
      auth: {
        issuer: { issuer: `http://127.0.0.1:${port}`, audience: 'cluster', rate_limit: '3/m' },
        jwt: {
          providers: [
            {
              name: 'hs',
              issuer: 'https://idp.cluster.test',
              audience: ['cluster'],
              algorithms: ['HS256'],
              hmac_secret: '${env:PC_CLUSTER_TEST_SECRET}',
            },
          ],
        },
        brute_force: { max_failures_per_ip: 4, lockout: '1m' },
      },
      routes: [
        { name: 'echo', path: '/echo', methods: ['GET'], upstream: 'backend', auth: 'none' },
        {
          name: 'guarded',
          path: '/guarded',
          methods: ['GET'],
          upstream: 'backend',
          auth: ['jwt'],
          authorize: 'any-authenticated',
        },
        {
          name: 'limited',
          path: '/limited',
          methods: ['GET'],
          upstream: 'backend',
          auth: 'none',
          rate_limits: [{ key: ['ip'], rate: '6/h' }],
        },
      ],
    });
    // Both workers log that they listen; the helper returns at the first.
    await waitFor('two workers listening', () =>
      gw.logs.filter((l) => l.msg === 'portcullis listening').length >= 2 ? true : undefined,
    );
  });

  after(async () => {
    if (gw.child.exitCode === null) {
      for (const pid of childrenOf(gw.child.pid!)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    await gw.close();
    await upstream.close();
  });

  it('serves one port from two worker processes', async () => {
    assert.equal(childrenOf(gw.child.pid!).length, 2);
    for (let i = 0; i < 10; i++) {
      const r = await get(gw.url, '/echo');
      assert.equal(r.status, 200, r.body);
    }
  });

  it('shows on /metrics the requests every worker answered, not one worker’s share', async () => {
    const before = requestsOn((await get(adminUrl, '/metrics')).body, 'echo');
    for (let i = 0; i < 40; i++) assert.equal((await get(gw.url, '/echo')).status, 200);
    const page = await get(adminUrl, '/metrics');
    assert.equal(page.status, 200);
    assert.equal(requestsOn(page.body, 'echo') - before, 40);
  });

  it('holds an in-memory rate limit exactly across the workers, not once per worker', async () => {
    const statuses: number[] = [];
    // Fresh connections: the cluster hands them to each worker in turn.
    for (let i = 0; i < 12; i++) statuses.push((await get(gw.url, '/limited')).status);
    assert.deepEqual(
      statuses,
      [...Array(6).fill(200), ...Array(6).fill(429)],
      'six per hour for the client, whichever worker served it',
    );
    assert.equal((await get(gw.url, '/echo')).status, 200, 'a route without the limit still serves');
  });

  it('locks a guessing client out in every worker once the workers together saw its failures', async () => {
    const guess = () =>
      send(gw.url, '/guarded', { headers: { connection: 'close', authorization: 'Bearer not.a.token' } });
    // Fresh connections alternate between the workers: two failures each.
    for (let i = 0; i < 4; i++) assert.equal((await guess()).status, 401);
    await new Promise((r) => setTimeout(r, 100));
    const after = [(await guess()).status, (await guess()).status];
    assert.deepEqual(after, [429, 429], 'locked out whichever worker serves it');
  });

  it('limits the tokens one issuer client gets across the workers, not once per worker', async () => {
    const out: string[] = [];
    const code = await runClientsCommand(
      ['create', '--name', 'batch', '--scopes', 'orders:read', '--json', '--config', gw.configFile],
      {
        out: (text) => out.push(text),
        err: () => {},
        env: { ...process.env, PORTCULLIS_DATA: dirname(gw.configFile) },
      },
    );
    assert.equal(code, 0);
    const { client_id: id, client_secret: secret } = JSON.parse(out.join('')) as Record<string, string>;
    const statuses: number[] = [];
    // 3/m with bursts of 6 per client; each request from another address, so only that limit counts.
    for (let i = 0; i < 8; i++) {
      const reply = await send(gw.url, '/oauth2/token', {
        method: 'POST',
        headers: {
          connection: 'close',
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
          'x-forwarded-for': `198.51.100.${10 + i}`,
        },
        body: 'grant_type=client_credentials',
      });
      statuses.push(reply.status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 429, 429]);
  });

  it('applies a block added through worker 1’s admin API in every worker', async () => {
    const out: string[] = [];
    const code = await runAdminCommand(['tokens', 'create', '--role', 'operator'], {
      out: (text) => out.push(text),
      err: () => {},
      env: { ...process.env, PORTCULLIS_CONFIG: gw.configFile, PORTCULLIS_DATA: dirname(gw.configFile) },
    });
    assert.equal(code, 0);
    const from = (ip: string) =>
      send(gw.url, '/echo', { headers: { connection: 'close', 'x-forwarded-for': ip } });
    const added = await adminApi(adminUrl, out.join('').trim())('POST', '/admin/blocks', {
      kind: 'ip',
      subject: '203.0.113.66',
      duration: '1h',
      status: 403,
      reason: 'cluster test',
    });
    assert.equal(added.status, 201, added.body);
    // Fresh connections alternate between the workers: both come to refuse it (the other worker
    // through the store's change feed, polled every auth.revocations.poll, 1 s by default).
    await waitFor('both workers to refuse the blocked address', async () => {
      const statuses = [(await from('203.0.113.66')).status, (await from('203.0.113.66')).status];
      return statuses.every((s) => s === 403) ? true : undefined;
    });
    assert.equal((await from('203.0.113.67')).status, 200, 'another address still passes');
  });

  it('says on worker 1’s /readyz that a worker is being restarted, and stays ready meanwhile', async () => {
    const ready = async () => {
      const r = await get(adminUrl, '/readyz');
      return {
        status: r.status,
        workers: (JSON.parse(r.body) as { checks: Record<string, string> }).checks.workers,
      };
    };
    assert.deepEqual(await ready(), { status: 200, workers: 'ok' });
    const second = childrenOf(gw.child.pid!).find((pid) =>
      readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes('PORTCULLIS_WORKER=2'),
    );
    assert.ok(second !== undefined, 'worker 2 found');
    const listening = gw.logs.filter((l) => l.msg === 'portcullis listening').length;
    process.kill(second, 'SIGKILL');
    await waitFor('the primary to see the exit', () =>
      gw.logs.some((l) => l.msg === 'worker stopped unexpectedly; restarting it') ? true : undefined,
    );
    const during = await ready();
    assert.equal(during.status, 200);
    assert.equal(during.workers, '1 of 2 workers running; the others are being restarted');
    await waitFor('the replacement listening', () =>
      gw.logs.filter((l) => l.msg === 'portcullis listening').length > listening ? true : undefined,
    );
    assert.deepEqual(await ready(), { status: 200, workers: 'ok' });
  });

  it('restarts a worker that dies, while the other keeps serving', async () => {
    const [victim] = childrenOf(gw.child.pid!);
    assert.ok(victim !== undefined);
    const exits = gw.logs.filter((l) => l.msg === 'worker stopped unexpectedly; restarting it').length;
    process.kill(victim, 'SIGKILL');
    // A connection handed to the worker in the instant it died is lost, as with any crash; once the
    // primary has seen the exit, the survivor takes every connection while the replacement starts.
    await waitFor('the primary to see the exit', () =>
      gw.logs.filter((l) => l.msg === 'worker stopped unexpectedly; restarting it').length > exits
        ? true
        : undefined,
    );
    for (let i = 0; i < 5; i++) assert.equal((await get(gw.url, '/echo')).status, 200);
    const restarted = await waitFor('a replacement worker', () => {
      const now = childrenOf(gw.child.pid!);
      return now.length === 2 && !now.includes(victim) ? now : undefined;
    });
    assert.equal(restarted.length, 2);
    await waitFor('the replacement listening', () =>
      gw.logs.filter((l) => l.msg === 'portcullis listening').length >= 4 ? true : undefined,
    );
    for (let i = 0; i < 10; i++) assert.equal((await get(gw.url, '/echo')).status, 200);
  });

  it('reloads every worker on SIGHUP', async () => {
    const config = parse(readFileSync(gw.configFile, 'utf8'));
    config.routes.push({
      name: 'added',
      path: '/added',
      methods: ['GET'],
      upstream: 'backend',
      auth: 'none',
    });
    writeFileSync(gw.configFile, stringify(config));
    gw.child.kill('SIGHUP');
    await waitFor('both workers reloaded', () =>
      gw.logs.filter((l) => l.msg === 'configuration reloaded').length >= 2 ? true : undefined,
    );
    // Fresh connections go to each worker in turn: every one of them has the new route.
    for (let i = 0; i < 10; i++) assert.equal((await get(gw.url, '/added')).status, 200);
  });

  it('stops every worker on SIGTERM and exits 0', async () => {
    const workers = childrenOf(gw.child.pid!);
    gw.child.kill('SIGTERM');
    const { code } = await gw.exited;
    assert.equal(code, 0);
    for (const pid of workers) assert.throws(() => process.kill(pid, 0), /ESRCH/);
  });
});

describe('listen.workers in the config', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-workers-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const load = (extra: Record<string, unknown>) => {
    const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      file,
      stringify({
        upstreams: { backend: { url: 'http://127.0.0.1:9' } },
        routes: [
          {
            path: '/a',
            methods: ['GET'],
            upstream: 'backend',
            auth: 'none',
            rate_limits: [{ key: ['ip'], rate: '10/s' }],
          },
        ],
        ...extra,
      }),
    );
    return loadConfig(file);
  };

  it('accepts several workers with rate limits counted in memory (the primary counts for all)', async () => {
    const { config } = await load({ listen: { workers: 3 } });
    assert.equal(config.listen.workers, 3);
    assert.equal(config.rateLimit.backend, 'memory');
  });

  it('refuses several workers on an in-memory store', async () => {
    await assert.rejects(
      load({
        listen: { workers: 2 },
        store: { url: 'sqlite::memory:' },
        rate_limit: { backend: 'redis', redis: { url: 'redis://127.0.0.1:6379' } },
      }),
      (err: unknown) =>
        err instanceof ConfigError && err.issues.some((i) => /in-memory SQLite/.test(i.message)),
    );
  });

  it('accepts auto, as one worker per core, and defaults to one', async () => {
    const auto = await load({
      listen: { workers: 'auto' },
      rate_limit: { backend: 'redis', redis: { url: 'redis://127.0.0.1:6379' } },
    });
    assert.ok(auto.config.listen.workers >= 1);
    const one = await load({});
    assert.equal(one.config.listen.workers, 1);
  });

  it('refuses a value that is neither auto nor a count', async () => {
    await assert.rejects(
      load({ listen: { workers: 0 } }),
      (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.path === 'listen.workers'),
    );
  });
});
