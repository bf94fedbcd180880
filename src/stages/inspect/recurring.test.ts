import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InputError, type ProblemItem } from '../../openapi/errors.js';
import { type ApiRoute, configRoute } from '../../openapi/route-settings.js';
import { type FakeRequest, fakeContext, fakeDeps } from '../../test-support/stage.js';
import { emptyInputs, type Inputs, inspect, payloadOf } from './engine.js';
import { inspectStage } from './index.js';

// The inert-value cache leaves values known to match nothing out of the engine's runs, and a
// request made only of such values does not run the engine at all. These tests hold it to that:
// a new value in a request of recurring ones is still inspected, and what is known inert under one
// paranoia level or one route's exclusions is not taken as inert under another's.

function route(inspection: Record<string, unknown> = {}): ApiRoute {
  return configRoute(
    { path: '/things/{id}', methods: ['GET', 'POST'], upstream: 'api', inspection: inspection as never },
    0,
  );
}

/** The stage's answer: the rejected locations and categories, or 'passed'. */
async function verdict(request: FakeRequest, r: ApiRoute): Promise<readonly ProblemItem[] | 'passed'> {
  const stage = inspectStage.create(r, fakeDeps());
  assert.ok(stage);
  try {
    await stage.handle(fakeContext(r, request));
    return 'passed';
  } catch (err) {
    assert.ok(err instanceof InputError, String(err));
    assert.equal(err.code, 'input.rejected');
    return err.errors;
  }
}

/** A plain browser-like GET; every header value recurs from request to request. */
const HEADERS = {
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0',
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'accept-language': 'en-GB,en;q=0.9',
  'accept-encoding': 'gzip, deflate, br',
};

/** The rule ids that fire on these inputs, with their locations, at a paranoia level. */
function firing(inputs: Inputs, paranoiaLevel: number): string[] {
  const result = inspect(inputs, { paranoiaLevel, budgetMicros: 1e9 });
  assert.equal(result.timedOut, false);
  return result.detections.map((d) => `${d.rule} ${d.location}`).sort();
}

function headers(pairs: readonly (readonly [string, string])[]): Inputs {
  const inputs = emptyInputs();
  for (const [name, text] of pairs) {
    inputs.headers_names.push({ location: ['header', name], text: name });
    inputs.headers.push({ location: ['header', name], text });
  }
  return inputs;
}

