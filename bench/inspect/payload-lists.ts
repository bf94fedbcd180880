/**
 * Detection and false-positive rates of the real inspection (the engine and
 * the scoring, as the inspect stage runs them) on lists of values that were
 * not tuned on: public attack lists and ordinary API values.
 *
 *   node --import tsx bench/inspect/payload-lists.ts <file or dir>... [--pl 1]
 *     [--list tune] [--list-family sqli] [--json <file>]
 *
 * Input: JSON-lines files of `{ "family": "sqli", "source": "x.txt", "value": "..." }`
 * (`family`: sqli, xss, cmdi, traversal, ... for attacks; `benign` for ordinary
 * values), or text files of one value a line whose family is the file's name
 * (`sqli.txt`; `benign.txt`). A directory stands for its `.jsonl` and `.txt`
 * files. The data is not part of the repository.
 *
 * Each value is inspected as the one string field of a JSON body
 * (`{"value": ...}`), as the corpus tests do (test-support/corpus.ts), with
 * every category enabled, threshold 5, at the given paranoia level. Attack:
 * detected when the body is rejected (by any rule; the rule's own category
 * is counted apart). Benign: a false positive when rejected.
 *
 * Split: each value falls in the tune half or the held-out half by a hash of
 * its text (SHA-256, first byte even: tune), fixed before any result is
 * seen. Rules are tuned on the tune half only; `--list tune` prints its
 * misses and false positives with the rules that fired (`--list heldout`
 * exists to be run once, at the end).
 *
 * Fragments: attack lists hold entries that are not attacks on their own
 * (a lone quote, `1\``, a bare event-handler or file name). An attack value
 * with no run of two letters (and no `..` or `%2e`), or that is one word or
 * dotted name (`whoami`, `onload`, `wp-login.php`), is counted as a fragment
 * and reported apart.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_SETTINGS, rulesFor } from '../../src/stages/inspect/test-support/corpus.js';

const out = (line: string): boolean => process.stdout.write(`${line}\n`);

interface Item {
  family: string;
  source: string;
  value: string;
}

const { values: opts, positionals: paths } = parseArgs({
  allowPositionals: true,
  options: {
    pl: { type: 'string', default: '1' },
    list: { type: 'string' },
    'list-family': { type: 'string' },
    json: { type: 'string' },
  },
});
const pl = Number(opts.pl);
const list = opts.list;
const listFamily = opts['list-family'];
const jsonOut = opts.json;
if (paths.length === 0 || (list !== undefined && !['tune', 'heldout'].includes(list))) {
  process.stderr.write(
    'usage: payload-lists.ts <file or dir>... [--pl 1] [--list tune|heldout] [--list-family f] [--json file]\n',
  );
  process.exit(2);
}

function readItems(path: string): Item[] {
  if (statSync(path).isDirectory()) {
    return readdirSync(path)
      .filter((f) => f.endsWith('.jsonl') || f.endsWith('.txt'))
      .sort()
      .flatMap((f) => readItems(join(path, f)));
  }
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '');
  if (path.endsWith('.jsonl')) return lines.map((l) => JSON.parse(l) as Item);
  const family = basename(path).replace(/\.txt$/, '');
  return lines.map((value) => ({ family, source: basename(path), value }));
}

const heldOut = (value: string): boolean => (createHash('sha256').update(value).digest()[0] ?? 0) % 2 === 1;
const fragment = (value: string): boolean =>
  (!/[a-z]{2}/i.test(value) && !/\.\.|%2e/i.test(value)) || /^\.?[\w-]+(?:\.[\w-]+)*$/.test(value.trim());

const settings = { ...DEFAULT_SETTINGS, paranoiaLevel: pl };
const items = paths.flatMap(readItems);
const results = items.map((item) => ({
  ...item,
  heldOut: heldOut(item.value),
  fragment: item.family !== 'benign' && fragment(item.value),
  rules: rulesFor({ value: item.value }, settings),
}));
if (jsonOut !== undefined) writeFileSync(jsonOut, `${JSON.stringify(results, null, 1)}\n`);

const pct = (a: number, b: number): string => (b === 0 ? '-' : `${((100 * a) / b).toFixed(1)} %`);
const cell = (hit: number, n: number): string => `${hit}/${n} (${pct(hit, n)})`;
type Result = (typeof results)[number];
const halves = (rs: Result[]): [Result[], Result[]] => [
  rs.filter((r) => !r.heldOut),
  rs.filter((r) => r.heldOut),
];

out(`\nParanoia level ${pl}; each value as a JSON body field.\n`);
out(
  '| family | tune: detected | held out: detected | tune: by own category | fragments (tune + held out) detected |',
);
out('| --- | --- | --- | --- | --- |');
const families = [...new Set(results.map((r) => r.family))].filter((f) => f !== 'benign').sort();
for (const family of families) {
  const mine = results.filter((r) => r.family === family);
  const [tune, held] = halves(mine.filter((r) => !r.fragment));
  const frags = mine.filter((r) => r.fragment);
  const hit = (rs: Result[]) => rs.filter((r) => r.rules.length > 0).length;
  const own = tune.filter((r) => r.rules.some((x) => x.startsWith(`${family}:`))).length;
  out(
    `| ${family} | ${cell(hit(tune), tune.length)} | ${cell(hit(held), held.length)} | ${cell(own, tune.length)} | ${cell(hit(frags), frags.length)} |`,
  );
}
const benign = results.filter((r) => r.family === 'benign');
if (benign.length > 0) {
  out('\n| ordinary values | tune: false positives | held out: false positives |');
  out('| --- | --- | --- |');
  const sources = [...new Set(benign.map((r) => r.source))].sort();
  for (const source of [...sources, 'all']) {
    const [tune, held] = halves(benign.filter((r) => source === 'all' || r.source === source));
    const fp = (rs: Result[]) => rs.filter((r) => r.rules.length > 0).length;
    out(`| ${source} | ${cell(fp(tune), tune.length)} | ${cell(fp(held), held.length)} |`);
  }
}

if (list !== undefined) {
  out(
    `\nWrong side, ${list} half (misses: attacks not detected, fragments apart; false positives: with rules):`,
  );
  for (const r of results) {
    if (r.heldOut !== (list === 'heldout')) continue;
    if (listFamily !== undefined && r.family !== listFamily) continue;
    const wrong = r.family === 'benign' ? r.rules.length > 0 : r.rules.length === 0 && !r.fragment;
    if (wrong) out(`${r.family}\t${r.source}\t${r.rules.join(',') || '-'}\t${JSON.stringify(r.value)}`);
  }
}
