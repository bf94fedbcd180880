/**
 * Memory a large filtered response costs the gateway, during and after.
 *
 *     node --import tsx bench/memory/filtered-response.ts [requests=10] [scenario=project] [mb=10]
 *
 * A real gateway runs in a child process (`--expose-gc`), in front of a
 * real upstream in this process that answers `GET /records` with a JSON
 * array of about `mb` MB. The route is described by an API document, so the
 * response is collected, decoded, parsed, checked and projected. This
 * process is the client: it reads each response and drops it. The child's
 * memory is read before the first request (after a full GC), at its peak
 * (sampled every 5 ms), right after the last response, after `IDLE_MS`
 * (default 5000) idle with no forced GC (what an operator sees), and after
 * a full GC (what is really retained: a reference kept after the response
 * would show here).
 *
 * `GATEWAY_NODE_FLAGS` adds Node flags to the gateway's (such as
 * `--max-old-space-size=256`).
 *
 * Scenarios:
 * - `project`: every record carries a property the document does not declare,
 *   so the body is re-serialised (parse + project + stringify);
 * - `pass`: the body matches its schema and is sent as received;
 * - `chunked`: as `project`, without Content-Length (the body arrives in chunks);
 * - `concurrent`: as `project`, four requests at a time.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Usage = NodeJS.MemoryUsage;
const IDLE_MS = Number(process.env.IDLE_MS ?? 5000);
const MB = (n: number) => (n / 1048576).toFixed(1).padStart(7);

const DOCUMENT = {
  openapi: '3.1.0',
  info: { title: 'large', version: '1' },
  paths: {
    '/records': {
      get: {
        responses: {
          '200': {
            description: 'ok',
            content: {
              'application/json': {
                schema: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: {
                      id: { type: 'integer' },
                      name: { type: 'string' },
                      email: { type: 'string' },
                      tags: { type: 'array', items: { type: 'string' } },
                      note: { type: 'string' },
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};

if (process.argv[2] === '--gateway') await gatewayChild(process.argv[3]!);
else await main();

/** The child: a gateway in front of the upstream at `upstream`; answers memory readings over IPC. */
async function gatewayChild(upstream: string): Promise<void> {
  const { startApiGateway } = await import('../../src/test-support/gateway.js');
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('the gateway child needs --expose-gc');
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-filter-'));
  writeFileSync(join(dir, 'openapi.json'), JSON.stringify(DOCUMENT));
  const gw = await startApiGateway({
    upstream,
    document: join(dir, 'openapi.json'),
    routes: [{ path: '/records', methods: ['GET'], responses: { max_bytes: '64mb' } as never }],
    logLevel: 'warn',
  });
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  process.on('message', (m: { op: string }) => {
    if (m.op === 'collect') {
      gc();
      gc();
    }
    if (m.op === 'reset-peak') peak = 0;
    if (m.op === 'stop') {
      clearInterval(sampler);
      void gw.close().then(() => {
        rmSync(dir, { recursive: true, force: true });
        process.exit(0);
      });
      return;
    }
    peak = Math.max(peak, process.memoryUsage.rss());
    process.send!({ usage: process.memoryUsage(), peak });
  });
  process.send!({ port: gw.port });
}

async function main(): Promise<void> {
  const requests = Number(process.argv[2] ?? 10);
  const scenario = process.argv[3] ?? 'project';
  const mb = Number(process.argv[4] ?? 10);
  const undeclared = scenario !== 'pass';
  const records: unknown[] = [];
  let length = 2;
  for (let i = 0; length < mb * 1048576; i++) {
    const r: Record<string, unknown> = {
      id: i,
      name: `customer ${i}`,
      email: `customer${i}@example.com`,
      tags: ['a', 'bb', 'ccc'],
      note: 'x'.repeat(40),
    };
    if (undeclared) r.password_hash = `scrypt$16384$${i.toString(16).padStart(16, '0')}`;
    records.push(r);
    length += JSON.stringify(r).length + 1;
  }
  const body = Buffer.from(JSON.stringify(records));
  records.length = 0;
  const server = createServer((req, res) => {
    req.resume();
    if (scenario === 'chunked') {
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i < body.length; i += 65536) res.write(body.subarray(i, i + 65536));
      res.end();
    } else {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const upstream = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const child = fork(new URL(import.meta.url).pathname, ['--gateway', upstream], {
    execArgv: [
      '--expose-gc',
      ...(process.env.GATEWAY_NODE_FLAGS ?? '').split(' ').filter(Boolean),
      '--import',
      'tsx',
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = () => new Promise<Record<string, unknown>>((resolve) => child.once('message', resolve));
  const { port } = (await next()) as { port: number };
  const ask = async (op: string) => {
    const reply = next();
    child.send({ op });
    return (await reply) as { usage: Usage; peak: number };
  };

  const get = () =>
    new Promise<{ status: number; bytes: number }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/records' }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });

  const rows: [string, Usage, number][] = [];
  const before = await ask('collect');
  rows.push(['before', before.usage, before.peak]);
  await ask('reset-peak');
  const concurrency = scenario === 'concurrent' ? 4 : 1;
  let sent = 0;
  let status = 0;
  let bytes = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < requests) {
        sent++;
        const r = await get();
        status = r.status;
        bytes = r.bytes;
      }
    }),
  );
  const end = await ask('read');
  rows.push(['after the last response', end.usage, end.peak]);
  await new Promise((r) => setTimeout(r, IDLE_MS));
  const idle = await ask('read');
  rows.push([`after ${IDLE_MS / 1000} s idle`, idle.usage, idle.peak]);
  const collected = await ask('collect');
  rows.push(['after a full GC', collected.usage, collected.peak]);
  child.send({ op: 'stop' });

  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(
    `${requests} × GET /records, ${scenario}: upstream body ${MB(body.length).trim()} MB, ` +
      `answered ${status} with ${MB(bytes).trim()} MB`,
  );
  out('gateway process, MB:             rss  peak rss  heapUsed heapTotal  external  arrayBuf');
  for (const [name, u, peak] of rows) {
    out(
      `${name.padEnd(26)} ${MB(u.rss)}   ${MB(peak)}   ${MB(u.heapUsed)}   ${MB(u.heapTotal)}   ${MB(u.external)}   ${MB(u.arrayBuffers)}`,
    );
  }
  const delta = (u: Usage, k: keyof Usage) => MB(u[k] - before.usage[k]).trim();
  out(
    `peak rss +${MB(end.peak - before.usage.rss).trim()}; ` +
      `after ${IDLE_MS / 1000} s idle: rss +${delta(idle.usage, 'rss')}, heapUsed +${delta(idle.usage, 'heapUsed')}, ` +
      `external +${delta(idle.usage, 'external')}; ` +
      `retained (after a full GC): heapUsed +${delta(collected.usage, 'heapUsed')}, ` +
      `external +${delta(collected.usage, 'external')}, rss +${delta(collected.usage, 'rss')}`,
  );
  (child as ChildProcess).kill();
  server.closeAllConnections();
  server.close();
}
