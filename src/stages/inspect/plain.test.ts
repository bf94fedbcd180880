import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { charsetOf, emptyInputs, type Inputs, inspect, plannedRules } from './engine.js';
import {
  canMatchPlain,
  inCharset,
  isPlain,
  needsNonPlain,
  PLAIN,
  requiredWords,
  TEXT,
  URLISH,
} from './plain.js';

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
  });

  it('finds the words every plain match contains', () => {
    assert.deepEqual(requiredWords('(?i)\\bunion\\s+(?:all\\s+)?select\\b')?.sort(), ['select']);
    assert.deepEqual(requiredWords('(?:runtime|processbuilder)')?.sort(), ['processbuilder', 'runtime']);
    assert.deepEqual(requiredWords('x(?:<|union)'), ['xunion']);
    assert.deepEqual(requiredWords('\\bif\\b'), ['if']);
    assert.equal(requiredWords('\\bx\\b'), null); // too short to filter on
    assert.equal(requiredWords('a.*b'), null);
    assert.deepEqual(requiredWords('<script'), []);
  });

  it('sorts values in the engine into the narrowest charset that holds them, as inCharset says', () => {
    const rnd = random(7);
    const alphabet = `${TEXT.chars}<>%&+\\\u00e9\u0000-`;
    const samples = ['', '-', '--', 'a-b', 'a--b', 'a - -b', 'AbC', "O'Brien", 'x=1', 'é', 'a<b'];
    for (let i = 0; i < 3000; i++) {
      let v = '';
      const n = Math.floor(rnd() * 12);
      for (let j = 0; j < n; j++) v += alphabet[Math.floor(rnd() * alphabet.length)];
      samples.push(v);
    }
    for (const v of samples) {
      const want = [PLAIN, URLISH, TEXT].find((c) => inCharset(v, c))?.name ?? '';
      assert.equal(charsetOf(v, 1), want, JSON.stringify(v));
    }
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

/** A small deterministic generator (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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
      for (const line of readFileSync(u, 'utf8').split('\n')) if (line.trim() !== '') values.add(line);
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

    // Every value above has now been inspected once, so the inert-value cache is warm: values
    // known to match nothing are left out of the engine's runs. Together in one request, values
    // must still fire exactly what the rules as compiled fire (a chain whose parts are in two
    // values, say), and the same request twice must give the same answer.
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
