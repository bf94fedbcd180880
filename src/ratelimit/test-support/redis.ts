/**
 * Test helpers for Redis: the shared one (127.0.0.1:6379, skipped with a
 * message when absent, required when CI=true) and private ones the test
 * starts, stops and restarts itself on a free port.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

export const SHARED_REDIS_URL = process.env.PORTCULLIS_TEST_REDIS_URL || 'redis://127.0.0.1:6379';
export const REDIS_SERVER = '/usr/bin/redis-server';

export function redisSkipMessage(): string {
  return `Redis not reachable at ${new URL(SHARED_REDIS_URL).host} — skipped (required when CI=true)`;
}

async function ping(url: string, timeoutMs = 1000): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

let probe: Promise<boolean> | undefined;

/** Whether the shared Redis answers; throws when it does not and CI=true. */
export async function requireSharedRedis(): Promise<boolean> {
  probe ??= ping(SHARED_REDIS_URL);
  const up = await probe;
  if (!up && process.env.CI === 'true') {
    throw new Error(
      `Redis is required when CI=true but is not reachable at ${new URL(SHARED_REDIS_URL).host}`,
    );
  }
  return up;
}

/** Whether this machine can start its own redis-server; throws when it cannot and CI=true. */
export function requireRedisServerBinary(): boolean {
  const ok = existsSync(REDIS_SERVER);
  if (!ok && process.env.CI === 'true') throw new Error(`${REDIS_SERVER} is required when CI=true`);
  return ok;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A redis-server child process on its own port, without persistence. */
export class PrivateRedis {
  private child: ChildProcess | undefined;
  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort());
    await r.start();
    return r;
  }

  async start(): Promise<void> {
    this.child = spawn(
      REDIS_SERVER,
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 5000;
    while (!(await ping(this.url, 200))) {
      if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${this.port}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Kills the server (SIGKILL: no goodbye to its clients) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }
}
