import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isExactNumber, parseJson } from './json.js';

const limits = { maxDepth: 5, maxKeys: 10, maxString: 20 };
const parse = (text: string | Buffer) =>
  parseJson(typeof text === 'string' ? Buffer.from(text) : text, limits);
const problem = (text: string | Buffer) => {
  const r = parse(text);
  assert.equal(r.ok, false, `accepted ${String(text)}`);
  return r.ok ? undefined : r.problem;
};

describe('parsing a JSON body strictly', () => {
  it('accepts ordinary JSON within the limits', () => {
    assert.deepEqual(parse('{"a":[1,{"b":"c"}],"d":"e\\"f"}'), {
      ok: true,
      value: { a: [1, { b: 'c' }], d: 'e"f' },
    });
  });

  it('rejects a duplicate key, also when it is spelled with escapes, and accepts the same key in sibling objects', () => {
    assert.deepEqual(problem('{"role":"user","role":"admin"}'), {
      location: '/body/role',
      rule: 'duplicate_key',
    });
    assert.deepEqual(problem('{"role":"user","\\u0072ole":"admin"}'), {
      location: '/body/role',
      rule: 'duplicate_key',
    });
    assert.deepEqual(problem('{"a":[{"x":1},{"x":1,"x":2}]}'), {
      location: '/body/a/1/x',
      rule: 'duplicate_key',
    });
    assert.equal(parse('{"a":{"x":1},"b":{"x":1}}').ok, true);
  });

  it('rejects __proto__, constructor and prototype keys at any depth', () => {
    assert.deepEqual(problem('{"__proto__":{"isAdmin":true}}'), {
      location: '/body/__proto__',
      rule: 'forbidden_key',
    });
    assert.deepEqual(problem('{"a":{"constructor":{"prototype":{}}}}'), {
      location: '/body/a/constructor',
      rule: 'forbidden_key',
    });
    assert.deepEqual(problem('{"\\u005f_proto__":{}}'), {
      location: '/body/__proto__',
      rule: 'forbidden_key',
    });
    assert.equal(parse('{"proto":1,"constructors":2}').ok, true);
  });

  it('shows why: a parsed __proto__ key pollutes the prototype of any copy made with Object.assign', () => {
    const parsed = JSON.parse('{"__proto__":{"isAdmin":true}}') as object;
    assert.equal(
      (parsed as { isAdmin?: boolean }).isAdmin,
      undefined,
      'JSON.parse alone makes an own property',
    );
    const copy = Object.assign({}, parsed) as { isAdmin?: boolean };
    assert.equal(copy.isAdmin, true, 'the copy now inherits isAdmin');
  });

  it('bounds depth, key count and string length', () => {
    assert.deepEqual(problem('[[[[[[1]]]]]]'), { location: '/body/0/0/0/0/0', rule: 'max_depth' });
    assert.equal(parse('[[[[[1]]]]]').ok, true);
    const keys = `{${Array.from({ length: 11 }, (_, i) => `"k${i}":1`).join(',')}}`;
    assert.deepEqual(problem(keys), { location: '/body', rule: 'max_keys' });
    assert.deepEqual(problem(`{"a":"${'x'.repeat(21)}"}`), { location: '/body/a', rule: 'max_string' });
    assert.deepEqual(problem(`{"${'k'.repeat(21)}":1}`), { location: '/body', rule: 'max_string' });
    assert.equal(parse(`{"a":"${'x'.repeat(20)}"}`).ok, true);
  });

  it('counts the decoded length of a string with escapes', () => {
    assert.equal(parse(`{"a":"${'\\u0041'.repeat(20)}"}`).ok, true);
  });

  it('rejects invalid UTF-8, a byte order mark and malformed JSON without quoting the input', () => {
    assert.deepEqual(problem(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d])), {
      location: '/body',
      rule: 'encoding',
    });
    assert.deepEqual(problem(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{}')])), {
      location: '/body',
      rule: 'json',
    });
    assert.deepEqual(problem('{"a":'), { location: '/body', rule: 'json' });
    assert.deepEqual(problem('{"a":1}garbage'), { location: '/body', rule: 'json' });
    assert.deepEqual(problem("{'a':1}"), { location: '/body', rule: 'json' });
  });

  it('stays linear on many strings and escapes', () => {
    const many = `[${Array.from({ length: 5000 }, () => '"a\\\\"').join(',')}]`;
    const wide = parseJson(Buffer.from(many), { maxDepth: 5, maxKeys: 10, maxString: 20 });
    assert.equal(wide.ok, true);
  });
});

