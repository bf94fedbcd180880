import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GenerationalCache, LruCache } from './lru.js';

const keys = <K>(c: LruCache<K, unknown>, candidates: K[]) =>
  candidates.filter((k) => c.get(k) !== undefined);

describe('LruCache', () => {
  it('evicts the least recently used entry, a hit or a re-set making an entry recent', () => {
    const c = new LruCache<string, number>(3);
    c.set('a', 1);
    c.set('b', 2);
    c.set('c', 3);
    c.get('a');
    c.set('d', 4); // evicts b
    c.set('c', 30); // c is now the most recent
    c.set('e', 5); // evicts a
    assert.equal(c.size, 3);
    assert.equal(c.get('a'), undefined);
    assert.equal(c.get('b'), undefined);
    assert.deepEqual(
      ['c', 'd', 'e'].map((k) => c.get(k)),
      [30, 4, 5],
    );
  });

  it('keeps an entry read through has() past newer unread ones (second chance), and answers has() truly', () => {
    const c = new LruCache<string, number>(3);
    c.set('a', 1);
    c.set('b', 2);
    c.set('c', 3);
    assert.equal(c.has('a'), true);
    assert.equal(c.has('z'), false);
    c.set('d', 4); // a is marked: it moves to the newest end, b (unmarked) goes
    assert.equal(c.has('b'), false);
    assert.equal(c.has('a'), true);
    c.set('e', 5); // a is marked again; c is the oldest unmarked
    assert.deepEqual(
      ['a', 'b', 'c', 'd', 'e'].filter((k) => c.get(k) !== undefined),
      ['a', 'd', 'e'],
    );
  });

  it('evicts even when every entry is marked, and stays at its bound under a flood', () => {
    const c = new LruCache<number, number>(100);
    for (let i = 0; i < 100; i++) c.set(i, i);
    for (let i = 0; i < 100; i++) assert.equal(c.has(i), true);
    c.set(1000, 1000); // every older entry is marked: each gets its second chance, then one goes
    assert.equal(c.size, 100);
    c.has(1000);
    for (let i = 0; i < 50_000; i++) {
      c.set(-i - 1, i);
      if (i % 3 === 0) c.has(-i - 1);
      if (i % 7 === 0) c.has(1000);
    }
    assert.equal(c.size, 100);
    assert.equal(c.has(1000), true, 'a key read all along survives the flood');
  });

  it('evicts in order across many evictions, deletes and a clear', () => {
    const c = new LruCache<number, number>(2);
    for (let i = 0; i < 1000; i++) {
      c.set(i, i);
      if (i % 7 === 0) c.delete(i - 1);
      assert.ok(c.size <= 2);
    }
    assert.deepEqual(keys(c, [997, 998, 999]), [998, 999]);
    c.clear();
    assert.equal(c.size, 0);
    c.set(1, 1);
    c.set(2, 2);
    c.set(3, 3);
    assert.deepEqual(keys(c, [1, 2, 3]), [2, 3]);
    assert.equal(c.evictOldest(), true);
    assert.deepEqual(keys(c, [2, 3]), [3]);
    assert.equal(c.evictOldest(), true);
    assert.equal(c.evictOldest(), false);
  });

  it('keeps an entry read through peek() or changed through update() past newer unread ones, with its new value and expiry', () => {
    let t = 0;
    const c = new LruCache<string, number>(3, () => t);
    c.set('a', 1);
    c.set('b', 2);
    c.set('c', 3);
    assert.equal(c.peek('a'), 1);
    c.update('b', 20, 50);
    c.set('d', 4); // a and b are marked: c goes
    assert.equal(c.peek('c'), undefined);
    assert.equal(c.peek('a'), 1);
    assert.equal(c.peek('b'), 20);
    c.update('e', 5); // absent: inserted, within the bound
    assert.equal(c.size, 3);
    assert.equal(c.peek('e'), 5);
    t = 50;
    assert.equal(c.peek('b'), undefined, 'update set the expiry');
  });

  it('forgets an entry at its expiry', () => {
    let t = 0;
    const c = new LruCache<string, number>(10, () => t);
    c.set('a', 1, 100);
    t = 99;
    assert.equal(c.get('a'), 1);
    t = 100;
    assert.equal(c.get('a'), undefined);
    assert.equal(c.size, 0);
  });

  it('stays at its bound under 300k distinct keys, in constant time per eviction', () => {
    const c = new LruCache<string, number>(100_000);
    const started = performance.now();
    for (let i = 0; i < 300_000; i++) {
      const key = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      c.set(key, i);
      // A client seen again on every 3rd request: hits re-insert, as under real traffic.
      if (i % 3 === 0) c.get(key);
    }
    const elapsed = performance.now() - started;
    assert.equal(c.size, 100_000);
    // About 0.3 s here; evicting with a fresh `keys()` iterator each time took over 10 s.
    assert.ok(elapsed < 4000, `300k inserts took ${Math.round(elapsed)} ms`);
  });
});

describe('GenerationalCache', () => {
  it('keeps keys used within the last half of its bound and forgets keys not used within its bound', () => {
    const c = new GenerationalCache<string, number>(4);
    c.set('a', 1);
    c.set('b', 2); // young is full: the next new key makes it the old generation
    c.set('c', 3);
    assert.equal(c.get('a'), 1); // found in the old generation: moves to the young one
    c.set('d', 4); // young {c, a} was full: it becomes old, b is dropped
    assert.equal(c.get('b'), undefined);
    assert.equal(c.get('a'), 1);
    assert.equal(c.get('c'), 3);
    assert.equal(c.get('d'), 4);
    assert.ok(c.size <= 4);
  });

  it('stays at its bound under a flood of new keys, and keeps nothing with a bound of 0', () => {
    const c = new GenerationalCache<number, number>(100);
    for (let i = 0; i < 10_000; i++) {
      c.set(i, i);
      assert.ok(c.size <= 100);
    }
    assert.equal(c.get(9_999), 9_999);
    assert.equal(c.get(0), undefined);
    const none = new GenerationalCache<string, number>(0);
    none.set('a', 1);
    assert.equal(none.get('a'), undefined);
    assert.equal(none.size, 0);
  });
});
