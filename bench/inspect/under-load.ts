/**
 * Does a busy machine turn ordinary requests into 403s? Sends every value of
 * the benign corpora through a real gateway (an inspected route at paranoia
 * level 1 with the default 10 ms budget, block mode), as a JSON body and as
 * a query parameter, first on an idle machine and then with LOAD busy-loop
 * processes per core competing for the CPU (4 by default: 8 on 2 cores), and
 * reports every request refused because its inspection ran out of budget
 * (the gateway's log says so) and every answer that differs between the two
 * runs. The budget is CPU time of the inspecting thread, so the expected
 * result is none: load makes inspection slower, not dearer.
 *
 *   node --import tsx bench/inspect/under-load.ts            # LOAD=4 ROUNDS=3 by default
 *
 * Prints figures; asserts nothing (the suite never times anything).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { readCorpus } from '../../src/stages/inspect/test-support/corpus.js';
import { startTestGateway, startUpstream } from '../../src/test-support/gateway.js';

const out = (line: string): boolean => process.stdout.write(`${line}\n`);

const LOAD = Number(process.env.LOAD ?? 4);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const CONCURRENCY = 8;
const FILES = [
  'benign.jsonl',
  'benign-extended.jsonl',
  'benign-bodies.jsonl',
  'benign-traffic.jsonl',
  'holdout/benign.jsonl',
  'holdout/benign-api.jsonl',
];

interface Probe {
  name: string;
  init: RequestInit;
  path: string;
}

function probes(): Probe[] {
  const out: Probe[] = [];
  for (const file of FILES) {
    readCorpus(file).forEach((value, i) => {
      const name = `${file}#${i + 1}`;
      out.push({
        name: `${name} body`,
        path: '/api/items',
        init: {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(typeof value === 'string' ? { value } : value),
        },
      });
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      if (text.length <= 2000) {
        out.push({ name: `${name} query`, path: `/api/items?q=${encodeURIComponent(text)}`, init: {} });
      }
    });
  }
  return out;
}

async function send(base: string, list: Probe[]): Promise<Map<string, number>> {
  const statuses = new Map<string, number>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < list.length) {
      const p = list[next++] as Probe;
      const res = await fetch(`${base}${p.path}`, p.init);
      await res.arrayBuffer();
      statuses.set(p.name, res.status);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return statuses;
}

function busyLoops(n: number): ChildProcess[] {
  return Array.from({ length: n }, () =>
    spawn(process.execPath, ['-e', 'for (;;) Math.sqrt(Math.random());'], { stdio: 'ignore' }),
  );
}

async function main(): Promise<void> {
  const upstream = await startUpstream();
  const gw = await startTestGateway({
    log: { level: 'warn' },
    upstreams: { api: { url: upstream.url } },
    routes: [
      {
        name: 'items',
        path: '/api/items',
        methods: ['GET', 'POST'],
        upstream: 'api',
        auth: 'none',
        body_limit: '1mb',
        inspection: { paranoia_level: 1 },
      },
    ],
  });
  const list = probes();
  const budgetRefusals = (): number =>
    gw.logs.filter((l) => /inspection incomplete/.test(String(l.msg))).length;
  try {
    const idle = await send(gw.url, list);
    const idleRefused = [...idle.values()].filter((s) => s === 403).length;
    const idleBudget = budgetRefusals();
    const loops = busyLoops(LOAD * availableParallelism());
    let changed = 0;
    let budget = 0;
    try {
      await new Promise((r) => setTimeout(r, 2_000));
      for (let round = 1; round <= ROUNDS; round++) {
        const before = budgetRefusals();
        const t0 = performance.now();
        const loaded = await send(gw.url, list);
        const seconds = (performance.now() - t0) / 1000;
        const diff = [...loaded].filter(([name, status]) => idle.get(name) !== status);
        changed += diff.length;
        budget += budgetRefusals() - before;
        out(
          `round ${round}: ${list.length} requests in ${seconds.toFixed(1)} s, load average ${loadavg()[0]?.toFixed(1)}, ` +
            `refused for the budget ${budgetRefusals() - before}, answers that differ from the idle run ${diff.length}` +
            (diff.length > 0 ? `: ${diff.slice(0, 5).map(([n, s]) => `${n} ${idle.get(n)}→${s}`)}` : ''),
        );
      }
    } finally {
      for (const p of loops) p.kill('SIGKILL');
    }
    out(
      `\n${list.length} benign requests (${FILES.join(', ')}; each value as a JSON body and, up to 2000 characters, ` +
        `as a query parameter), PL1, 10 ms CPU budget, block mode.\n` +
        `idle: ${idleRefused} refused by detection (false positives), ${idleBudget} for the budget.\n` +
        `${LOAD}× ${availableParallelism()} cores of busy loops, ${ROUNDS} rounds: ${budget} refused for the budget, ` +
        `${changed} answers differ from the idle run.`,
    );
  } finally {
    await gw.close();
    await upstream.close();
  }
}

await main();