describe('requests of recurring values', () => {
  it('hand the engine nothing once every value is known inert, and a new value alone', () => {
    const known = headers(Object.entries(HEADERS));
    assert.notDeepEqual(payloadOf(known, 1), []);
    assert.deepEqual(firing(known, 1), []);
    assert.deepEqual(payloadOf(known, 1), []);
    const withNew = headers([...Object.entries(HEADERS), ['x-trace', 'span=b7ad6b7169203331']]);
    // Only new values are handed over, and only where some condition can read them: the header
    // value is (libinjection reads a value with `=`), the name may not be (a plain name holding
    // no condition's word is read by none).
    const handed = new Set(payloadOf(withNew, 1).flatMap((p) => Object.values(p).flat(Infinity)));
    assert.ok(handed.has('span=b7ad6b7169203331'), [...handed].join(', '));
    for (const v of handed) assert.ok(['x-trace', 'span=b7ad6b7169203331'].includes(v as string), String(v));
    // A plain value that no condition can match (no character or word any rule needs, no sign of
    // SQL for libinjection) is not handed over at all.
    const plain = headers([...Object.entries(HEADERS), ['x-trace', 'b7ad6b7169203331']]);
    assert.deepEqual(payloadOf(plain, 1), []);
  });

  it('still detect an attack in a new value among recurring inert ones', async () => {
    const r = route();
    for (let i = 0; i < 20; i++) assert.equal(await verdict({ headers: HEADERS }, r), 'passed');
    const attack = { headers: { ...HEADERS, 'x-search': "1' union select password from users--" } };
    assert.deepEqual(await verdict(attack, r), [{ location: '/header/x-search', rule: 'sqli' }]);
    // And a recurring header whose value changes to an attack.
    const changed = { headers: { ...HEADERS, 'accept-language': "' or 'a'='a" } };
    assert.deepEqual(await verdict(changed, r), [{ location: '/header/accept-language', rule: 'sqli' }]);
    assert.equal(await verdict({ headers: HEADERS }, r), 'passed');
  });

  it('still detect at paranoia level 2 a value known inert at level 1', async () => {
    const value = 'sqlmap/1.7.2#stable (https://sqlmap.org)';
    const query = `q=${encodeURIComponent(value)}`;
    const pl1 = route({ paranoia_level: 1 });
    const pl2 = route({ paranoia_level: 2 });
    for (let i = 0; i < 3; i++) assert.equal(await verdict({ query }, pl1), 'passed');
    assert.notEqual(await verdict({ query }, pl2), 'passed');
    assert.equal(await verdict({ query }, pl1), 'passed');
  });

  it('do not carry one route’s exclusions over to another route', async () => {
    const query = `q=${encodeURIComponent('1 union select 1')}`;
    const excludedAll = route({ exclude: ['/query/q'] });
    const excludedSqli = route({ exclude: [{ location: '/query/q', categories: ['sqli'] }] });
    const everywhere = route({ exclude: [{ categories: ['sqli'] }] });
    const plain = route();
    for (const r of [excludedAll, excludedSqli, everywhere]) {
      for (let i = 0; i < 3; i++) assert.equal(await verdict({ query }, r), 'passed');
      assert.deepEqual(await verdict({ query }, plain), [{ location: '/query/q', rule: 'sqli' }]);
    }
  });

  it('give the same detections the second time as the first, and name a header-specific rule', () => {
    // 942100 (libinjection) reads User-Agent by name; the same text in another header comes first.
    const value = "' or 'a'='a";
    const inputs = headers([
      ['x-a', value],
      ['user-agent', value],
    ]);
    const first = firing(inputs, 1);
    assert.ok(first.includes('942100 /header/user-agent'), first.join(', '));
    assert.ok(!first.includes('942100 /header/x-a'), first.join(', '));
    assert.deepEqual(firing(inputs, 1), first);
  });

  it('skip the SQL gate for a recurring text it empties, and still read that text under every other rule', () => {
    // `/etc/passwd` shows no sign of SQL (libinjection never reads it) but is a traversal; once the
    // cache holds it, the gate's addresses are closed to it and the others still read it.
    const inputs = emptyInputs();
    inputs.args.push({ location: ['query', 'file'], text: '/etc/passwd' });
    inputs.args.push({ location: ['query', 'q'], text: "it's 1 or 2" });
    const reference = inspect(inputs, { paranoiaLevel: 1, budgetMicros: 1e9, reference: true })
      .detections.map((d) => `${d.rule} ${d.location}`)
      .sort();
    assert.ok(
      reference.some((d) => d.endsWith('/query/file')),
      reference.join(', '),
    );
    assert.ok(!reference.some((d) => d.startsWith('942100 /query/file')), reference.join(', '));
    for (let i = 0; i < 4; i++) assert.deepEqual(firing(inputs, 1), reference, `round ${i}`);
    // A signed text the gate lets through and that matched nothing is not handed over again.
    const signed = emptyInputs();
    signed.args.push({ location: ['query', 'q'], text: 'cats and dogs' });
    for (let i = 0; i < 3; i++) assert.deepEqual(firing(signed, 1), []);
    assert.deepEqual(payloadOf(signed, 1), []);
  });

  it('inspect each text once per address in a large group, naming its first place', () => {
    // More than the leaves a group compares one by one: the same key in every array item.
    const inputs = emptyInputs();
    for (let i = 0; i < 40; i++) {
      const text = i >= 30 ? '1 union select 1' : `item ${i % 5}`;
      inputs.args.push({ location: ['body', 'items', String(i), 'note'], text });
    }
    const found = firing(inputs, 1);
    assert.ok(found.length > 0);
    for (const d of found) assert.match(d, / \/body\/items\/30\/note$/);
    assert.deepEqual(firing(inputs, 1), found);
  });
});
