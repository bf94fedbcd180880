/**
 * A table of the texts of one request, for `prepare` (engine.ts): what it learns of each text the
 * inert-value cache does not hold (its `MemoEntry`: its kind, whether the cache admitted it, the
 * addresses of a group it was read by). Made once per engine and reused by every request, not a
 * Map per request: the per-group and per-request Maps it replaces were reallocated as they grew
 * (some 20 KB of the 4 KB JSON body's 98 KB a request), and what a request allocates sets how often
 * the young-generation collector runs, which the p99 of inspection is made of.
 *
 * Open addressing by a 32-bit hash of the text (`hashText`, linear probing), entries made with the
 * table and reused; `clear` empties the slots the request used. A request of more texts than half
 * the table grows it (and the table stays that size).
 */
import { hashString } from '../../util/hash.js';

/** FNV-1a of a text, signed, as the tables' Int32Arrays hold it. */
export function hashText(text: string): number {
  return hashString(text) | 0;
}

/**
 * The most slots a lookup probes past the first. FNV is not keyed: a request can be built of
 * texts of one hash, which would make every lookup walk all of them (quadratic in the request);
 * past this many probes a text's entry is kept in a Map instead.
 */
const MAX_PROBES = 16;

/** A table of texts to entries of type `E`, emptied per request (see the header). */
export class Memo<E> {
  private hashes: Int32Array;
  private texts: (string | undefined)[];
  private entries: E[];
  /** The slots in use, in order of use (`count` of them). */
  private used: Int32Array;
  private count = 0;
  /** Texts past MAX_PROBES (see `overflowing`): none but in a request built to collide. */
  private overflow: Map<string, E> | undefined;
  /** The hash (`hashText`) of the text `of` was last asked for: for callers that need it too. */
  hash = 0;

  constructor(
    /** Makes an entry (with the table). */
    private readonly make: () => E,
    /** Readies an entry for a text the request has not met. */
    private readonly reset: (entry: E) => void,
    private size = 1024,
  ) {
    this.hashes = new Int32Array(size);
    this.texts = new Array<string | undefined>(size).fill(undefined);
    this.entries = Array.from({ length: size }, make);
    this.used = new Int32Array(size);
  }

  /** The entry of `text` in this request (reset when the request had not met it). */
  of(text: string): E {
    const h = hashText(text);
    this.hash = h;
    const mask = this.size - 1;
    let slot = h & mask;
    for (let probes = 0; ; probes++) {
      const t = this.texts[slot];
      if (t === undefined) break;
      if (this.hashes[slot] === h && t === text) return this.entries[slot] as E;
      if (probes === MAX_PROBES) return this.overflowing(text);
      slot = (slot + 1) & mask;
    }
    // (A text kept in the Map before the table grew stays there.)
    const kept = this.overflow?.get(text);
    if (kept !== undefined) return kept;
    if (2 * (this.count + 1) > this.size) {
      this.grow();
      return this.of(text);
    }
    this.hashes[slot] = h;
    this.texts[slot] = text;
    this.used[this.count++] = slot;
    const e = this.entries[slot] as E;
    this.reset(e);
    return e;
  }

  /** The entry of a text whose probe sequence is full: in a Map, whose hash V8 seeds per process. */
  private overflowing(text: string): E {
    this.overflow ??= new Map();
    let e = this.overflow.get(text);
    if (e === undefined) {
      e = this.make();
      this.overflow.set(text, e);
    }
    return e;
  }

  /** Forgets the request's texts (and drops the references to them and in their entries). */
  clear(): void {
    this.overflow = undefined;
    for (let i = 0; i < this.count; i++) {
      const slot = this.used[i] as number;
      this.texts[slot] = undefined;
      this.reset(this.entries[slot] as E);
    }
    this.count = 0;
  }

  /** Twice the slots, the texts in use moved over with their entries (the same objects: callers may hold one). */
  private grow(): void {
    const old = { hashes: this.hashes, texts: this.texts, entries: this.entries, used: this.used };
    const count = this.count;
    this.size *= 2;
    const mask = this.size - 1;
    this.hashes = new Int32Array(this.size);
    this.texts = new Array<string | undefined>(this.size).fill(undefined);
    this.entries = new Array<E>(this.size);
    this.used = new Int32Array(this.size);
    this.count = 0;
    for (let i = 0; i < count; i++) {
      const from = old.used[i] as number;
      const h = old.hashes[from] as number;
      const text = old.texts[from] as string;
      let slot = h & mask;
      let probes = 0;
      while (this.texts[slot] !== undefined && probes++ < MAX_PROBES) slot = (slot + 1) & mask;
      if (this.texts[slot] !== undefined) {
        this.overflow ??= new Map();
        this.overflow.set(text, old.entries[from] as E);
        continue;
      }
      this.hashes[slot] = h;
      this.texts[slot] = text;
      this.entries[slot] = old.entries[from] as E;
      this.used[this.count++] = slot;
    }
    for (let slot = 0; slot < this.size; slot++) this.entries[slot] ??= this.make();
  }
}
