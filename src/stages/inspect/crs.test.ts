import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import appsec from '@datadog/native-appsec';
import type { InspectionSettings } from '../../openapi/settings.js';
import crs from './crs-rules.json' with { type: 'json' };
import { CRS_VERSION, emptyInputs, type Inputs, inspect, ruleCount, ruleInfo } from './engine.js';
import { detect } from './index.js';
import own from './rules.json' with { type: 'json' };
import {
  ATTACK_FILES,
  CRS4_FILES,
  DEFAULT_SETTINGS,
  pathRejected,
  random,
  readCorpus,
  rulesFor,
} from './test-support/corpus.js';
import { preTransform, showsSqlSign } from './transforms.js';

const settings = (over: Partial<InspectionSettings> = {}): InspectionSettings => ({
  ...DEFAULT_SETTINGS,
  ...over,
});

function arg(text: string, name = 'q'): Inputs {
  const inputs = emptyInputs();
  inputs.args.push({ location: ['query', name], text });
  return inputs;
}

describe('the compiled CRS rule file', () => {
  it('is CRS 3.3.4 and loads whole into libddwaf', () => {
    assert.equal(CRS_VERSION, 'crs-3.3.4');
    assert.equal(crs.rules.length, 143);
    const waf = new appsec.DDWAF(crs, 'crs-test');
    const d = waf.diagnostics.rules as { loaded: string[]; failed: string[] };
    waf.dispose();
    assert.deepEqual(d.failed, []);
    assert.equal(d.loaded.length, 143);
  });

  it('runs more rules at each paranoia level', () => {
    const counts = [1, 2, 3, 4].map(ruleCount);
    for (let i = 1; i < 4; i++) assert.ok((counts[i] ?? 0) > (counts[i - 1] ?? 0), JSON.stringify(counts));
    assert.equal(counts[3], crs.rules.length + own.rules.length);
  });

  it('reads SQL function calls the same way in pc-sqli-122 as in the compiled 942140 and 942190', () => {
    // CALL_ARGUMENTS (scripts/compile-crs.ts) is written out in rules.json too: a change to one
    // that the other does not follow would let a GraphQL field pass one rule and not the other.
    const regexOf = (rules: { id: string; conditions: unknown[] }[], id: string): string => {
      const rule = rules.find((r) => r.id === id);
      assert.ok(rule !== undefined, id);
      return (rule.conditions[0] as { parameters: { regex: string } }).parameters.regex;
    };
    const ownCall = regexOf(own.rules, 'pc-sqli-122');
    const tail = ownCall.slice(ownCall.lastIndexOf('\\(') + 2);
    assert.ok(tail.startsWith('(?:\\s*'), tail);
    for (const id of ['942140', '942190']) assert.ok(regexOf(crs.rules, id).includes(`\\(${tail}`), id);
  });

  it('lists every left-out rule with a reason', () => {
    const skipped = JSON.parse(readFileSync(new URL('crs-skipped.json', import.meta.url), 'utf8')) as {
      skipped: { id: string; reason: string }[];
    };
    assert.ok(skipped.skipped.length > 0);
    for (const s of skipped.skipped) assert.ok(s.reason.length > 10, s.id);
  });
});

