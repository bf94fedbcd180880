/**
 * The process memory of a real gateway under a flood of distinct clients:
 * where the memory beyond the per-client tables (`clients.ts`) goes.
 *
 *     node --import tsx bench/memory/clients-gateway.ts [clients=200000] [concurrency=16]
 *
 * A gateway (defaults, an API-key route, `listen.trusted_proxies` for the
 * client) runs in a child `node --expose-gc` with its log discarded; this
 * process sends one request per client, each from a new `X-Forwarded-For`
 * address with a new well-formed made-up API key (401). Every 50 000
 * clients the child's memory is read twice: as it is (what an operator
 * sees), then after a full GC (what is live). The difference is garbage V8
 * has not collected yet; rss minus heapTotal minus external is the rest of
 * the process (code, stacks, the allocator's free lists, SQLite's cache).
 * `GATEWAY_NODE_FLAGS` adds Node flags to the gateway's (such as
 * `--max-old-space-size=384`).
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';

const MB = (n: number) => (n / 1048576).toFixed(0).padStart(5);

if (process.argv[2] === '--gateway') await child(process.argv[3]!);
else await main();

async function child(upstream: string): Promise<void> {
  const { loadConfig } = await import('../../src/config/load.js');
  const { startGateway } = await import('../../src/runtime.js');
  const { createLogger } = await import('../../src/log.js');
  const gc = (globalThis as { gc?: () => void }).gc!;
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-clients-'));
  const file = join(dir, 'portcullis.yaml');
  writeFileSync(
    file,
    stringify({
      listen: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.1'] },
      admin: { enabled: false },
      log: { level: 'warn' },
      auth: { api_keys: {} },
      upstreams: { app: { url: upstream } },
      routes: [{ path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' }],
    }),
  );
  const { config } = await loadConfig(file, { env: { ...process.env, PORTCULLIS_DATA: dir } });
  const sink = new Writable({ write: (_c, _e, done) => done() });
  const running = await startGateway(config, { logger: createLogger({ level: 'warn' }, sink) });
  process.on('message', (m: { op: string }) => {
    if (m.op === 'stop') {
      void running.close(1000).then(() => {
        rmSync(dir, { recursive: true, force: true });
        process.exit(0);
      });
      return;
    }
    const asIs = process.memoryUsage();
    gc();
    gc();
    process.send!({ asIs, live: process.memoryUsage() });
  });
  process.send!({ port: running.port });
}

async function main(): Promise<void> {
  const clients = Number(process.argv[2] ?? 200_000);
  const concurrency = Number(process.argv[3] ?? 16);
  const up = createServer((_req, res) => res.end('{}'));
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  const gw = fork(
    new URL(import.meta.url).pathname,
    ['--gateway', `http://127.0.0.1:${(up.address() as AddressInfo).port}`],
    {
      execArgv: [
        '--expose-gc',
        ...(process.env.GATEWAY_NODE_FLAGS ?? '').split(' ').filter(Boolean),
        '--import',
        'tsx',
      ],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const next = () =>
    new Promise<Record<string, NodeJS.MemoryUsage & number>>((r) => gw.once('message', r as never));
  const { port } = (await next()) as unknown as { port: number };
  const { generateApiKey } = await import('../../src/keys/format.js');
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const statuses: Record<number, number> = {};
  const get = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/orders',
          agent,
          headers: { 'x-forwarded-for': ip, 'x-api-key': generateApiKey().key },
        },
        (res) => {
          statuses[res.statusCode ?? 0] = (statuses[res.statusCode ?? 0] ?? 0) + 1;
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      req.end();
    });
  const read = async (label: string) => {
    const reply = next();
    gw.send({ op: 'read' });
    const { asIs, live } = (await reply) as unknown as { asIs: NodeJS.MemoryUsage; live: NodeJS.MemoryUsage };
    const other = (u: NodeJS.MemoryUsage) => u.rss - u.heapTotal - u.external;
    process.stdout.write(
      `${label.padStart(8)}  ${MB(asIs.rss)} ${MB(asIs.heapTotal)} ${MB(asIs.heapUsed)} ${MB(asIs.external)} ${MB(other(asIs))}` +
        `   | ${MB(live.rss)} ${MB(live.heapTotal)} ${MB(live.heapUsed)} ${MB(live.external)} ${MB(other(live))}\n`,
    );
  };
  process.stdout.write('                 as it is (MB)                  | after a full GC (MB)\n');
  process.stdout.write(' clients    rss heapT heapU  ext  rest   |   rss heapT heapU  ext  rest\n');
  await read('0');
  let sent = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (sent < clients) {
      const i = sent++;
      await get(i);
      if ((i + 1) % 50_000 === 0) await read(String(i + 1));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  process.stdout.write(
    `${clients} clients in ${Math.round((performance.now() - t0) / 1000)} s, statuses ${JSON.stringify(statuses)}\n`,
  );
  gw.send({ op: 'stop' });
  agent.destroy();
  up.close();
}
