// Turns run.sh's per-scenario JSON lines into the table, the ratios and results/latest.json.
// Exits 1 if a scenario failed or saw errors or non-2xx answers, or one named in BENCH_SCENARIOS was skipped.
// Usage: node bench/summarize.mjs RESULTS_JSONL OUT_JSON
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';

const [inPath, outPath] = process.argv.slice(2);
const scenarios = readFileSync(inPath, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line));

for (const s of scenarios) {
  if (s.status !== 'ok') continue;
  const problems = [];
  if (s.errors > 0) problems.push(`${s.errors} socket errors`);
  if (s.non2xx > 0) problems.push(`${s.non2xx} responses >= 400`);
  if (s.warmup.non2xx > 0)
    problems.push(`warm-up saw ${s.warmup.non2xx} non-2xx (first: ${s.warmup.first_bad_status})`);
  s.flagged = problems.length > 0;
  if (s.flagged) s.problems = problems;
}

const label = {
  portcullis: 'portcullis pass-through',
  direct: 'direct nginx',
  'bare-proxy': 'bare node:http proxy',
  'bare-undici': 'bare undici proxy',
};
// Flagged runs measured something other than the happy path, so they get no ratio.
const byName = new Map(scenarios.filter((s) => s.status === 'ok' && !s.flagged).map((s) => [s.name, s]));
const ratios = [];
const compare = (a, b) => {
  const x = byName.get(a);
  const y = byName.get(b);
  if (!x || !y) return;
  ratios.push({
    scenario: a,
    baseline: b,
    // Requests per second relative to the baseline: 1.30x means 30% more requests on the same core.
    throughput: x.rps / y.rps,
    p50: x.p50_ms / y.p50_ms,
    p99: x.p99_ms / y.p99_ms,
    // CPU per request relative to the baseline (no figure for nginx, whose workers are other processes).
    cpu:
      typeof x.cpu_us_per_request === 'number' && typeof y.cpu_us_per_request === 'number'
        ? x.cpu_us_per_request / y.cpu_us_per_request
        : undefined,
  });
};
for (const s of scenarios) {
  if (!s.name.startsWith('portcullis')) continue;
  compare(s.name, 'bare-proxy');
  compare(s.name, 'bare-undici');
  compare(s.name, 'direct');
  if (s.name !== 'portcullis') compare(s.name, 'portcullis');
}
compare('bare-proxy', 'direct');

const out = [];
const row = (cells) =>
  out.push(cells.map((c, i) => String(c).padEnd([24, 11, 9, 9, 8, 8, 12][i] ?? 0)).join(' '));
row(['scenario', 'req/s', 'p50 ms', 'p99 ms', 'non2xx', 'errors', 'CPU µs/req']);
for (const s of scenarios) {
  if (s.status !== 'ok') {
    out.push(`${s.name.padEnd(24)} ${s.status.toUpperCase()}: ${s.reason}`);
    continue;
  }
  row([
    s.name,
    s.rps.toFixed(0),
    s.p50_ms.toFixed(2),
    s.p99_ms.toFixed(2),
    s.non2xx,
    s.errors,
    typeof s.cpu_us_per_request === 'number' ? s.cpu_us_per_request.toFixed(1) : '-',
  ]);
  if (s.flagged) out.push(`${''.padEnd(24)} ^ FLAGGED: ${s.problems.join(', ')}`);
}
out.push('');
for (const r of ratios) {
  out.push(
    `${label[r.scenario] ?? r.scenario} vs ${label[r.baseline]}: ${r.throughput.toFixed(2)}x ` +
      `throughput (latency p50 ${r.p50.toFixed(2)}x, p99 ${r.p99.toFixed(2)}x` +
      `${r.cpu === undefined ? '' : `, CPU per request ${r.cpu.toFixed(2)}x`})`,
  );
}
process.stdout.write(`${out.join('\n')}\n`);

const env = process.env;
writeFileSync(
  outPath,
  `${JSON.stringify(
    {
      generated_at: new Date().toISOString(),
      settings: {
        duration: env.BENCH_DURATION,
        warmup: env.BENCH_WARMUP,
        connections: Number(env.BENCH_CONNECTIONS),
        threads: 1,
        pinned: env.BENCH_PINNED === '1',
      },
      machine: {
        cpu: os.cpus()[0]?.model,
        cores: os.cpus().length,
        kernel: os.release(),
        node: process.version,
        nginx: env.BENCH_NGINX_VERSION,
        wrk: env.BENCH_WRK_VERSION,
      },
      scenarios,
      ratios,
    },
    null,
    2,
  )}\n`,
);

const explicit = Boolean(env.BENCH_SCENARIOS?.trim());
const failed = scenarios.some(
  (s) => s.flagged || s.status === 'failed' || (s.status === 'skipped' && explicit),
);
process.exit(failed ? 1 : 0);