describe('CRS semantics', () => {
  it('applies paranoia levels per route', () => {
    // 942360 (concatenated SQL keywords) is PL2 in Portcullis's adjustments.
    const payload = '"Select" button does not work';
    const pl1 = detect(arg(payload), settings());
    assert.equal(pl1.reject, false);
    assert.ok(!pl1.detections.some((d) => d.rule === '942360'));
    const pl2 = detect(arg(payload), settings({ paranoiaLevel: 2 }));
    assert.ok(pl2.detections.some((d) => d.rule === '942360'));
    assert.equal(pl2.reject, true);
  });

  it('scores matches: a warning alone passes, with a critical match it is rejected', () => {
    assert.equal(ruleInfo('930110')?.score, 3);
    const alone = detect(arg('..'), settings());
    assert.deepEqual(
      alone.detections.map((d) => d.rule),
      ['930110'],
    );
    assert.equal(alone.reject, false);
    assert.equal(detect(arg('..'), settings({ anomalyThreshold: 3 })).reject, true);
    assert.equal(detect(arg('../../../etc/passwd'), settings()).reject, true);
  });

  it('excludes by rule id, by tag and by location', () => {
    const attack = arg("1' OR '1'='1");
    assert.equal(detect(attack, settings()).reject, true);
    const sqliRules = new Set(detect(attack, settings()).detections.map((d) => d.rule));
    const byRule = settings({ exclusions: [{ segments: [], categories: undefined, rules: [...sqliRules] }] });
    assert.equal(detect(attack, byRule).reject, false);
    const byTag = settings({ exclusions: [{ segments: [], categories: undefined, tags: ['sqli'] }] });
    assert.equal(detect(attack, byTag).reject, false);
    const elsewhere = settings({
      exclusions: [{ segments: ['query', 'other'], categories: undefined, tags: ['attack-sqli', 'sqli'] }],
    });
    assert.equal(detect(attack, elsewhere).reject, true);
    const here = settings({
      exclusions: [{ segments: ['query', 'q'], categories: undefined, tags: ['attack-sqli', 'sqli'] }],
    });
    assert.equal(detect(attack, here).reject, false);
  });

  it('does removeWhitespace and replaceComments as ModSecurity does', () => {
    assert.equal(preTransform('removeWhitespace')(' a \t b\u00a0c\n'), 'abc');
    assert.equal(preTransform('replaceComments')('UNION/**/SELECT/* x'), 'UNION SELECT ');
    assert.equal(preTransform('urlDecodeUni')('%u0027%27+%zz'), "'' %zz");
  });

  it("hands libinjection's SQL check only values with a sign of SQL, and those whole", () => {
    const signed = preTransform('sqlSigned');
    for (const text of ['while (foo) is bar.', 'Oregon, Portland (sandbox)', 'Müller (GmbH)', 'order_id'])
      assert.equal(signed(text), text === 'order_id' ? text : '', text);
    for (const text of [
      "O'Brien",
      'red or blue',
      '1or1',
      '1 ORDER BY 3',
      'name=b',
      'x -- y',
      'a/*b',
      '%27',
      '&#39;',
      'o\0r',
      'id;',
      'UNION(SELECT(1))',
      // Not formulas: a condition joined, a quote, a comment, a word that is not the calculator's.
      '1 and 1=1',
      'sqrt(4)=2 or 1',
      "1' or '1'='1",
      'x=1#',
      '5--3',
      'floor(rand(0)*2)',
      'exp(~(select 1))',
    ])
      assert.equal(signed(text), text, text);
  });

  it('finds a sign of SQL exactly where the regex of signs it is written from does', () => {
    // The specification `showsSqlSign` is written out from (see there), with JavaScript's legacy
    // case-insensitive matching: only ASCII letters are [a-z] (`ſ` and the Kelvin sign are not).
    const regex =
      /['"`;=<>|&^~*#\\\0]|%(?:[0-9a-f]{2}|u[0-9a-f]{4})|--|\/\*|(?<![a-z])(?:or|and|xor|div|mod|union|except|intersect|select|order|group|having|limit|procedure|into|like|rlike|regexp|between|sounds|waitfor|exec|execute|declare|sleep|benchmark)(?![a-z])/i;
    const texts: string[] = [];
    for (const file of [
      ...Object.values(ATTACK_FILES),
      'benign.jsonl',
      'benign-traffic.jsonl',
      'beyond-ascii.txt',
    ])
      for (const v of readCorpus(file)) texts.push(typeof v === 'string' ? v : JSON.stringify(v));
    // Random texts of the pieces the two read differently if either is wrong: word parts and
    // whole words in both cases, letters around them, signs, `-`, `/` and `*`, and letters beyond
    // ASCII (which end a run of letters); and texts of `%`, `u` and hex digits and others alone.
    const alphabets = [
      "or OR and Union sElEcT benchmark into sleep exec a Z x r d _ 1 - / * ' \0 é ſ \u212a İ ǅ".split(' '),
      '% %u u U 0 2 7 f F a g x'.split(' '),
    ];
    const next = random(12);
    for (const pieces of alphabets) {
      for (let i = 0; i < 25_000; i++) {
        let text = '';
        const length = 1 + Math.floor(next() * 8);
        for (let k = 0; k < length; k++) {
          text += pieces[Math.floor(next() * pieces.length)];
          if (next() < 0.2) text += ' ';
        }
        texts.push(text);
      }
    }
    let signed = 0;
    for (const text of texts) {
      const expected = regex.test(text);
      assert.equal(showsSqlSign(text), expected, JSON.stringify(text));
      if (expected) signed++;
    }
    // Both answers occur often: the comparison is not of one answer.
    assert.ok(signed > texts.length / 5 && signed < (texts.length * 4) / 5, `${signed} of ${texts.length}`);
  });

  it('hands libinjection no formula: numbers, one-letter variables, calculator functions and signs', () => {
    // libinjection reads `sqrt(16) + 2*3 = 10` as a call followed by an operator (`f(1)o`).
    const signed = preTransform('sqlSigned');
    for (const text of [
      'sqrt(16) + 2*3 = 10',
      'sqrt(2)^2 = 2',
      'abs(-3) = 3',
      'f(x) = sin(x)/x',
      'x² + y² ≤ r²',
      '2^10 > 1000',
    ])
      assert.equal(signed(text), '', text);
  });

  it('removes XML declarations before libinjection, and nothing else of the value', () => {
    const strip = preTransform('removeXmlDeclarations');
    assert.equal(strip('<?xml version="1.0"?><a>1</a>'), ' <a>1</a>');
    assert.equal(strip('<?xml-stylesheet type="text/xsl" href="s.xsl"?>'), ' ');
    // Internet Explorer's forms end with ">" alone; a PHP block is not an XML declaration.
    assert.equal(strip('<?xml:namespace prefix="t">'), '<?xml:namespace prefix="t">');
    assert.equal(strip('<?php echo 1 ?>'), '<?php echo 1 ?>');
    assert.equal(strip('<?xml a="<script>"?>'), '<?xml a="<script>"?>');
  });

  it('fails closed when the CPU-time budget is spent, and reports the CPU time', () => {
    const big = arg('ordinary words '.repeat(20_000));
    const result = inspect(big, { paranoiaLevel: 1, budgetMicros: 1 });
    assert.equal(result.timedOut, true);
    const ok = inspect(arg('hello'), { paranoiaLevel: 1, budgetMicros: 1_000_000 });
    assert.equal(ok.timedOut, false);
    assert.ok(ok.cpuMicros >= 0);
  });
});

describe('the CRS 4 families 3.3.4 misses, at paranoia level 1', () => {
  for (const [family, file] of Object.entries(CRS4_FILES)) {
    it(`detects at least 95% of the ${family} payloads`, () => {
      const payloads = readCorpus(file);
      const missed = payloads.filter((p) => rulesFor(p).length === 0);
      assert.ok((payloads.length - missed.length) / payloads.length >= 0.95, JSON.stringify(missed));
    });
  }

  it('detects at least 95% of the paths to operating-system files sent as argument values', () => {
    const values = readCorpus('crs4/lfi-args.txt');
    const missed = values.filter((v) => rulesFor(v).length === 0);
    assert.ok((values.length - missed.length) / values.length >= 0.95, JSON.stringify(missed));
  });

  it('detects at least 95% of the restricted-file paths', () => {
    const paths = readCorpus('crs4/lfi-paths.txt') as string[];
    const missed = paths.filter((p) => !pathRejected(p));
    assert.ok((paths.length - missed.length) / paths.length >= 0.95, JSON.stringify(missed));
  });
});

/**
 * Ordinary traffic written after the rules for the false-positive pass on
 * issue 12 (`corpus/benign-traffic.md`). 5 of its 150 values are flagged:
 * code in support tickets that is shell syntax (`rm -rf node_modules && npm
 * ci` in backticks, which a shell runs as a command substitution; `ls -la`;
 * a curl line), a `<script>` tag named in prose, and PHP function names with
 * empty parentheses ("system() or exec()"), a form the CRS tests call an
 * attack (`exec /*x*\/ ()`). ("; sed do eiusmod" in Latin prose was the
 * sixth, until pc-cmdi-320 wanted a sed script after "sed".) Asserted as a
 * ceiling, so a rule that flags more of it fails here.
 *
 * `corpus/holdout/benign-api.jsonl` was written after the rules too, for the
 * second false-positive pass, and not tuned on: 3 of its 243 values were
 * flagged before that pass and after it (a crontab line naming
 * /usr/local/bin, `curl -X POST` in backticks, a `.sql.gz` backup path).
 *
 * `corpus/holdout/benign-3.jsonl` was written after the libinjection gate
 * (`sqlSigned`), by someone who read neither the rules nor the other
 * corpora: 2 of its 250 values were flagged, with the rules of the commit
 * before the gate as with those after it (a path to nginx's access log, a
 * glob with a brace list, `src/**\/*.{ts,tsx}`); 1 since pc-cmdi-323 reads
 * a brace list after "." or "*" as a file-name pattern (so this set is no
 * longer untouched).
 *
 * `corpus/holdout/benign-4.jsonl` was written after the rules, before the
 * word-boundary change (`boundaries.ts`), by someone who read neither the
 * rules nor the other corpora (prose in fifteen European languages and
 * twelve other scripts, support tickets with SQL and script words,
 * developer talk, structured API values, recipes, legal text), and measured
 * before that change and after it: 1 of its 300 values was flagged both
 * times, "sqrt(2)^2 = 2" (libinjection reads a function call and an
 * operator), and none since formulas are no sign of SQL (`sqlSigned`) and
 * pc-sqli-122 reads a calculator function of numbers as no SQL call (so this
 * set is no longer untouched).
 *
 * `corpus/holdout/benign-5.jsonl` was written the same way (shop values,
 * names and addresses of many countries, support messages using SQL and
 * script words, developer-platform values, markdown, twelve scripts,
 * formulas, passwords and poems), while the rules were changed for the
 * classes found by probing (GraphQL queries, quoted phrases starting with
 * "Select", regexes, route files, generated passwords), and measured once
 * those were done: 3 of its 300 values were flagged with the rules of the
 * day before, 1 with those changes (an Accept header stored as a value:
 * 941130 read "xhtml" in application/xhtml+xml), and none once 941130 was
 * narrowed for it (so this set too is no longer untouched).
 *
 * `corpus/holdout/benign-6.jsonl` was written the same way, after those
 * changes, across twelve API domains (healthcare, finance, travel, logistics,
 * HR, education, gaming, telemetry, developer tools, content, shop filters,
 * sixteen languages), and measured once, never tuned on: 1 of its 300
 * values is flagged, pseudo-code that reads as a cmd.exe IF comparison
 * ("if n % 2 == 0 then even else odd", 932140), as it was the day before.
 *
 * `corpus/holdout/benign-7.jsonl` was written the same way, after the
 * regexes run in pieces and the prose punctuation joined LETTERS, with the
 * punctuation people type (curly quotes and apostrophes, dashes, `…`, `« »`,
 * `¿ ¡`, CJK and Arabic marks) in some 25 languages, names, product,
 * developer, finance and travel values, markdown, emoji and URLs: none of
 * its 300 values is flagged, with the rules of the day before or since.
 *
 * `corpus/holdout/benign-8.jsonl` was written the same way, in ten kinds of
 * value (support chat, developer-platform values, searches, names,
 * addresses, reviews and posts, data values, short technical texts,
 * education and science, form free text), and measured once before the
 * day's rule changes: 5 of its 300 values were flagged, four of them
 * formulas (`f(x) = sin(x)/x`, `sqrt(16) + 2*3 = 10`: pc-sqli-122 read a
 * calculator function as a SQL call, libinjection a call and an operator).
 * That class was fixed (`sqlSigned`'s formulas, pc-sqli-122's calculator
 * functions), so this set is no longer untouched: 1 is flagged since, an
 * ssh command naming `~/.ssh/id_ed25519` (a private key, pc-lfi-401).
 *
 * `corpus/holdout/benign-9.jsonl` was written the same way, after that fix,
 * across twelve API domains (payments, travel, healthcare, HR, rentals,
 * gaming, telemetry, legal forms, education with maths, SQL and code
 * answers, publishing, logistics, twenty languages), and measured once,
 * never tuned on: 1 of its 300 values is flagged, a C condition
 * (`if (a > b && b > c) { return a; }`: libinjection, and 942230's
 * conditional).
 *
 * `corpus/holdout/benign-10.jsonl` was written the same way, the next day's
 * last, in twelve further domains (logistics, real estate, legal, job
 * applications, IoT, music, sports, lab notebooks, gaming, government forms,
 * developer-tool fields, twelve languages), and measured once, after that
 * day's changes to what inspection costs (which fire the same rules): 1 of
 * its 300 values is flagged, a cover letter naming Northwind (the SQL Server
 * sample database, which 942140 names, as the CRS does at PL1).
 */
describe('ordinary traffic written after the rules', () => {
  // [file, its number of values, the most it may flag, what the test says of it]
  const ceilings: [string, number, number, string][] = [
    ['benign-traffic.jsonl', 150, 5, 'flags at most 5 of its 150 values, each for a reason listed above'],
    ['holdout/benign-api.jsonl', 243, 3, 'flags at most 3 of the 243 held-out API values'],
    ['holdout/benign-3.jsonl', 250, 1, 'flags at most 1 of the 250 values of the third held-out set'],
    ['holdout/benign-4.jsonl', 300, 0, 'flags none of the 300 values of the fourth held-out set'],
    ['holdout/benign-5.jsonl', 300, 0, 'flags none of the 300 values of the fifth held-out set'],
    ['holdout/benign-6.jsonl', 300, 1, 'flags at most 1 of the 300 values of the sixth held-out set'],
    ['holdout/benign-7.jsonl', 300, 0, 'flags none of the 300 values of the seventh held-out set'],
    ['holdout/benign-8.jsonl', 300, 1, 'flags at most 1 of the 300 values of the eighth held-out set'],
    ['holdout/benign-9.jsonl', 300, 1, 'flags at most 1 of the 300 values of the ninth held-out set'],
    ['holdout/benign-10.jsonl', 300, 1, 'flags at most 1 of the 300 values of the tenth held-out set'],
  ];
  for (const [file, count, most, title] of ceilings) {
    it(title, () => {
      const values = readCorpus(file);
      assert.equal(values.length, count);
      const flagged = values.filter((v) => rulesFor(v).length > 0);
      assert.ok(flagged.length <= most, JSON.stringify(flagged));
    });
  }
});

/**
 * The narrowings of the second false-positive pass (`scripts/compile-crs.ts`
 * ADJUSTED 930100; pc-cmdi-320 in `rules.json`): the ordinary value passes,
 * and the attacks next to it are still rejected by the same rule.
 */
describe('the narrowed rules still catch their attacks', () => {
  const fired = (payload: string, rule: string) =>
    detect(arg(payload), settings()).detections.some((d) => d.rule === rule);

  it('930100: a "/../" after a short name passes, one that can climb out does not', () => {
    assert.equal(fired('https://example.com/a/b/../c', '930100'), false);
    assert.equal(detect(arg('docs/v2/../v3/intro.md'), settings()).reject, false);
    for (const attack of [
      '/../../etc/passwd',
      'images/../../../etc/passwd',
      'a/./../x',
      `${'A'.repeat(64)}/../x`,
      '%c0%2e%c0%2e/%c0%2e%c0%2e/x',
      'a/..%2f..%2fx',
      'a\\..\\..\\x',
    ])
      assert.ok(fired(attack, '930100'), attack);
  });

  /** The rule leaves each ordinary value alone (and nothing else refuses it) and fires on each attack. */
  const narrowedTo = (rule: string, ordinary: readonly string[], attacks: readonly string[]) => {
    for (const value of ordinary) {
      assert.equal(fired(value, rule), false, value);
      assert.equal(detect(arg(value), settings()).reject, false, value);
    }
    for (const attack of attacks) assert.ok(fired(attack, rule), attack);
  };

  it('941120: a base64 token that ends in "/on...=" passes, a handler cut off after a space or quote does not', () =>
    narrowedTo(
      '941120',
      [
        'VGhhbmtzLCBmb3IgYWxsIHlvdXIgd29yayBzaW5jZSB5ZWFycyBvbiBDUlMuIEh1bQo/onafe=',
        'WzI0IUqFXZ2pCQMdPYeKUcPDqDGxQ/m+ygtFH6JI/oNYdQVuuVYsLiCcdWsFbXc=',
        'q83Zc1onTapz=',
      ],
      ['<x onend=', '"onzoom=', '  onload= ', "'onmouseover='", '/onerror=alert(1)', '1onload=x'],
    ));

  it('pc-sqli-122: a calculator function of numbers and one-letter variables passes, one of a name, a call or a subquery does not', () =>
    narrowedTo(
      'pc-sqli-122',
      [
        'f(x) = sin(x)/x',
        'sqrt(16) + 2*3 = 10',
        'sqrt(2)^2 = 2',
        'lim x→0 sin(x)/x = 1',
        'pow(2, 10) = 1024',
        'ceil(x/2)',
      ],
      [
        'floor(rand(0)*2)',
        '1 and exp(~(select * from (select user())a))',
        "1' and floor(rand(0)*2)--",
        'log(price)',
        'sqrt(',
        'pow(@@version,1)',
        'ceiling (user())',
        'ascii(x)',
      ],
    ));

  it('pc-sqli-128: a quoted phrase that starts with "Union", "Select" or "Having" passes, a quote closed before a query does not', () =>
    narrowedTo(
      'pc-sqli-128',
      [
        'Meet me at "Union Station" at 5',
        "We took the 'Union Pacific' line",
        'Die "Union von Europa"',
        '"Select all" button does not work',
        "He said 'select the best one' and left",
        'query { search(text: "select a plan", type: ALL) { id } }',
        '"Having trouble?" she asked',
      ],
      [
        "' union select 1,2--",
        "'union distinct select 1",
        "' UNION ALL SELECT NULL--",
        '" union all(select 1)',
        "' select @@version--",
        "';select 1--",
        "'select name from users--",
        '"select * from users--',
        "' having 1=1--",
      ],
    ));

  it('pc-sqli-117: a quoted phrase followed by a dash of prose passes, a quote closed into a comment does not', () =>
    narrowedTo(
      'pc-sqli-117',
      ['My password reset link says "invalid token" -- help!', "He wrote 'done' -- finally"],
      [
        "admin'--",
        "admin' -- ",
        'admin"#',
        "1'/*",
        "x' --",
        "'create user name identified by 'pass123' --",
        `user'collate"\\utf8mb4_general_ci"--`,
      ],
    ));

  it('pc-sqli-116: a quoted word that starts with "or" or "and" passes, a quote closed before or, and, || does not', () =>
    narrowedTo(
      'pc-sqli-116',
      ["the 'orange' = color", "'android' = os", "'ortrue"],
      ["'or 1=1", "'or'1'='1", "') or ('a'='a", "'||1=1", '" and true'],
    ));

  it('941310: UTF-8 read as Latin-1 passes, the US-ASCII evasion with its end tag does not', () =>
    narrowedTo(
      '941310',
      ['de_matten & sitzbez\u00c3\u00bcge > fu\u00c3\u009fmatten_mt'],
      ['\u00bcscript\u00bealert(\u00a2XSS\u00a2)\u00bc/script\u00be', '<b>x</b\u00be'],
    ));

  it('pc-cmdi-323: regexes, route files, XPath and extension lists pass, a glob inside a name and a brace list of a command do not', () =>
    narrowedTo(
      'pc-cmdi-323',
      [
        '/[a-z]{1,5}/',
        '/[0-9]+/g',
        's/[0-9]+/N/g',
        'pages/blog/[slug].tsx',
        'app/[locale]/page.tsx',
        '/api/v1/users/[userId]',
        'files/[0-9]*.log',
        '/bookstore/book[1]/title',
        '/bookstore/book[@lang="en"]',
        'src/**/*.{ts,tsx}',
        'assets/logo.{png,svg}',
        // Generated passwords (the generator's alphabet holds every sign these branches read).
        '&2$853<B>(t(',
        'PWv:r^n$[B*9aG0;@~P]',
        ';oRy}-0tP/Zj[<Jn]i:.',
        'bfkFd(l(Y_Tv-G,]pL:A0@Qk~+89lz}f',
        '$.*k{GZo?uauYB!-5#4v',
      ],
      [
        'cat /etc/pas[s]wd',
        '/bi[n]/sh',
        '/usr/[a-z]in/bash',
        'cat /[e//]tc/[p//]asswd',
        'cat /etc/[!abc]asswd',
        '/???/c[a]t /e??/p?[s]swd',
        '{l,-lh}s',
        'c{a,oun}t',
        '{,ifconfig}',
        ';{cat,passwd}',
        '$[2+2]',
        '<(cat file)',
        '>(tee log)',
        '~+5',
        '~-',
        '!-1!-2',
        'while(!-0);',
      ],
    ));

  it('942140, 942190, pc-sqli-122: a GraphQL field with named arguments passes, a SQL function call does not', () => {
    const graphql = [
      '{ user(id: 1) { name email } }',
      'query GetUser($id: ID!) { user(id: $id) { name email } }',
      'query { database(name: "main") { tables } }',
      '{ user(login: "octocat") { repositories(last: 3) { nodes { name } } } }',
      'query { version(format : "long") }',
    ];
    narrowedTo('pc-sqli-122', graphql, [
      "1' and sleep(5)--",
      "' union select user(),2--",
      'char(65)',
      'concat(0x3a,version( ))',
      '1 and pg_sleep(1::int)',
      'user(@a:=1)',
    ]);
    for (const rule of ['942190', '942140'])
      for (const query of graphql) assert.equal(fired(query, rule), false, `${rule}: ${query}`);
    for (const attack of ["' union select user(),database()--", 'current_user( )', "schema('x')", 'user(id)'])
      assert.ok(fired(attack, '942190'), attack);
    for (const attack of ['database()', "' and schema(1)=1", 'db_name(0)'])
      assert.ok(fired(attack, '942140'), attack);
  });

  it('refuses at most 14 of 6,000 generated passwords (12, 20 and 32 characters of a password generator alphabet)', () => {
    // Login and sign-up requests carry passwords made of every sign a rule reads. Before the
    // pc-cmdi-323 narrowing 41 of these were refused; what is left is libinjection, a ";id"-like
    // tail, "%00", and "~-", "$()" or a glob glued to a name at random.
    const alphabet =
      'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#$%^&*()-_=+[]{};:,.<>/?~';
    const refused: string[] = [];
    for (const length of [12, 20, 32]) {
      const next = random(12);
      for (let i = 0; i < 2000; i++) {
        let password = '';
        for (let j = 0; j < length; j++) password += alphabet[Math.floor(next() * alphabet.length)];
        if (detect(arg(password), settings()).reject) refused.push(password);
      }
    }
    assert.ok(refused.length <= 14, `${refused.length} refused: ${refused.join(' ')}`);
  });

  it('pc-lfi-416: a URL to an IPv6 address is refused as one to an IPv4 address is, a host name with a port is not', () => {
    narrowedTo(
      'pc-lfi-416',
      [
        'http://db:5432/status',
        'https://cafe:8443/menu',
        'https://example.com/[draft]',
        'http://[not an address]',
      ],
      [
        'http://[::ffff:a9fe:a9fe]',
        'https://[2001:41d0:701:1100::29c8]/gecko.php',
        'http://[::]/',
        'ftp://[0:0:0:0:0:ffff:169.254.169.254]/x',
      ],
    );
    assert.ok(fired('http://169.254.169.254/latest', '931100'));
  });

  it('pc-lfi-415: a "/../" after a name in the path of the request target is still refused, in its query it is not', () => {
    const uri = (text: string): Inputs => {
      const inputs = emptyInputs();
      inputs.uri.push({ location: ['uri'], text });
      return inputs;
    };
    const fires = (text: string) =>
      detect(uri(text), settings()).detections.some((d) => d.rule === 'pc-lfi-415');
    for (const target of ['/public/../admin/users', '/a/..\\b', '/x/y/../../etc/passwd'])
      assert.ok(fires(target), target);
    for (const target of ['/search?next=https://example.com/a/b/../c', '/get/..', '/docs/v2/intro.md'])
      assert.equal(fires(target), false, target);
  });

  it('942100 and pc-sqli-100: prose with parentheses passes, SQL with a quote, an operator or a joining word does not', () => {
    const libinjection = ['942100', 'pc-sqli-100', 'pc-sqli-101', 'pc-sqli-102'];
    const anyFired = (payload: string) => libinjection.some((rule) => fired(payload, rule));
    for (const prose of [
      'while (foo) is bar.',
      'Left (WA, RR), following wood edge south for a mile to Pangfield Farm (564719).',
      'One quarter (24%) of people cheated on a partner', // a `%` that no decoding turns into a sign
    ]) {
      assert.equal(anyFired(prose), false, prose);
      assert.equal(detect(arg(prose), settings()).reject, false, prose);
    }
    // All but the last are rejected by libinjection alone (no other rule rejects them): a quote,
    // an operator, a comment, or only a word that joins a clause (`order`, `except select`, `or`).
    // The last shows its signs only once decoded: `%` is one.
    for (const attack of [
      '1 ORDER BY 3',
      'except \tselect.1,2',
      '1) or (1=1',
      "a'or'a",
      "admin')-- -",
      "'/**/OR/**/1=1--",
      '%27%20or%201%3D1--',
    ])
      assert.ok(anyFired(attack), attack);
  });

  it('pc-cmdi-320: "; sed" followed by a word of prose passes, by a sed script it does not', () => {
    assert.equal(detect(arg('consectetur adipiscing elit; sed do eiusmod'), settings()).reject, false);
    for (const attack of [
      "; sed 's/a/b/' /etc/passwd",
      '; sed -n p /etc/passwd',
      '|sed 1d x',
      '&& sed $d x',
      ';sed',
      '; sed e id',
    ])
      assert.ok(fired(attack, 'pc-cmdi-320'), attack);
  });
});
