/**
 * Runs the OWASP CRS regression tests (go-ftw YAML, 3.3.x or 4.x format)
 * through a real Portcullis gateway and reports, per rule file, how many
 * positive tests were blocked and how many negative tests passed.
 *
 *   node --import tsx bench/crs-regression.ts <tests dir> [--rules <CRS rules dir>] [--pl 1] [--verbose]
 *
 * `<tests dir>` holds `REQUEST-9xx-*` folders of YAML files (the CRS
 * repository's `tests/regression/tests`). `--rules` is the `rules/` folder of
 * the same CRS version: it gives each rule's paranoia level, so tests of
 * rules above the gateway's level are counted apart (as the CRS does: a PL2
 * rule is not expected to fire at PL1). The test files are not part of the
 * repository: fetch them (`git archive v4.x tests/regression/tests rules`).
 *
 * Each test's request is sent as written (method, target, headers, body;
 * `encoded_request` as its bytes) on its own connection to a gateway whose
 * one route, `/*` with every method and no authentication, runs the inspect
 * stage at the given paranoia level in front of an upstream that answers
 * 200. Blocked: the gateway answered anything but the upstream's 200 (a 403
 * from inspection, or an earlier refusal of the framing or encoding, which
 * the issue counts as detected). A positive test is one expecting its rule
 * to fire; a negative one expecting it not to.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startTestGateway, startUpstream } from '../src/test-support/gateway.js';

const out = (line: string): boolean => process.stdout.write(`${line}\n`);
const err = (line: string): boolean => process.stderr.write(`${line}\n`);

interface Stage {
  input?: {
    method?: string;
    uri?: string;
    version?: string;
    headers?: Record<string, string> | { name: string; value: string }[];
    data?: string | string[];
    encoded_request?: string;
    raw_request?: string;
    autocomplete_headers?: boolean;
  };
  output?: {
    log?: { expect_ids?: number[]; no_expect_ids?: number[] };
    log_contains?: string;
    no_log_contains?: string;
    status?: number | number[];
    expect_error?: boolean;
  };
  // 3.3.x nests input and output under `stage`.
  stage?: Stage;
}

interface TestCase {
  test_title?: string;
  test_id?: number;
  desc?: string;
  stages: Stage[];
}

interface Outcome {
  file: string;
  rule: string;
  title: string;
  kind: 'positive' | 'negative' | 'unclear';
  pl: number;
  blocked: boolean;
  status: number;
  /** The rules that fired, from the gateway's log. */
  rules: string[];
}

const args = process.argv.slice(2);
const dir = args.find(
  (a) =>
    !a.startsWith('--') && args[args.indexOf(a) - 1] !== '--rules' && args[args.indexOf(a) - 1] !== '--pl',
);
const rulesDir = args.includes('--rules') ? args[args.indexOf('--rules') + 1] : undefined;
const pl = args.includes('--pl') ? Number(args[args.indexOf('--pl') + 1]) : 1;
const verbose = args.includes('--verbose');
if (dir === undefined) {
  err('usage: crs-regression.ts <tests dir> [--rules <CRS rules dir>] [--pl 1] [--verbose]');
  process.exit(2);
}

/** Paranoia level of each rule id, from the CRS rule files. */
function paranoiaLevels(rules: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (rules === undefined) return out;
  for (const f of readdirSync(rules)) {
    if (!f.endsWith('.conf')) continue;
    const text = readFileSync(join(rules, f), 'utf8');
    for (const m of text.matchAll(/id:(\d{6})[\s\S]*?(?=id:\d{6}|$)/g)) {
      const level = /paranoia-level\/(\d)/.exec(m[0])?.[1];
      if (m[1] !== undefined && level !== undefined && !out.has(m[1])) out.set(m[1], Number(level));
    }
  }
  return out;
}

function ruleIn(text: string | undefined): string | undefined {
  return text === undefined ? undefined : /id\s*"?(\d{6})/.exec(text)?.[1];
}

function kindOf(stage: Stage, rule: string): Outcome['kind'] {
  const o = stage.output ?? {};
  if (o.log?.expect_ids?.map(String).includes(rule) || ruleIn(o.log_contains) === rule) return 'positive';
  if (o.log?.no_expect_ids?.map(String).includes(rule) || ruleIn(o.no_log_contains) === rule)
    return 'negative';
  if (o.log?.expect_ids !== undefined || o.log_contains !== undefined) return 'positive';
  if (o.log?.no_expect_ids !== undefined || o.no_log_contains !== undefined) return 'negative';
  return 'unclear';
}

