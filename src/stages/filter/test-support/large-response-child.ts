/**
 * Run by `large-response.test.ts` as `node --expose-gc --import tsx`: a real
 * gateway and a real upstream in this process, large JSON responses
 * filtered through the gateway (re-serialised, chunked, unchanged, too
 * large), then a full GC. Prints one JSON line: what the client received,
 * and how much heap and ArrayBuffer memory the process holds after the GC
 * compared with before the first request. A body, its decoded text or its
 * parsed value kept by anything after the response would show there.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApiGateway } from '../../../test-support/gateway.js';

const exposed = (globalThis as { gc?: () => void }).gc;
if (exposed === undefined) throw new Error('run with --expose-gc');
const gc = exposed;
const REQUESTS = Number(process.env.REQUESTS ?? 3);
const BODY_MB = Number(process.env.BODY_MB ?? 8);

const record = {
  type: 'object',
  properties: { id: { type: 'integer' }, name: { type: 'string' }, note: { type: 'string' } },
};
const json = { 'application/json': { schema: { type: 'array', items: record } } };
const ok = { responses: { '200': { description: 'ok', content: json } } };
const DOCUMENT = {
  openapi: '3.1.0',
  info: { title: 'large', version: '1' },
  paths: { '/projected': { get: ok }, '/chunked': { get: ok }, '/exact': { get: ok }, '/small': { get: ok } },
};

/** About BODY_MB of records; with `secret`, each has a property the document does not declare. */
function records(secret: boolean): Buffer {
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < BODY_MB * 1048576; i++) {
    const r = JSON.stringify({
      id: i,
      name: `customer ${i}`,
      note: 'n'.repeat(40),
      ...(secret ? { password_hash: `scrypt$${i}` } : {}),
    });
    parts.push(r);
    length += r.length + 1;
  }
  return Buffer.from(`[${parts.join(',')}]`);
}
const withSecret = records(true);
const exact = records(false);

const upstream = createServer((req, res) => {
  req.resume();
  if (req.url === '/chunked') {
    res.writeHead(200, { 'content-type': 'application/json' });
    for (let i = 0; i < withSecret.length; i += 65536) res.write(withSecret.subarray(i, i + 65536));
    res.end();
    return;
  }
  const body = req.url === '/exact' ? exact : withSecret;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));

const dir = mkdtempSync(join(tmpdir(), 'portcullis-large-response-'));
writeFileSync(join(dir, 'openapi.json'), JSON.stringify(DOCUMENT));
const route = (path: string, maxBytes: string) => ({
  path,
  methods: ['GET'],
  responses: { max_bytes: maxBytes } as never,
});
const gw = await startApiGateway({
  upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
  document: join(dir, 'openapi.json'),
  routes: [
    route('/projected', `${BODY_MB * 2}mb`),
    route('/chunked', `${BODY_MB * 2}mb`),
    route('/exact', `${BODY_MB * 2}mb`),
    // Smaller than the body: collected up to the limit, then refused.
    route('/small', `${Math.floor(BODY_MB / 2)}mb`),
  ],
  logLevel: 'error',
});

interface Received {
  status: number;
  bytes: number;
  records?: number;
  secrets?: number;
}

/** Reads the whole response, keeps only what the test checks. */
function get(path: string): Promise<Received> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: gw.port, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const out: Received = { status: res.statusCode ?? 0, bytes: body.length };
        if (out.status === 200) {
          const value = JSON.parse(body.toString()) as Record<string, unknown>[];
          out.records = value.length;
          out.secrets = value.filter((r) => 'password_hash' in r).length;
        }
        resolve(out);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const held = () => {
  gc();
  gc();
  const u = process.memoryUsage();
  return { heapUsed: u.heapUsed, arrayBuffers: u.arrayBuffers };
};

const before = held();
const received: Record<string, Received[]> = {};
for (const path of ['/projected', '/chunked', '/exact', '/small']) {
  received[path] = [];
  for (let i = 0; i < REQUESTS; i++) received[path]!.push(await get(path));
}
const after = held();
await gw.close();
upstream.closeAllConnections();
upstream.close();
rmSync(dir, { recursive: true, force: true });
process.stdout.write(
  `${JSON.stringify({
    bodyBytes: withSecret.length,
    exactBytes: exact.length,
    expectedRecords: (JSON.parse(withSecret.toString()) as unknown[]).length,
    received,
    retained: {
      heapUsed: after.heapUsed - before.heapUsed,
      arrayBuffers: after.arrayBuffers - before.arrayBuffers,
    },
  })}\n`,
);
