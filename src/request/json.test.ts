import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseJson } from './json.js';

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