/** The request's bytes as the test writes them (go-ftw adds Content-Length and Connection when missing). */
function requestBytes(stage: Stage, host: string): Buffer {
  const input = stage.input ?? {};
  if (input.encoded_request !== undefined) return Buffer.from(input.encoded_request, 'base64');
  if (input.raw_request !== undefined) return Buffer.from(input.raw_request.replace(/\r?\n/g, '\r\n'));
  const headers: [string, string][] = Array.isArray(input.headers)
    ? input.headers.map((h) => [h.name, h.value])
    : Object.entries(input.headers ?? {}).map(([k, v]) => [k, String(v)]);
  const data = Array.isArray(input.data) ? input.data.join('\r\n') : (input.data ?? '');
  const body = Buffer.from(data, 'latin1');
  const has = (n: string) => headers.some(([k]) => k.toLowerCase() === n);
  const auto = input.autocomplete_headers !== false;
  const out: [string, string][] = headers.map(([k, v]) => (k.toLowerCase() === 'host' ? [k, host] : [k, v]));
  if (!has('host') && auto) out.unshift(['Host', host]);
  if (auto && !has('content-length') && !has('transfer-encoding') && body.length > 0)
    out.push(['Content-Length', String(body.length)]);
  if (auto && !has('connection')) out.push(['Connection', 'close']);
  const head = `${input.method ?? 'GET'} ${input.uri ?? '/'} ${input.version ?? 'HTTP/1.1'}\r\n${out
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** Sends raw bytes and returns the status code of the answer (0: no answer). */
function send(port: number, bytes: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    const done = () => {
      socket.destroy();
      resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? 0));
    };
    socket.setTimeout(5000, done);
    socket.on('data', (c) => {
      answer += c.toString('latin1');
      if (/^HTTP\/1\.[01] \d{3}/.test(answer)) done();
    });
    socket.on('error', done);
    socket.on('end', done);
    socket.write(bytes);
  });
}

function yamlFiles(root: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(root).sort()) {
    const p = join(root, entry);
    if (statSync(p).isDirectory()) {
      if (/^REQUEST-9(2|3|4)\d-/.test(entry)) out.push(...yamlFiles(p));
      else if (!/^(REQUEST|RESPONSE)-/.test(entry)) out.push(...yamlFiles(p));
    } else if (entry.endsWith('.yaml')) out.push(p);
  }
  return out;
}

async function main(): Promise<void> {
  const levels = paranoiaLevels(rulesDir);
  const upstream = await startUpstream();
  const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
  const inspection = { paranoia_level: pl, timeout: '100ms' };
  const gw = await startTestGateway({
    log: { level: 'warn' },
    upstreams: { api: { url: upstream.url } },
    routes: [
      { name: 'root', path: '/', methods, upstream: 'api', auth: 'none', body_limit: '1mb', inspection },
      { name: 'all', path: '/*', methods, upstream: 'api', auth: 'none', body_limit: '1mb', inspection },
    ],
  });
  const outcomes: Outcome[] = [];
  try {
    for (const path of yamlFiles(dir as string)) {
      const doc = (parse(readFileSync(path, 'utf8')) ?? {}) as { rule_id?: number; tests?: TestCase[] };
      const folder = path.split('/').at(-2) ?? '';
      const rule = String(doc.rule_id ?? /(\d{6})/.exec(path)?.[1] ?? '');
      for (const t of doc.tests ?? []) {
        const stages = t.stages.map((s) => s.stage ?? s);
        const title = t.test_title ?? `${rule}-${t.test_id}`;
        let blocked = false;
        let status = 0;
        let kind: Outcome['kind'] = 'unclear';
        const logsBefore = gw.logs.length;
        for (const stage of stages) {
          const k = kindOf(stage, rule);
          if (k !== 'unclear') kind = k;
          status = await send(gw.port, requestBytes(stage, `127.0.0.1:${gw.port}`));
          if (status !== 200) blocked = true;
        }
        const rules = gw.logs
          .slice(logsBefore)
          .flatMap((l) => String(l.detections ?? '').match(/\S+(?=;|$)/g) ?? []);
        outcomes.push({ file: folder, rule, title, kind, pl: levels.get(rule) ?? 1, blocked, status, rules });
      }
    }
  } finally {
    await gw.close();
    await upstream.close();
  }
  report(outcomes);
}

function pct(a: number, b: number): string {
  return b === 0 ? '-' : `${((100 * a) / b).toFixed(1)} %`;
}

function report(outcomes: Outcome[]): void {
  const files = [...new Set(outcomes.map((o) => o.file))].sort();
  out(`\nParanoia level ${pl}: positive tests of rules at PL ≤ ${pl}; negative tests of every level.\n`);
  out('| rule file | positive blocked | % | negative passed | % | positive tests of higher PL blocked |');
  out('| --- | --- | --- | --- | --- | --- |');
  let tp = 0;
  let tpn = 0;
  let tn = 0;
  let tnn = 0;
  for (const f of files) {
    const mine = outcomes.filter((o) => o.file === f);
    const pos = mine.filter((o) => o.kind === 'positive' && o.pl <= pl);
    const neg = mine.filter((o) => o.kind === 'negative');
    const high = mine.filter((o) => o.kind === 'positive' && o.pl > pl);
    const pb = pos.filter((o) => o.blocked).length;
    const np = neg.filter((o) => !o.blocked).length;
    tp += pb;
    tpn += pos.length;
    tn += np;
    tnn += neg.length;
    out(
      `| ${f} | ${pb}/${pos.length} | ${pct(pb, pos.length)} | ${np}/${neg.length} | ${pct(np, neg.length)} | ${high.filter((o) => o.blocked).length}/${high.length} |`,
    );
  }
  out(`| **all** | ${tp}/${tpn} | ${pct(tp, tpn)} | ${tn}/${tnn} | ${pct(tn, tnn)} | |`);
  const unclear = outcomes.filter((o) => o.kind === 'unclear');
  if (unclear.length > 0)
    out(`\nNot applicable (no log expectation to check): ${unclear.map((o) => o.title).join(', ')}`);
  if (verbose) {
    out('\nMissed positives:');
    for (const o of outcomes.filter((x) => x.kind === 'positive' && x.pl <= pl && !x.blocked))
      out(`  ${o.title}`);
    out('\nBlocked negatives:');
    for (const o of outcomes.filter((x) => x.kind === 'negative' && x.blocked))
      out(`  ${o.title} ${o.status} ${[...new Set(o.rules)].join(' ')}`);
  }
}

await main();
