/**
 * Micro-benchmark of the rate-limit stage: the per-request overhead of the
 * memory and Redis backends. Prints ns (or µs) per request; asserts nothing.
 *
 *     node --import tsx bench/ratelimit/overhead.ts
 *     BENCH_REDIS_URL=redis://127.0.0.1:6379 node --import tsx bench/ratelimit/overhead.ts
 *
 * Each case runs the real stage (key extraction, GCRA, RateLimit header
 * fields) on a route with two limits, `10/s burst 20` per IP and `1000/h`
 * per principal + route, over 10 000 distinct clients so the LRU works.
 */

import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Redis } from 'ioredis';
import pino from 'pino';
import { RateLimitService } from '../../src/ratelimit/index.js';
import { compileForTest } from '../../src/ratelimit/test-support/config.js';
import { createRateLimitStage } from '../../src/stages/rate-limit/index.js';
import { makeContext, principal, testRoute } from '../../src/test-support/stage.js';

const CLIENTS = 10_000;
const logger = pino({ level: 'silent' });
const route = testRoute('orders');
const req = { headers: {} } as IncomingMessage;
const res = {} as ServerResponse;
const contexts = Array.from({ length: CLIENTS }, (_, i) =>
  makeContext(req, res, {
    route,
    clientIp: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    principal: principal('api_key', `key_${i}`),
  }),
);
const ctxAt = (i: number) => {
  const c = contexts[i % CLIENTS]!;
  (c.responseHeaders as string[]).length = 0;
  return c;
};

/** `generous`: limits no client reaches (the admitted path); otherwise 10/s per IP refuses most. */
function build(section: Record<string, unknown>, generous = true) {
  const { settings, routes } = compileForTest(
    {
      ...section,
      limits: {
        per_ip: { key: ['ip'], rate: generous ? '1000000/s' : '10/s', burst: generous ? 1000000 : 20 },
        per_principal: { key: ['principal', 'route'], rate: '100000000/h' },
      },
    },
    { orders: { rate_limits: ['per_ip', 'per_principal'] } },
  );
  const service = new RateLimitService(settings, { logger, store: undefined });
  return { service, stage: createRateLimitStage(service, routes.orders!) };
}

function row(name: string, perOpNs: number, extra = ''): void {
  const text = perOpNs >= 10_000 ? `${(perOpNs / 1000).toFixed(1)} µs/req` : `${Math.round(perOpNs)} ns/req`;
  console.error(`${name.padEnd(44)} ${text.padStart(14)}  ${extra}`);
}

/** The stage, refusals included (a refusal is a thrown GatewayError, as in the gateway). */
function handle(
  stage: ReturnType<typeof build>['stage'],
  i: number,
  clients = CLIENTS,
): Promise<boolean> | boolean {
  try {
    const out = stage.handle(ctxAt(i % clients));
    return out instanceof Promise
      ? out.then(
          () => true,
          () => false,
        )
      : true;
  } catch {
    return false;
  }
}

async function memory(): Promise<void> {
  for (const generous of [true, false]) {
    const { stage } = build({}, generous);
    const n = 500_000;
    // The refused case: 100 clients far over 10/s each.
    const clients = generous ? CLIENTS : 100;
    for (let i = 0; i < 50_000; i++) handle(stage, i, clients);
    let admitted = 0;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) if (handle(stage, i, clients)) admitted++;
    const label = generous ? 'memory backend, admitted (10k clients)' : 'memory backend, refused (429)';
    row(label, ((performance.now() - t0) * 1e6) / n, `${Math.round((admitted / n) * 100)} % admitted`);
  }
}

async function redis(url: string): Promise<void> {
  const prefix = `portcullis-bench-${randomBytes(4).toString('hex')}:`;
  const { service, stage } = build({ backend: 'redis', redis: { url, key_prefix: prefix, timeout: '1s' } });
  await service.start();
  try {
    for (let i = 0; i < 2000; i++) await handle(stage, i);
    const sequential = 20_000;
    let t0 = performance.now();
    for (let i = 0; i < sequential; i++) await handle(stage, i);
    row(
      'redis backend, one request at a time',
      ((performance.now() - t0) * 1e6) / sequential,
      '(round-trip latency)',
    );
    for (const inFlight of [16, 128]) {
      const total = 100_000;
      let next = 0;
      const cpu0 = process.cpuUsage();
      t0 = performance.now();
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (next < total) await handle(stage, next++);
        }),
      );
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      row(
        `redis backend, ${inFlight} requests in flight`,
        (ms * 1e6) / total,
        `${Math.round((total / ms) * 1000)} req/s; gateway CPU ${((cpu.user + cpu.system) / total).toFixed(1)} µs/req`,
      );
    }
  } finally {
    await service.close();
    const client = new Redis(url);
    let cursor = '0';
    do {
      const [nextCursor, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = nextCursor;
      if (keys.length > 0) await client.del(...keys);
    } while (cursor !== '0');
    await client.quit();
  }
}

console.error(`node ${process.version}; per request, the whole stage (keys, GCRA, header fields)`);
await memory();
await redis(process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379').catch((err: Error) =>
  console.error(`redis backend: skipped (${err.message})`),
);
