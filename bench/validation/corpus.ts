/**
 * Detection and false-positive rates of the injection rules on the corpora
 * (`src/stages/inspect/corpus/`), with every miss and every false positive
 * listed, and the held-out corpora (written after the rules, not tuned on)
 * reported apart. Prints; the targets are asserted by
 * `src/stages/inspect/inspect.test.ts`.
 *
 * Run: node --import tsx bench/validation/corpus.ts
 */
import {
  ATTACK_FILES,
  detectionRate,
  falsePositiveRate,
  readCorpus,
  rulesFor,
} from '../../src/stages/inspect/test-support/corpus.js';

const out = (line: string) => process.stdout.write(`${line}\n`);
const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(2)}%`;

out('# Attack corpora: detected by any rule (by a rule of their own category)');
for (const category of Object.keys(ATTACK_FILES) as (keyof typeof ATTACK_FILES)[]) {
  const r = detectionRate(category);
  out(
    `${category.padEnd(10)} ${`${r.hits}/${r.total}`.padStart(8)}  ${pct(r.hits, r.total).padStart(7)}  (${pct(r.own, r.total)})`,
  );
  for (const w of r.wrong) out(`  missed: ${JSON.stringify(w.payload)}`);
}
const fp = falsePositiveRate();
out('\n# Ordinary traffic that looks suspicious: flagged');
out(`${'benign'.padEnd(10)} ${`${fp.hits}/${fp.total}`.padStart(8)}  ${pct(fp.hits, fp.total)}`);
for (const w of fp.wrong) out(`  flagged: ${JSON.stringify(w.payload)}  (${w.rules.join(', ')})`);

out('\n# Held-out corpora (not tuned on)');
for (const file of [
  'holdout/sqli.txt',
  'holdout/xss.txt',
  'holdout/benign.jsonl',
  'holdout/benign-api.jsonl',
]) {
  const payloads = readCorpus(file);
  const flagged = payloads.filter((p) => rulesFor(p).length > 0);
  out(
    `${file.padEnd(22)} ${`${flagged.length}/${payloads.length}`.padStart(8)} flagged  ${pct(flagged.length, payloads.length)}`,
  );
  if (file.includes('benign'))
    for (const p of flagged) out(`  flagged: ${JSON.stringify(p)}  (${rulesFor(p).join(', ')})`);
}
