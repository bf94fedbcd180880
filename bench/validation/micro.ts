/**
 * Micro-benchmark of the API-description features: how long a generated
 * document of 1,000 (and more) operations takes to load, and what the
 * validate, inspect and filter stages cost per request, each alone, on
 * contexts without a socket. Prints; nothing is asserted.
 *
 * Run: node --import tsx bench/validation/micro.ts
 *      BENCH_N=20000 BENCH_OPERATIONS=1000,5000 node --import tsx bench/validation/micro.ts
 */
import { performance } from 'node:perf_hooks';
import type { UpstreamResponse } from '../../src/contracts/stage.js';
import { loadApiDocument } from '../../src/openapi/document.js';
import { type ApiRoute, toRouteSettings } from '../../src/openapi/route-settings.js';
import { documentFolder, largeDocument } from '../../src/openapi/test-support/fixtures.js';
import { filterStage } from '../../src/stages/filter/index.js';
import { inspectStage } from '../../src/stages/inspect/index.js';
import { validateStage } from '../../src/stages/validate/index.js';
import { captureLogger, type FakeRequest, fakeContext, fakeDeps } from '../../src/test-support/stage.js';

const N = Number(process.env.BENCH_N ?? 10_000);
const SIZES = (process.env.BENCH_OPERATIONS ?? '1000').split(',').map(Number);
const out = (line: string) => process.stdout.write(`${line}\n`);

async function time(label: string, n: number, fn: () => unknown): Promise<void> {
  for (let i = 0; i < Math.min(n, 1000); i++) await fn(); // warm-up: JIT and caches
  const start = performance.now();
  for (let i = 0; i < n; i++) await fn();
  const us = ((performance.now() - start) * 1000) / n;
  out(`${label.padEnd(58)} ${us.toFixed(2).padStart(9)} µs/request`);
}

const folder = documentFolder();
out('# Loading a generated OpenAPI 3.1 document (bundle, check, compile every validator)');
let routes: ApiRoute[] = [];
for (const size of SIZES) {
  const file = folder.write(`large-${size}.json`, largeDocument(size));
  // The first load in a process also compiles the official OpenAPI schemas; both are shown.
  for (const pass of ['first in process', 'again']) {
    const rss = process.memoryUsage().rss;
    const start = performance.now();
    const doc = await loadApiDocument(file);
    const ms = performance.now() - start;
    out(
      `${`${size} operations (${pass})`.padEnd(58)} ${ms.toFixed(0).padStart(9)} ms  ` +
        `(+${((process.memoryUsage().rss - rss) / 1e6).toFixed(0)} MB rss)`,
    );
    if (size === SIZES[0]) routes = toRouteSettings(doc, { upstream: 'bench' }, { authMethods: [] });
  }
}
folder.remove();

const deps = fakeDeps(captureLogger('silent').logger);
const route = (name: string) => routes.find((r) => r.name === name)!;
const list = route('listResource7');
const create = route('createResource7');
const resource = {
  name: 'Widget deluxe',
  quantity: 12,
  price: 19.99,
  status: 'active',
  tags: ['blue', 'large', 'sale'],
  contact: 'sales@example.com',
};
const body = JSON.stringify(resource);
const JSON_TYPE = { 'content-type': 'application/json' };
const requests: [string, ApiRoute, FakeRequest][] = [
  ['GET with two query parameters', list, { method: 'GET', query: 'limit=20&status=active' }],
  [`POST with a ${body.length}-byte JSON body`, create, { method: 'POST', headers: JSON_TYPE, body }],
  [
    'POST with a 16 KB JSON body (200 lines, notes)',
    create,
    {
      method: 'POST',
      headers: JSON_TYPE,
      body: JSON.stringify({
        ...resource,
        notes: 'Deliver to the loading dock; call ahead. '.repeat(200),
        lines: Array.from({ length: 200 }, (_, i) => ({ sku: `SKU-${i}`, qty: 1 + (i % 7) })),
      }),
    },
  ],
];

out(`\n# Per request (N=${N}), each stage alone`);
for (const [label, r, request] of requests) {
  const stage = validateStage.create(r, deps)!;
  await time(`validate: ${label}`, N, () => stage.handle(fakeContext(r, request)));
}
for (const [label, r, request] of requests) {
  const stage = inspectStage.create(r, deps)!;
  const headers = {
    'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36',
    accept: 'application/json',
    ...request.headers,
  };
  await time(`inspect: ${label} (+2 headers)`, N, () =>
    stage.handle(fakeContext(r, { ...request, headers })),
  );
}

const get = route('getResource7');
const filter = filterStage.create(get, deps)!.response!;
const upstream = (value: unknown): UpstreamResponse => ({
  status: 200,
  headers: ['content-type', 'application/json'],
  body: Buffer.from(JSON.stringify(value)),
});
const clean = { id: 'r_1', ...resource, created_at: '2024-05-01T10:00:00Z' };
const leaky = { ...clean, secret: 'writeOnly', internal_cost: 3.2, audit: { by: 'ops' } };
await time('filter: a response that matches its schema', N, () =>
  filter.filter(fakeContext(get, {}), upstream(clean)),
);
await time('filter: a response with 3 undeclared properties', N, () =>
  filter.filter(fakeContext(get, {}), upstream(leaky)),
);
