/**
 * OpenTelemetry trace cost per request, in CPU time of the gateway process:
 * the trace sink fed synthetic request events (an allowed request with an
 * upstream call: a SERVER and a CLIENT span), as the event bus feeds it.
 *
 *   off        no sink subscribed (what `telemetry.traces.enabled: false` costs: nothing)
 *   build      spans built and queued, exported to an exporter that drops them
 *   otlp       the real path: batch processor, OTLP/HTTP JSON serialisation and
 *              the HTTP exports, to a collector stand-in in another process
 *   sampled 0  sample: 0 (the sampling decision only)
 *
 *   node --import tsx bench/otel/cost.ts      # pin to one core: taskset -c 0 …
 */
import { spawn } from 'node:child_process';
import type { RequestEvent } from '../../src/events/types.js';
import { createLogger } from '../../src/log.js';
import { compileTelemetry, type TracesSettings } from '../../src/telemetry/schema.js';
import { createTraceSink } from '../../src/telemetry/traces.js';

const out = (line: string): boolean => process.stdout.write(`${line}\n`);
const EVENTS = Number(process.env.EVENTS ?? 50_000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const logger = createLogger({ level: 'warn' });

const hex = (n: number) => n.toString(16).padStart(8, '0');
function event(i: number): RequestEvent {
  return {
    type: 'request',
    time: new Date().toISOString(),
    requestId: `req_${hex(i)}-0000-4000-8000-000000000000`,
    traceId: `${hex(i * 2654435761)}${hex(i)}${hex(~i >>> 0)}${hex((i * 40503) >>> 0)}`,
    clientIp: '198.51.100.7',
    method: 'GET',
    path: `/orders/${i}`,
    route: 'GET /orders/{id}',
    principal: { kind: 'api_key', id: `key_${hex(i % 100)}`, tenant: 'acme' },
    decision: 'allow',
    reason: 'ok',
    detail: undefined,
    status: 200,
    latencyMs: 1.8,
    upstreamMs: 1.2,
    stage: undefined,
    shadowDenials: [],
    objectId: String(i),
  };
}

/** A collector stand-in in its own process, so its CPU is not counted. */
async function collector(): Promise<{ url: string; stop(): void }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const s=require('node:http').createServer((q,r)=>{q.resume();q.on('end',()=>{r.writeHead(200,{'content-type':'application/json'});r.end('{}')})});
       s.listen(0,'127.0.0.1',()=>console.log(s.address().port))`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<string>((resolve) =>
    child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())),
  );
  return { url: `http://127.0.0.1:${port}/v1/traces`, stop: () => child.kill() };
}

const dropAll = {
  export: (_spans: unknown[], done: (r: { code: number }) => void) => done({ code: 0 }),
  shutdown: () => Promise.resolve(),
  forceFlush: () => Promise.resolve(),
};

async function measure(name: string, run: (events: RequestEvent[]) => Promise<void>): Promise<number> {
  const events = Array.from({ length: EVENTS }, (_, i) => event(i));
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < ROUNDS; r++) {
    const before = process.cpuUsage();
    await run(events);
    const used = process.cpuUsage(before);
    best = Math.min(best, (used.user + used.system) / EVENTS);
  }
  out(`${name.padEnd(12)} ${best.toFixed(2).padStart(7)} µs CPU per request`);
  return best;
}

const base = (over: Partial<TracesSettings>): TracesSettings => ({
  ...compileTelemetry({ traces: { enabled: true } } as never).settings.traces,
  principalSalt: 'bench',
  ...over,
});

/**
 * Feeds the events in slices of one export batch (512 spans), flushing after
 * each: a steady stream, as requests arrive, rather than one burst that
 * would overrun the exporter's concurrent-export limit and drop spans.
 */
async function feed(sink: ReturnType<typeof createTraceSink>, events: RequestEvent[]): Promise<void> {
  for (let i = 0; i < events.length; i += 256) {
    for (const e of events.slice(i, i + 256)) sink.emit(e);
    await sink.flush(30_000);
  }
}

out(`node ${process.version}, ${EVENTS} events, best of ${ROUNDS} rounds`);
await measure('off', async (events) => {
  for (const _ of events);
});
await measure('sampled 0', async (events) => {
  const sink = createTraceSink(base({ sample: 0 }), logger, { exporter: dropAll as never });
  await feed(sink, events);
  await sink.close();
});
await measure('build', async (events) => {
  const sink = createTraceSink(base({ maxQueue: 100_000 }), logger, { exporter: dropAll as never });
  await feed(sink, events);
  await sink.close();
});
const c = await collector();
try {
  await measure('otlp', async (events) => {
    const sink = createTraceSink(base({ endpoint: c.url, maxQueue: 100_000 }), logger, {
      scheduledDelayMs: 200,
    });
    await feed(sink, events);
    await sink.close(30_000);
  });
} finally {
  c.stop();
}
