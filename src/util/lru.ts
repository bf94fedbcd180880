/**
 * A bounded least-recently-used map with optional per-entry expiry.
 *
 * Hand-written because it is a few lines on top of Map's insertion order,
 * and the well-known packages (lru-cache) bring more than we need into the
 * request path. Every cache and counter table in the gateway uses this one
 * class, so "bounded memory" is enforced in one place.
 */
export class LruCache<K, V> {
  private readonly map = new Map<K, { value: V; expiresAt: number }>();

  constructor(
    /** Most entries kept; the least recently used is dropped beyond it. 0 keeps nothing. */
    readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.map.size;
  }

  /** The value, or undefined when absent or expired. Marks it as recently used. */
  get(key: K): V | undefined {
    const entry = this.map.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.map.delete(key);
      return undefined;
    }
    this.map.delete(key);
    this.map.set(key, entry);
    return entry.value;
  }

  /** Stores `value` until `expiresAt` (ms since the epoch; Infinity for no expiry). */
  set(key: K, value: V, expiresAt = Number.POSITIVE_INFINITY): void {
    if (this.maxEntries <= 0) return;
    this.map.delete(key);
    this.map.set(key, { value, expiresAt });
    if (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next().value as K;
      this.map.delete(oldest);
    }
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }
}
