import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hashText, Memo } from './memo.js';

interface Entry {
  n: number;
}

describe('the memo of a request’s texts', () => {
  it('gives each text one entry, reset when first met, kept through growth, and forgets on clear', () => {
    const memo = new Memo<Entry>(
      () => ({ n: -1 }),
      (e) => {
        e.n = -1;
      },
      4,
    );
    const first = memo.of('a');
    assert.equal(first.n, -1);
    first.n = 1;
    // More texts than half the table: it grows, and an entry already handed out stays the text's.
    const texts = Array.from({ length: 50 }, (_, i) => `text ${i}`);
    for (const [i, t] of texts.entries()) memo.of(t).n = i;
    assert.equal(memo.of('a'), first);
    assert.equal(first.n, 1);
    for (const [i, t] of texts.entries()) assert.equal(memo.of(t).n, i, t);
    // The hash of the text last asked for, for the cache's admission filter (engine.ts `admits`).
    for (const t of ['a', 'text 7', 'never met']) {
      memo.of(t);
      assert.equal(memo.hash, hashText(t), t);
    }
    memo.clear();
    assert.equal(memo.of('a').n, -1);
    assert.equal(memo.of('text 7').n, -1);
  });

  it('keeps texts of one slot apart, past the probes it walks', () => {
    const memo = new Memo<Entry>(
      () => ({ n: -1 }),
      (e) => {
        e.n = -1;
      },
      1024,
    );
    // Texts whose hash falls on slot 0 of 1024, as a request built to collide would hold.
    const texts: string[] = [];
    for (let i = 0; texts.length < 60; i++) if ((hashText(`x${i}`) & 1023) === 0) texts.push(`x${i}`);
    for (const [i, t] of texts.entries()) memo.of(t).n = i;
    for (const [i, t] of texts.entries()) assert.equal(memo.of(t).n, i, t);
    // And through the table's growth (more texts than half of it).
    for (let i = 0; i < 600; i++) memo.of(`other ${i}`).n = 1000 + i;
    for (const [i, t] of texts.entries()) assert.equal(memo.of(t).n, i, t);
    assert.equal(memo.of('other 599').n, 1599);
    memo.clear();
    for (const t of texts) assert.equal(memo.of(t).n, -1, t);
  });
});
