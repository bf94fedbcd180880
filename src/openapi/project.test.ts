import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAjv } from './ajv.js';
import { projectionContext, registerRoot } from './compile.js';
import { MAX_PROJECTION_DEPTH, ProjectionError, project } from './project.js';

/** Projects `value` on the schema `#/s` of a root holding `defs` too. */
function projected(schema: unknown, value: unknown, defs: Record<string, unknown> = {}): unknown {
  const root = { s: schema, defs };
  const r = registerRoot(createAjv('2020-12', 'response'), root, '', []);
  const ctx = projectionContext(r, [
    { schema, at: '/s' },
    ...Object.entries(defs).map(([k, v]) => ({ schema: v, at: `/defs/${k}` })),
  ]);
  const copy = structuredClone(value);
  project(schema, copy, ctx);
  return copy;
}

const user = {
  type: 'object',
  properties: { id: { type: 'string' }, name: { type: 'string' } },
};

describe('projecting a response on its schema', () => {
  it('removes properties an object schema does not declare (excessive data exposure)', () => {
    assert.deepEqual(projected(user, { id: '1', name: 'a', password_hash: 'x' }), { id: '1', name: 'a' });
  });

  it('keeps a free-form object whole', () => {
    assert.deepEqual(projected({ type: 'object' }, { any: 1, thing: [2] }), { any: 1, thing: [2] });
    assert.deepEqual(projected({}, { any: 1 }), { any: 1 });
  });

  it('keeps undeclared properties when additionalProperties opens the object, checking them against it', () => {
    const schema = {
      ...user,
      additionalProperties: { type: 'object', properties: { v: { type: 'number' } } },
    };
    assert.deepEqual(projected(schema, { id: '1', extra: { v: 1, w: 2 } }), { id: '1', extra: { v: 1 } });
  });

  it('removes writeOnly properties, also through $ref', () => {
    const schema = {
      type: 'object',
      properties: {
        name: { type: 'string' },
        secret: { $ref: '#/defs/Secret' },
        pin: { type: 'string', writeOnly: true },
      },
    };
    const defs = { Secret: { type: 'string', writeOnly: true } };
    assert.deepEqual(projected(schema, { name: 'a', secret: 's', pin: '1' }, defs), { name: 'a' });
  });

  it('gathers the properties of every allOf part', () => {
    const schema = {
      allOf: [{ $ref: '#/defs/Base' }, { type: 'object', properties: { b: { type: 'string' } } }],
    };
    const defs = { Base: { type: 'object', properties: { a: { type: 'string' } } } };
    assert.deepEqual(projected(schema, { a: '1', b: '2', c: '3' }, defs), { a: '1', b: '2' });
  });

  it('keeps the properties of the oneOf branch the value matches, not of the others', () => {
    const schema = {
      oneOf: [
        {
          type: 'object',
          required: ['kind', 'card'],
          properties: { kind: { const: 'card' }, card: { type: 'string' } },
        },
        {
          type: 'object',
          required: ['kind', 'iban'],
          properties: { kind: { const: 'bank' }, iban: { type: 'string' } },
        },
      ],
    };
    assert.deepEqual(projected(schema, { kind: 'bank', iban: 'x', card: 'leak' }), {
      kind: 'bank',
      iban: 'x',
    });
  });

  it('projects each array item, tuple items by position', () => {
    assert.deepEqual(
      projected({ type: 'array', items: user }, [
        { id: '1', x: 1 },
        { id: '2', y: 2 },
      ]),
      [{ id: '1' }, { id: '2' }],
    );
    const tuple = {
      type: 'array',
      prefixItems: [user, { type: 'object', properties: { n: { type: 'number' } } }],
    };
    assert.deepEqual(
      projected(tuple, [
        { id: '1', x: 1 },
        { n: 1, z: 1 },
      ]),
      [{ id: '1' }, { n: 1 }],
    );
  });

  it('follows recursive schemas as deep as the value goes', () => {
    const defs = {
      Node: { type: 'object', properties: { name: { type: 'string' }, child: { $ref: '#/defs/Node' } } },
    };
    const value = { name: 'a', x: 1, child: { name: 'b', y: 2, child: { name: 'c', z: 3 } } };
    assert.deepEqual(projected({ $ref: '#/defs/Node' }, value, defs), {
      name: 'a',
      child: { name: 'b', child: { name: 'c' } },
    });
  });

  it('refuses a value nested deeper than it filters rather than passing it unfiltered', () => {
    const defs = { Node: { type: 'object', properties: { child: { $ref: '#/defs/Node' } } } };
    let value: Record<string, unknown> = {};
    for (let i = 0; i < MAX_PROJECTION_DEPTH + 5; i++) value = { child: value };
    assert.throws(() => projected({ $ref: '#/defs/Node' }, value, defs), ProjectionError);
  });
});