describe('refusing numbers a double cannot hold exactly', () => {
  it('accepts literals whose value is that of the double they are read as', () => {
    for (const literal of [
      '0',
      '-0',
      '0.0',
      '0e400',
      '100',
      '100.0',
      '100.000000000000000000000',
      '1e2',
      '1E2',
      '1E+2',
      '0.01e4',
      '0.1',
      '-0.1',
      '0.30000000000000004',
      '9007199254740992',
      '-9007199254740992',
      '123456789012345',
      '1e21',
      '1e23',
      '100000000000000000000000',
      '1.7976931348623157e308',
      '5e-324',
      '1e-7',
      '0.0000001',
    ]) {
      assert.equal(isExactNumber(literal), true, literal);
    }
  });

  it('refuses literals a double rounds, overflows or flushes to zero, and text that is no number literal', () => {
    for (const literal of [
      '100.0000000000000001',
      '9007199254740993',
      '-9007199254740993',
      '12345678901234567890',
      '0.1000000000000000055511151231257827021181583404541015625',
      '1e400',
      '-1e400',
      '1.7976931348623159e308',
      '1e-400',
      '-1e-400',
      '4e-324',
      `1${'0'.repeat(400)}`,
      `0.${'0'.repeat(400)}1`,
      '',
      '-',
      '01',
      '1.',
      '.5',
      '+1',
      '1e',
      'Infinity',
      'NaN',
      '0x10',
      ' 1',
    ]) {
      assert.equal(isExactNumber(literal), false, literal);
    }
  });

  it('refuses an inexact number in a body at its pointer, rather than validating the rounded value', () => {
    assert.deepEqual(problem('{"qty": 100.0000000000000001}'), {
      location: '/body/qty',
      rule: 'number_precision',
    });
    assert.deepEqual(problem('{"ids":[1,9007199254740993]}'), {
      location: '/body/ids/1',
      rule: 'number_precision',
    });
    assert.deepEqual(problem('{"a":{"b":[1e400]}}'), { location: '/body/a/b/0', rule: 'number_precision' });
    assert.deepEqual(problem('{"a":1,"b":-1e-400}'), { location: '/body/b', rule: 'number_precision' });
    assert.deepEqual(problem('1e400'), { location: '/body', rule: 'number_precision' });
    assert.deepEqual(problem('[1E+400]'), { location: '/body/0', rule: 'number_precision' });
  });

  it('accepts exact numbers however they are spelled, and ignores digits inside strings and keys', () => {
    assert.deepEqual(
      parse('{"a":100.0,"b":1e2,"c":-0,"d":0.1,"e":9007199254740992,"f":[0.30000000000000004]}'),
      {
        ok: true,
        value: { a: 100, b: 100, c: -0, d: 0.1, e: 9007199254740992, f: [0.30000000000000004] },
      },
    );
    assert.equal(parse('{"a":"100.0000000000000001","9007199254740993":"1e400"}').ok, true);
  });

  it('leaves malformed number tokens to JSON.parse', () => {
    assert.deepEqual(problem('[1e]'), { location: '/body', rule: 'json' });
    assert.deepEqual(problem('[012345678901234567]'), { location: '/body', rule: 'json' });
    assert.deepEqual(problem('{12345678901234567890:1}'), { location: '/body', rule: 'json' });
  });

  it('stays linear on many numbers and on one very long number', () => {
    const many = `[${Array.from({ length: 20000 }, (_, i) => `${i}.5e-3`).join(',')}]`;
    assert.equal(parse(many).ok, true);
    assert.deepEqual(problem(`{"a":1${'0'.repeat(100000)}}`), {
      location: '/body/a',
      rule: 'number_precision',
    });
    assert.deepEqual(problem(`{"a":0.${'0'.repeat(100000)}1}`), {
      location: '/body/a',
      rule: 'number_precision',
    });
  });
});
