/**
 * A bounded least-recently-used map.
 *
 * Hand-written rather than a dependency: a JavaScript `Map` already keeps
 * insertion order, so moving an entry to the end on every read and dropping
 * the first key when full is the whole algorithm (O(1) per operation). That
 * is less code than the glue for a library, and it sits on the request path.
 */
export class LruCache<K, V> {
  readonly #entries = new Map<K, V>();

  /** @param capacity Most entries kept; 0 keeps nothing (the cache is off). */
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0) {
      throw new RangeError('LRU capacity must be a non-negative integer');
    }
  }

  /** Number of entries held now. */
  get size(): number {
    return this.#entries.size;
  }

  /** The value for `key`, marking it as most recently used; undefined when absent. */
  get(key: K): V | undefined {
    const value = this.#entries.get(key);
    if (value === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, value);
    return value;
  }

  /** Stores `value` as most recently used, evicting the least recently used entry when full. */
  set(key: K, value: V): void {
    if (this.capacity === 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, value);
    if (this.#entries.size > this.capacity) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
  }

  delete(key: K): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}
