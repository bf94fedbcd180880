/**
 * A bounded least-recently-used map with optional per-entry expiry.
 *
 * Hand-written because it is a few lines on top of Map's insertion order,
 * and the well-known packages (lru-cache) bring more than we need into the
 * request path. Every cache and counter table in the gateway uses this one
 * class, so "bounded memory" is enforced in one place.
 *
 * Eviction keeps one live iterator over the map (`cursor`) instead of
 * calling `map.keys().next()` each time: a fresh iterator starts at the
 * table's first slot and walks over every entry deleted since V8 last
 * compacted it, which for a full table under a flood of new keys (every
 * insert evicts, every hit re-inserts) is tens of thousands of holes per
 * eviction, about 50-90 µs instead of under 1 µs. A Map iterator is live:
 * it skips deleted entries and sees the ones added behind it, and since
 * every entry it has passed was evicted (a re-inserted entry goes to the
 * end), the next key it yields is always the least recently used one.
 */
export class LruCache<K, V> {
  private readonly map = new Map<K, { value: V; expiresAt: number; used?: boolean }>();
  private cursor: Iterator<K> | undefined;

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

  /**
   * Whether `key` is present and unexpired, marking it as used without
   * moving it (no Map write, the cost of `get` on a hot path): a marked
   * entry that reaches the eviction end gets a second chance (moved to the
   * newest end, mark cleared) instead of going. Keys read only through `has`
   * are thus kept roughly by recency (CLOCK), keys read through `get`
   * exactly.
   */
  has(key: K): boolean {
    const entry = this.map.get(key);
    if (entry === undefined) return false;
    if (entry.expiresAt !== Number.POSITIVE_INFINITY && entry.expiresAt <= this.now()) {
      this.map.delete(key);
      return false;
    }
    entry.used = true;
    return true;
  }

  /**
   * The value, or undefined when absent or expired, marking it as used the
   * way {@link has} does instead of moving it: no Map write on a hit (a
   * `get` deletes and re-inserts, and the deleted slots make V8 rebuild the
   * table over and over under a hot key). For the per-request lookups.
   */
  peek(key: K): V | undefined {
    const entry = this.map.get(key);
    if (entry === undefined) return undefined;
    // An entry without expiry (Infinity) needs no clock read.
    if (entry.expiresAt !== Number.POSITIVE_INFINITY && entry.expiresAt <= this.now()) {
      this.map.delete(key);
      return undefined;
    }
    entry.used = true;
    return entry.value;
  }

  /**
   * Stores `value` until `expiresAt`: an entry already present is changed
   * in place and marked used (as {@link peek} does), with no Map write and
   * no new entry object; an absent one is inserted as by {@link set}.
   */
  update(key: K, value: V, expiresAt = Number.POSITIVE_INFINITY): void {
    const entry = this.map.get(key);
    if (entry === undefined) {
      this.set(key, value, expiresAt);
      return;
    }
    entry.value = value;
    entry.expiresAt = expiresAt;
    entry.used = true;
  }

  /** Stores `value` until `expiresAt` (ms since the epoch; Infinity for no expiry). */
  set(key: K, value: V, expiresAt = Number.POSITIVE_INFINITY): void {
    if (this.maxEntries <= 0) return;
    // Room is made before the new entry goes in, so it is never the one evicted.
    if (!this.map.delete(key) && this.map.size >= this.maxEntries) this.evictOne();
    this.map.set(key, { value, expiresAt });
  }

  /** Drops the least recently used entry, giving entries marked by `has` a second chance. */
  private evictOne(): void {
    // Ends: every pass clears the marks it meets, so at most one full turn moves entries.
    for (;;) {
      const key = this.oldest();
      const entry = this.map.get(key)!;
      this.map.delete(key);
      if (!entry.used) return;
      entry.used = false;
      this.map.set(key, entry);
    }
  }

  /** Drops the least recently used entry (expired or not); false when empty. */
  evictOldest(): boolean {
    if (this.map.size === 0) return false;
    this.map.delete(this.oldest());
    return true;
  }

  private oldest(): K {
    this.cursor ??= this.map.keys();
    let next = this.cursor.next();
    if (next.done) {
      // Only once it has passed every entry (maxEntries tiny): start again.
      this.cursor = this.map.keys();
      next = this.cursor.next();
    }
    return next.value as K;
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
    this.cursor = undefined;
  }
}

/**
 * A bounded map for a flood of new keys, where {@link LruCache} spends its
 * time evicting: two generations of at most `maxEntries / 2` keys each. New
 * keys go into the young one; a key found in the old one moves to the young
 * one; when the young one is full it becomes the old one and the old one is
 * dropped whole (one allocation, no per-key eviction, no iterator). Keys
 * used within the last `maxEntries / 2` insertions are always kept, keys
 * not used within the last `maxEntries` never: recency to within a factor
 * of two, at the cost of one or two Map lookups per read.
 */
export class GenerationalCache<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private readonly half: number;

  constructor(
    /** Most entries kept (both generations together); 0 keeps nothing. */
    readonly maxEntries: number,
  ) {
    this.half = Math.floor(maxEntries / 2);
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  /** The value, or undefined when absent; a value found in the old generation moves to the young one. */
  get(key: K): V | undefined {
    const value = this.young.get(key);
    if (value !== undefined) return value;
    const older = this.old.get(key);
    if (older === undefined) return undefined;
    this.old.delete(key);
    this.set(key, older);
    return older;
  }

  /** Stores `value` in the young generation (which, when full, becomes the old one first). */
  set(key: K, value: V): void {
    if (this.half <= 0) return;
    if (!this.young.has(key) && this.young.size >= this.half) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }
}
