/**
 * What each regex of the rule set costs libddwaf per byte, as the engine runs it (word boundaries
 * rewritten, SPLIT rules as their alternatives: `plannedRules`), over the values of the bundled
 * ordinary corpora and of the attack corpora. Each regex runs alone in an instance of its own,
 * over every value; the cost of an instance whose regex matches nothing is taken off.
 *
 *   npm run bench:regex                # paranoia level 4 (every rule); pin it: taskset -c 1 npm run bench:regex
 *   npm run bench:regex -- --pl 1 --top 20
 *
 * Most regexes cost a few ns a byte at most. One that costs tens has outgrown the 512 KB libddwaf
 * gives each regex (RE2's `max_mem`), and RE2 searches with its slow simulation instead of its
 * automaton: run its alternatives apart (`engine.ts`, SPLIT), or find what makes its automaton
 * large (`boundaries.ts`, on signs beyond ASCII). Those above `--flag` ns (default 5) are marked.
 */
import appsec from '@datadog/native-appsec';
import { emptyInputs, plannedRules } from '../../src/stages/inspect/engine.js';
import { collectJson } from '../../src/stages/inspect/index.js';
import { readCorpus } from '../../src/stages/inspect/test-support/corpus.js';

const out = (line: string): boolean => process.stdout.write(`${line}\n`);

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  const value = at === -1 ? fallback : Number(process.argv[at + 1]);
  if (!Number.isFinite(value)) throw new Error(`${name} wants a number`);
  return value;
}
const PL = option('--pl', 4);
const TOP = option('--top', 30);
const FLAG = option('--flag', 5);

/** The string values of corpus files (a JSON line's leaves, as the inspect stage collects them). */
function values(files: readonly string[]): string[] {
  const inputs = emptyInputs();
  for (const f of files) for (const v of readCorpus(f)) collectJson(v, ['body'], inputs);
  // libddwaf reads at most 4096 bytes of a string.
  return inputs.args.map((leaf) => leaf.text).filter((s) => Buffer.byteLength(s) <= 4096);
}
const SETS: [string, string[]][] = [
  [
    'ordinary',
    values([
      'benign.jsonl',
      'benign-extended.jsonl',
      'benign-traffic.jsonl',
      'benign-bodies.jsonl',
      'beyond-ascii.txt',
      'holdout/benign-api.jsonl',
      'holdout/benign-3.jsonl',
      'holdout/benign-4.jsonl',
      'holdout/benign-5.jsonl',
      'holdout/benign-6.jsonl',
    ]),
  ],
  [
    'attacks',
    values([
      'sqli.txt',
      'xss.txt',
      'cmdi.txt',
      'traversal.txt',
      'crs4/rce.txt',
      'crs4/sqli.txt',
      'crs4/xss.txt',
    ]),
  ],
];

interface Waf {
  createContext(): { run(data: unknown, timeout: number): unknown; dispose(): void };
  dispose(): void;
}

function instance(regex: string, options: unknown): Waf {
  const rule = {
    id: 'r',
    name: 'r',
    tags: { type: 'r', category: 'r' },
    conditions: [{ operator: 'match_regex', parameters: { inputs: [{ address: 'v' }], regex, options } }],
  };
  return new appsec.DDWAF({ version: '2.1', rules: [rule] } as never, 'bench') as unknown as Waf;
}

/** CPU ns per byte of a run of `waf` over `texts` (in lists of 200: libddwaf reads 256 items of a list). */
function nsPerByte(waf: Waf, texts: readonly string[]): number {
  const lists: string[][] = [];
  for (let i = 0; i < texts.length; i += 200) lists.push(texts.slice(i, i + 200));
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
  const run = () => {
    for (const list of lists) {
      const context = waf.createContext();
      context.run({ persistent: { v: list } }, 1e9);
      context.dispose();
    }
  };
  run();
  let best = Number.POSITIVE_INFINITY;
  for (let k = 0; k < 3; k++) {
    const start = process.cpuUsage();
    run();
    const used = process.cpuUsage(start);
    best = Math.min(best, used.user + used.system);
  }
  return (best * 1000) / bytes;
}

const regexes = new Map<string, { rule: string; options: unknown }>();
for (const rule of plannedRules(PL))
  for (const c of rule.conditions as {
    operator: string;
    parameters: { regex?: string; options?: unknown };
  }[])
    if (c.operator === 'match_regex' && c.parameters.regex !== undefined && !regexes.has(c.parameters.regex))
      regexes.set(c.parameters.regex, { rule: rule.id, options: c.parameters.options });

const empty = instance('\\x00never\\x00', {});
const baseline = SETS.map(([, texts]) => nsPerByte(empty, texts));
empty.dispose();
for (const [i, [name, texts]] of SETS.entries())
  process.stderr.write(
    `${name}: ${texts.length} values, ${texts.reduce((n, t) => n + Buffer.byteLength(t), 0)} bytes, baseline ${baseline[i]?.toFixed(1)} ns a byte\n`,
  );

const rows: { rule: string; length: number; costs: number[] }[] = [];
for (const [regex, { rule, options }] of regexes) {
  const waf = instance(regex, options);
  rows.push({
    rule,
    length: regex.length,
    costs: SETS.map(([, texts], i) => nsPerByte(waf, texts) - (baseline[i] ?? 0)),
  });
  waf.dispose();
}
rows.sort((a, b) => Math.max(...b.costs) - Math.max(...a.costs));

out(`| rule (as run) | regex length | ${SETS.map(([n]) => `${n} ns/byte`).join(' | ')} | |`);
out(`| --- | --- | ${SETS.map(() => '---').join(' | ')} | --- |`);
for (const { rule, length, costs } of rows.slice(0, TOP))
  out(
    `| ${rule} | ${length} | ${costs.map((c) => c.toFixed(1)).join(' | ')} | ${Math.max(...costs) > FLAG ? 'over' : ''} |`,
  );
out(
  `${rows.length} regexes at PL${PL}; ${rows.filter((r) => Math.max(...r.costs) > FLAG).length} over ${FLAG} ns a byte`,
);
