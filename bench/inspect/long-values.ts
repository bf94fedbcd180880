/**
 * Inspection cost of one long text value (a JSON body's field) at paranoia level 1: prose on one
 * line, prose in lines, and markdown, at several sizes, each value new. Prints the median CPU
 * time of nine inspections, the budget a route's `inspection.timeout` gives a request of that
 * text (`--timeout`, default the routes' default 10 ms; `budgetFor`), and how many ran past it.
 *
 *   node --import tsx bench/inspect/long-values.ts [--timeout 10]
 */
import { emptyInputs, inspect, warmUp } from '../../src/stages/inspect/engine.js';
import { budgetFor } from '../../src/stages/inspect/index.js';

const out = (line: string): boolean => process.stdout.write(`${line}\n`);

const flag = process.argv.indexOf('--timeout');
const timeoutMs = flag === -1 ? 10 : Number.parseFloat(process.argv[flag + 1] ?? '');
if (!(timeoutMs > 0)) throw new Error('--timeout wants a number of ms, such as 10');

const SENTENCE = 'The quick brown fox jumps over the lazy dog, and the dog sleeps on. ';
const MARKDOWN =
  '## Title\n\nSome *text* with `code` and a [link](https://example.com/x).\n\n- item one\n- item two\n';
const KINDS: [string, (n: number, size: number) => string][] = [
  ['prose, one line', (n, size) => `${n} ${SENTENCE.repeat(Math.ceil(size / SENTENCE.length))}`],
  ['prose, in lines', (n, size) => `${n} ${`${SENTENCE}\n`.repeat(Math.ceil(size / SENTENCE.length))}`],
  ['markdown', (n, size) => `${n} ${MARKDOWN.repeat(Math.ceil(size / MARKDOWN.length))}`],
];
const SIZES = [2_000, 5_000, 10_000, 20_000, 50_000];
const ROUNDS = 9;

warmUp([1]);
out(`| value | characters | median CPU | budget (timeout ${timeoutMs} ms) | past it |`);
out('| --- | --- | --- | --- | --- |');
let n = 0;
for (const [name, make] of KINDS) {
  for (const size of SIZES) {
    const costs: number[] = [];
    let over = 0;
    let budget = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const inputs = emptyInputs();
      // Each value new (its first characters differ), so the inert-value cache is no help.
      inputs.args.push({ location: ['body', 'text'], text: make(++n, size).slice(0, size) });
      budget = budgetFor(inputs, timeoutMs * 1000);
      // A budget far above the cost, so each inspection runs to its end and its cost is measured.
      const result = inspect(inputs, { paranoiaLevel: 1, budgetMicros: 10_000_000 });
      costs.push(result.cpuMicros);
      if (result.cpuMicros > budget) over++;
    }
    costs.sort((a, b) => a - b);
    const median = costs[Math.floor(ROUNDS / 2)] as number;
    const ms = (micros: number) => `${(micros / 1000).toFixed(1)} ms`;
    out(`| ${name} | ${size} | ${ms(median)} | ${ms(budget)} | ${over} of ${ROUNDS} |`);
  }
}
