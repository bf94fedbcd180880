/**
 * Micro-benchmark of reading one request: what the gateway parses before
 * any stage decides (issue 11, "one request, one reading"). Prints µs per
 * request; nothing is asserted. Run: node --import tsx bench/request/micro.ts
 *
 * - "one reading": the normalise step's head reader (raw header list with
 *   singleton checks, Host, canonical path, the query view, Content-Type)
 *   and the strict parser of a 1 KB JSON body: what every stage now shares.
 * - "separate readings": what the stages did before the view existed —
 *   the canonical path, then `URLSearchParams` for the query and
 *   `JSON.parse` for the body in each stage that looked (Node's own header
 *   object is built by Node either way and costs the same in both).
 */
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { GatewayConfig } from '../../src/config/types.js';
import { parseBody } from '../../src/request/body.js';
import { createHeadReader } from '../../src/stages/normalise/index.js';
import { normaliseTarget } from '../../src/stages/normalise/path.js';

const N = Number(process.env.BENCH_N ?? 200_000);
const config = { auth: { apiKeys: undefined }, listen: { hosts: undefined } } as unknown as GatewayConfig;
const readHead = createHeadReader(config);
const limits = { maxDepth: 32, maxKeys: 1000, maxString: 65536 };

const rawHeaders = [
  'Host',
  'api.example.com',
  'User-Agent',
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
  'Accept',
  'application/json',
  'Accept-Encoding',
  'gzip, deflate, br',
  'Accept-Language',
  'en-GB,en;q=0.9',
  'Authorization',
  'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg',
  'Content-Type',
  'application/json; charset=utf-8',
  'Content-Length',
  '1024',
  'X-Request-Id',
  'req_0123456789abcdef',
  'Connection',
  'keep-alive',
];
const url = '/users/42/orders?limit=20&status=open&sort=-created_at';
const req = { rawHeaders, url, httpVersionMinor: 1 } as unknown as IncomingMessage;
const items = Array.from({ length: 12 }, (_, i) => ({
  sku: `sku-${i}`,
  qty: i + 1,
  note: 'gift wrap, please',
}));
const body = Buffer.from(JSON.stringify({ userId: '42', currency: 'EUR', items }).padEnd(1024, ' '));

function time(label: string, fn: () => unknown): number {
  for (let i = 0; i < 20_000; i++) fn();
  const start = performance.now();
  for (let i = 0; i < N; i++) fn();
  const us = ((performance.now() - start) * 1000) / N;
  process.stdout.write(`${label.padEnd(52)} ${us.toFixed(2).padStart(7)} µs/request\n`);
  return us;
}

let sink: unknown;
const oneHead = time('one reading: head (headers, host, path, query, type)', () => {
  sink = readHead(req);
});
const head = readHead(req);
if (!('contentType' in head)) throw new Error('the bench request was refused');
const oneBody = time('one reading: head + strict JSON body (1 KB)', () => {
  const h = readHead(req) as typeof head;
  sink = parseBody(body, h.contentType, limits);
});
const sepHead = time('separate readings: path + URLSearchParams', () => {
  const t = normaliseTarget(url);
  sink = new URLSearchParams(t.query);
});
// Before the view, authorize, validate and inspect each parsed a JSON body they looked at.
const sepBody = time('separate readings: path + query + JSON.parse x3 (1 KB)', () => {
  const t = normaliseTarget(url);
  sink = new URLSearchParams(t.query);
  for (let i = 0; i < 3; i++) sink = JSON.parse(body.toString('utf8'));
});
void sink;
process.stdout.write(
  `\nhead: one reading costs ${(oneHead - sepHead).toFixed(2)} µs more per request; ` +
    `with a 1 KB JSON body ${(oneBody - sepBody).toFixed(2)} µs more (negative: less)\n`,
);
