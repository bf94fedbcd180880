import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import appsec from '@datadog/native-appsec';
import { charsetOf, emptyInputs, type Inputs, inspect, plannedRules } from './engine.js';
import {
  BEYOND_ASCII,
  canMatchPlain,
  conditionKeys,
  inCharset,
  isPlain,
  LETTERS,
  LUMPED,
  needsNonPlain,
  PLAIN,
  PUNCTUATION,
  requiredWords,
  TEXT,
  URLISH,
  WORDS,
} from './plain.js';
import { random } from './test-support/corpus.js';

describe('the plain-value analysis', () => {
  it('knows which regexes need a character outside the charset', () => {
    for (const [re, needs] of [
      ['a<b', true],
      ['(?:a|<)', false],
      ['<?a', false],
      ['[^a-z]+', false],
      ['[<>]', true],
      ['\\x3c', true],
      ['\\s*\\(', true],
      ['(?i)union\\s+select', false],
      ['x{0,3};', true],
      ['(?:^|[\\\\/])\\.\\.(?:[\\\\/]|$)', false],
      ['[[:alpha:]]<', false], // not understood: may match
    ] as const)
      assert.equal(needsNonPlain(re), needs, re);
    assert.equal(needsNonPlain('a/b'), true);
    assert.equal(needsNonPlain('a/b', URLISH), false);
    for (const [re, needs] of [
      ['[<>]', true],
      ['[^a-z<]', false],
      ['\\W', false],
      ['[\\x{7f}-\\x{ff}]', false],
      ['[\\x{100}-\\x{10ffff}]', false], // not understood: may match
      ['\\xbc[^\\xbe>]*[\\xbe>]', true], // ¼ and ¾ are not letters
      ['\u00e9', false],
      ['\u00c9', false], // É: é matches it case-insensitively
      ['[\u00b4\u2013\u2026]', true], // an acute accent, a dash, an ellipsis: not in LETTERS
      ['[\u00b4\u2018\u2019]', false], // the curly single quotes are (LUMPED)
      ['\u00bf', false], // and ¿ (PUNCTUATION)
      ['\uff1c', true], // fullwidth <
    ] as const)
      assert.equal(needsNonPlain(re, LETTERS), needs, re);
  });

  it('takes into LETTERS only letters and marks that stay letters of LETTERS to every transformation', () => {
    const set = new Set(BEYOND_ASCII);
    assert.ok(set.size > 30000);
    for (const c of "Seán O'Brien Müller Αθήνα Москва 東京都 서울 ǆ e\u0301 «“¿¡”» 。、「」 ،؟")
      assert.ok(isPlain(c, LETTERS), c);
    // Not what libddwaf's normalisation makes another character of (but `’`, LUMPED): `–` is `-`,
    // `…` is `...`, `‹` and `〈` are `<`.
    for (const c of '\uff1c\uff07\ufb01\u017f\u212a\u00bc\u00b4\u2013\u2014\u2026\u2039\u3008\u2028\u200b\u200d\u00ad\ufeff\u00a0\u3000')
      assert.equal(set.has(c), false, `U+${c.charCodeAt(0).toString(16)}`);
    const inSet = (d: string) => /[A-Za-z0-9]/.test(d) || set.has(d);
    // U+FFFD, the mark long values' windows are cut with (engine.ts `windows`), is the one symbol.
    assert.ok(set.has('\ufffd'));
    for (const c of set) {
      const hex = `U+${c.charCodeAt(0).toString(16)}`;
      if (c !== '\ufffd' && !PUNCTUATION.includes(c) && !(c in LUMPED))
        assert.match(c, /^[\p{L}\p{M}]$/u, hex);
      // No ASCII character is a case variant of it (to RE2's case folding, as to the `u` flag's).
      assert.doesNotMatch(c, /\p{ASCII}/iu, hex);
      for (const form of [c.normalize('NFKD'), c.toLowerCase(), c.toUpperCase()])
        assert.ok([...form].every(inSet), `${hex} → ${form}`);
    }
    // libddwaf's own `unicode_normalize` (utf8proc: NFKD, marks stripped, lumped, case restored) on
    // every character of the set, in batches under its 4096-byte limit: a rule fires when anything
    // but ASCII letters and digits and the set comes out.
    const lumped = Object.keys(LUMPED);
    const codes = [...set]
      .filter((c) => !lumped.includes(c))
      .map((c) => c.charCodeAt(0))
      .sort((a, b) => a - b);
    let cls = '';
    for (let i = 0; i < codes.length; ) {
      let j = i;
      while (j + 1 < codes.length && codes[j + 1] === (codes[j] as number) + 1) j++;
      const hex = (n: number) => `\\x{${n.toString(16)}}`;
      cls += i === j ? hex(codes[i] as number) : `${hex(codes[i] as number)}-${hex(codes[j] as number)}`;
      i = j + 1;
    }
    const rule = (id: string, regex: string) => ({
      id,
      name: id,
      tags: { type: id, category: 'test' },
      conditions: [{ operator: 'match_regex', parameters: { inputs: [{ address: 'x' }], regex } }],
      transformers: ['unicode_normalize'],
    });
    const waf = new appsec.DDWAF(
      {
        version: '2.1',
        rules: [
          rule('outside', `[^A-Za-z0-9${cls}]`),
          rule('changed', '[A-Za-z]'),
          rule('apostrophe', "^'$"),
        ],
      },
      'letters',
    );
    const fires = (text: string): string[] => {
      const context = waf.createContext();
      const r = context.run({ ephemeral: { x: text } }, 1e7);
      context.dispose();
      return ((r.events ?? []) as { rule: { id: string } }[]).map((e) => e.rule.id).sort();
    };
    // The check can fail: a fullwidth `<` comes out as `<`, and `é` as `e`.
    assert.deepEqual(fires('\uff1c'), ['outside']);
    assert.deepEqual(fires('\u00e9'), ['changed']);
    // The LUMPED characters come out as the sign they are taken for, and only as that.
    for (const [c, sign] of Object.entries(LUMPED)) {
      assert.equal(sign, "'");
      assert.deepEqual(fires(c), ['apostrophe', 'outside'], `U+${c.charCodeAt(0).toString(16)}`);
    }
    const all = [...set].filter((c) => !lumped.includes(c));
    for (let i = 0; i < all.length; i += 1000) {
      const batch = all.slice(i, i + 1000).join('');
      assert.ok(!fires(batch).includes('outside'), `a character of ${JSON.stringify(batch)}`);
    }
    waf.dispose();
  });

  it('finds the words every plain match contains', () => {
    assert.deepEqual(requiredWords('(?i)\\bunion\\s+(?:all\\s+)?select\\b')?.sort(), ['select']);
    assert.deepEqual(requiredWords('(?:runtime|processbuilder)')?.sort(), ['processbuilder', 'runtime']);
    assert.deepEqual(requiredWords('x(?:<|union)'), ['xunion']);
    assert.deepEqual(requiredWords('\\bif\\b'), ['if']);
    assert.equal(requiredWords('\\bx\\b'), null); // too short to filter on
    assert.equal(requiredWords('a.*b'), null);
    assert.deepEqual(requiredWords('<script'), []);
    // An optional item needing a character outside the charset matches nothing there: the run goes on.
    assert.deepEqual(requiredWords('(?i)j(?:\\t|&#9;)*a(?:\\t)*v(?:\\t)*a'), ['java']);
  });

  it('filters on rare signs where the chain can join words', () => {
    const regex = (r: string) => ({ operator: 'match_regex', parameters: { regex: r } });
    const cmd = regex(';\\s*(?:ls|cat)\\b');
    // Words where no transformation joins them; the sign where one may (`unshell` drops quotes: `l's`).
    assert.deepEqual(conditionKeys(cmd, TEXT, false)?.sort(), ['cat', 'ls']);
    assert.deepEqual(conditionKeys(cmd, TEXT, true), [';']);
    // No sign every match holds: no filter. Signs outside the charset cannot occur: nothing to read.
    assert.equal(conditionKeys(regex('(?:wget|curl)'), TEXT, true), null);
    assert.equal(conditionKeys(regex('(?:;|\\.)x'), TEXT, true), null);
    assert.deepEqual(conditionKeys(regex('[<>]\\('), TEXT, true), []);
    assert.deepEqual(
      conditionKeys({ operator: 'phrase_match', parameters: { list: ['a;b', '<c'] } }, TEXT, true),
      [';'],
    );
  });

  it('sorts values in the engine into the narrowest charset that holds them, as inCharset says', () => {
    const rnd = random(7);
    const alphabet = `${TEXT.chars}<>%&+\\\u2019\u00bf\u00e9\u0000-\u017f\u212a\u0301\uff1c\u6771\u0416\u00a0\ud83d`;
    const samples = ['', '-', '--', 'a-b', 'a--b', 'a - -b', 'AbC', "O'Brien", 'x=1', 'é', 'a<b', 'é--'];
    for (let i = 0; i < 3000; i++) {
      let v = '';
      const n = Math.floor(rnd() * 12);
      for (let j = 0; j < n; j++) v += alphabet[Math.floor(rnd() * alphabet.length)];
      samples.push(v);
    }
    for (const v of samples) {
      const want = [PLAIN, URLISH, TEXT, WORDS, LETTERS].find((c) => inCharset(v, c))?.name ?? '';
      assert.equal(charsetOf(v, 1), want, JSON.stringify(v));
    }
  });

  it('sorts names and prose beyond ASCII without quotes, parentheses or line breaks into WORDS', () => {
    for (const v of [
      'Jürgen Müller',
      'Οδός Ερμού 10, Αθήνα',
      '東京都千代田区',
      '¿Qué tal? ¡Bien!',
      '«Très bien»',
    ])
      assert.equal(charsetOf(v, 1), 'words', v);
    // A curly apostrophe is `'` to unicode_normalize, which WORDS does not hold.
    for (const v of ["Seán O'Brien", 'Siobhán O’Connor', 'Müller (GmbH)', 'Straße 1\nZeile 2'])
      assert.equal(charsetOf(v, 1), 'letters', v);
    assert.ok(![...'\'"()\n\u2018\u2019'].some((c) => WORDS.chars.includes(c)));
  });

  it('knows libinjection XSS cannot fire on plain values, and may on wider ones', () => {
    const xss = { operator: 'is_xss', parameters: {} };
    assert.equal(canMatchPlain(xss, PLAIN), false);
    assert.equal(canMatchPlain(xss, URLISH), true);
    assert.equal(canMatchPlain(xss, TEXT), true);
  });

  it('sorts values', () => {
    assert.equal(isPlain("O'Brien"), false);
    assert.equal(isPlain('sean@example.com'), true);
    assert.equal(isPlain('application/json', URLISH), true);
    assert.equal(
      canMatchPlain({ operator: 'phrase_match', parameters: { list: ['<x', '/y'] } }, PLAIN),
      false,
    );
  });
});

