/**
 * Heap bytes allocated per inspection of a request of recurring values (the common case: the same
 * headers and path on every request), as the inspect stage runs it (`detect`), and the CPU time it
 * takes. Each request's strings are fresh copies, as the HTTP parser makes them. Bytes allocated
 * are the heap's growth over the run plus what each garbage collection in it freed (v8.GCProfiler
 * reports the collections, with the heap before and after each).
 *
 *   node --expose-gc --import tsx bench/inspect/alloc.ts
 */
import v8 from 'node:v8';
import { emptyInputs, type Inputs } from '../../src/stages/inspect/engine.js';
import { collectJson, detect } from '../../src/stages/inspect/index.js';
import { DEFAULT_SETTINGS } from '../../src/stages/inspect/test-support/corpus.js';

const N = Number(process.env.ROUNDS ?? 20_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc (see the header)');

/** A copy of `s` that shares nothing with it (a new string, its hash not yet computed). */
const fresh = (s: string): string => Buffer.from(s, 'utf8').toString('utf8');

const HEADERS: [string, string][] = [
  [
    'user-agent',
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
  ],
  ['accept', '*/*'],
  ['accept-encoding', 'gzip, deflate, br'],
  ['accept-language', 'en-GB,en;q=0.9'],
];

function request(kind: 'get' | 'query' | 'json'): Inputs {
  const inputs = emptyInputs();
  const path = kind === 'get' ? '/bench' : '/products/search';
  const query = kind === 'query' ? 'q=red%20running%20shoes&sort=price_asc&page=3' : '';
  inputs.filename.push({ location: ['path'], text: fresh(path) });
  inputs.basename.push({ location: ['path'], text: fresh(path.slice(path.lastIndexOf('/') + 1)) });
  inputs.uri.push({ location: ['uri'], text: fresh(query === '' ? path : `${path}?${query}`) });
  if (query !== '') {
    inputs.query_string.push({ location: ['query'], text: fresh(query) });
    for (const [k, v] of [
      ['q', 'red running shoes'],
      ['sort', 'price_asc'],
      ['page', '3'],
    ] as const) {
      inputs.args_names.push({ location: ['query', k], text: fresh(k) });
      inputs.args.push({ location: ['query', k], text: fresh(v) });
    }
  }
  for (const [k, v] of HEADERS) {
    inputs.headers_names.push({ location: ['header', k], text: fresh(k) });
    inputs.headers.push({ location: ['header', k], text: fresh(v) });
  }
  if (kind === 'json') {
    const items = Array.from({ length: 18 }, (_, i) => ({
      sku: `SKU-${1000 + i}`,
      name: `Product number ${i} with a longer descriptive name`,
      quantity: i + 1,
      price: { amount: 19.99 + i, currency: 'EUR' },
    }));
    collectJson(
      JSON.parse(fresh(JSON.stringify({ items, comment: 'Leave at the door.' }))),
      ['body'],
      inputs,
    );
  }
  return inputs;
}

const settings = DEFAULT_SETTINGS;

process.stdout.write('| request | bytes per request | CPU per request |\n| --- | --- | --- |\n');
for (const kind of ['get', 'query', 'json'] as const) {
  for (let i = 0; i < 2000; i++) detect(request(kind), settings);
  const pool = Array.from({ length: N }, () => request(kind));
  gc();
  const profiler = new v8.GCProfiler();
  const heap = v8.getHeapStatistics().used_heap_size;
  profiler.start();
  const cpu = process.cpuUsage();
  for (const inputs of pool) {
    if (detect(inputs, settings).detections.length > 0) throw new Error(`${kind}: a detection`);
  }
  const used = process.cpuUsage(cpu);
  let allocated = v8.getHeapStatistics().used_heap_size - heap;
  for (const c of profiler.stop()?.statistics ?? [])
    allocated += c.beforeGC.heapStatistics.usedHeapSize - c.afterGC.heapStatistics.usedHeapSize;
  const bytes = `${Math.round(allocated / N)} B`;
  const micros = ((used.user + used.system) / N).toFixed(1);
  process.stdout.write(`| recurring ${kind} | ${bytes} | ${micros} µs |\n`);
}
