import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { configReference, withReference } from './reference.js';

describe('the configuration reference', () => {
  it('in the README matches the schema (run `npm run docs` after changing the schema)', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    assert.equal(readme, withReference(readme));
  });

  it('has a row with a description for every key', () => {
    const rows = configReference().split('\n').slice(2);
    assert.ok(rows.length > 30);
    for (const row of rows) assert.doesNotMatch(row, /\|\s*\|$/, `no description: ${row}`);
  });
});