/** The rule ids that fire on one value placed in several targets. */
function rulesFiring(text: string, reference: boolean): string {
  const inputs: Inputs = emptyInputs();
  inputs.args.push({ location: ['query', 'q'], text });
  inputs.args_names.push({ location: ['query', text], text });
  inputs.headers.push({ location: ['header', 'user-agent'], text });
  inputs.headers.push({ location: ['header', 'referer'], text });
  inputs.cookies.push({ location: ['cookie', 'c'], text });
  inputs.filename.push({ location: ['path'], text: `/a/${text}` });
  inputs.basename.push({ location: ['path'], text });
  inputs.files.push({ location: ['body', 'f', 'filename'], text });
  inputs.body.push({ location: ['body'], text });
  const out = new Set<string>();
  for (const level of [1, 2, 3, 4]) {
    const r = inspect(inputs, { paranoiaLevel: level, budgetMicros: 1e9, reference });
    for (const d of r.detections) out.add(`${level}:${d.rule}`);
  }
  return [...out].sort().join(' ');
}

describe('the planned engine (plain values, words, shared libinjection)', () => {
  it('fires exactly the rules the rules as compiled fire, on the corpora and on generated plain values', () => {
    const dir = new URL('./corpus/', import.meta.url);
    const values = new Set<string>();
    const files = [
      ...readdirSync(dir).map((f) => new URL(f, dir)),
      ...readdirSync(new URL('crs4/', dir)).map((f) => new URL(`crs4/${f}`, dir)),
      ...readdirSync(new URL('holdout/', dir)).map((f) => new URL(`holdout/${f}`, dir)),
    ].filter((u) => /\.(txt|jsonl)$/.test(u.pathname));
    for (const u of files) {
      for (const line of readFileSync(u, 'utf8').split('\n')) {
        if (line.trim() === '') continue;
        values.add(line);
        // A JSON line's value too, with its line breaks and tabs (TEXT holds them).
        if (u.pathname.endsWith('.jsonl') && line.startsWith('"')) values.add(JSON.parse(line) as string);
      }
    }
    // Plain and URL-like values built from the rules' own words, so the word-filtered rules get to fire.
    const words = new Set<string>();
    for (const r of plannedRules(4) as {
      conditions: { parameters: { regex?: string; list?: string[] } }[];
    }[]) {
      for (const c of r.conditions) {
        if (c.parameters.regex !== undefined)
          for (const w of requiredWords(c.parameters.regex) ?? []) words.add(w);
        for (const w of c.parameters.list ?? []) if (isPlain(w, URLISH)) words.add(w);
      }
    }
    const pool = [...words];
    const rnd = random(12);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)] as T;
    const glue = [
      ' ',
      '',
      '.',
      '-',
      '_',
      '@',
      ',',
      ' (',
      '(',
      '=',
      '/',
      ':',
      ';',
      '?',
      '1',
      ' 1 ',
      '..',
      '/../',
      './',
      '//',
      '--',
      ' -- ',
      "'",
      '"',
      ')',
      '!',
      "' ",
      ' "',
      '("',
      "('",
      'é',
      ' é ',
      'ñ ',
      '\u0301',
      ' Ж ',
      '東',
      "'é",
      ' «',
      '» ',
      '¿',
      '“',
      '’',
      '’s ',
      '。',
      '、',
      '\n',
      '\r\n',
      '\t',
      ' \n\n',
      "'\n",
      ';\n',
    ];
    for (let i = 0; i < 1200; i++) {
      let v = '';
      const n = 1 + Math.floor(rnd() * 4);
      for (let j = 0; j < n; j++) v += (j > 0 ? pick(glue) : '') + (rnd() < 0.8 ? pick(pool) : String(i));
      values.add(rnd() < 0.5 ? v : v.toUpperCase());
    }
    let fired = 0;
    for (const v of values) {
      const want = rulesFiring(v, true);
      if (want !== '') fired++;
      assert.equal(rulesFiring(v, false), want, JSON.stringify(v));
    }
    assert.ok(fired > 500, `only ${fired} of ${values.size} values fire a rule`);

    // Every value above has now been inspected once, so the inert-value cache admits it when a
    // request holds it again (`admits`): the first planned request below enters its values, and
    // the second ("again") leaves those known to match nothing out of the engine's runs. Together
    // in one request, values must still fire exactly what the rules as compiled fire (a chain whose
    // parts are in two values, say), and the same request twice must give the same answer.
    const list = [...values];
    for (let i = 0; i < 400; i++) {
      const pair = [pick(list), pick(list), pick(list)];
      const want = argsFiring(pair, true);
      assert.equal(argsFiring(pair, false), want, JSON.stringify(pair));
      assert.equal(argsFiring(pair, false), want, `again: ${JSON.stringify(pair)}`);
    }
  });

  it('fires what the rules as compiled fire on base64 text, which only values of base64 characters can be', () => {
    const payloads = [
      'new Function("return 1")()',
      'x = String.fromCharCode(60, 115)',
      '_$$ND_FUNC$$_function (){ return 1 }',
      'module.exports = function () {}',
      'this.constructor.constructor("return 2")()',
    ];
    const values: string[] = [];
    for (const p of payloads) {
      const b64 = Buffer.from(p).toString('base64');
      // As sent, unpadded, and with a character that stops libddwaf decoding it.
      values.push(b64, b64.replace(/=+$/, ''), `${b64.replace(/=+$/, '')} x`, `${b64}.`);
    }
    let fired = 0;
    for (const v of values) {
      const want = rulesFiring(v, true);
      if (want !== '') fired++;
      assert.equal(rulesFiring(v, false), want, JSON.stringify(v));
    }
    assert.ok(fired >= payloads.length, `only ${fired} of ${values.length} values fire a rule`);
  });

  it('fires a chain whose parts are in two values that each match nothing else', () => {
    // CRS 944110: (runtime|processbuilder) and (unmarshaller|base64data|java.), anywhere.
    const alone = ['runtime', 'base64data'];
    for (const v of alone) {
      assert.doesNotMatch(argsFiring([v], false), /944110/, v);
      assert.doesNotMatch(argsFiring([v], false), /944110/, `again: ${v}`);
    }
    assert.match(argsFiring(alone, false), /1:944110/);
  });
});

/** The rule ids that fire on these values as query arguments of one request. */
function argsFiring(texts: readonly string[], reference: boolean): string {
  const inputs: Inputs = emptyInputs();
  texts.forEach((text, i) => {
    inputs.args.push({ location: ['query', `q${i}`], text });
  });
  const out = new Set<string>();
  for (const level of [1, 2]) {
    const r = inspect(inputs, { paranoiaLevel: level, budgetMicros: 1e9, reference });
    for (const d of r.detections) out.add(`${level}:${d.rule}`);
  }
  return [...out].sort().join(' ');
}
