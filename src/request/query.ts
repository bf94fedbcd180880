/**
 * The query string under one grammar, read once per request.
 *
 * Grammar (the WHATWG `application/x-www-form-urlencoded` one, strictly):
 * - the string is split on `&`; empty parts are skipped;
 * - each part splits at its first `=` (no `=`: the value is empty);
 * - in names and values `+` is a space, then `%XX` escapes are decoded as
 *   UTF-8; a malformed escape or invalid UTF-8 makes the whole query
 *   undecodable (the gateway refuses it rather than guess as an upstream
 *   might).
 *
 * Upstream frameworks read more into a name than that grammar does, and a
 * rule bound to a parameter must see every value an upstream may bind to
 * it. So a name also has *spellings*: `name[]`, `name[0]`, `name[x]` (qs,
 * PHP, Rails), the same name in another letter case (ASP.NET, some Java
 * binders), PHP's mangling of `.` and space to `_`, and parts of a value
 * split on `;` (old CGI and Python readers). `values(name)` returns the
 * values of every spelling; `spellings(name)` lists the ones that are not
 * exactly `name`, so a route that binds a name can refuse the ambiguity.
 *
 * Written by hand: `URLSearchParams` decodes malformed escapes silently
 * (U+FFFD), which is the disagreement this module exists to avoid.
 */

export type QueryPair = readonly [name: string, value: string];

export interface QueryView {
  /** The raw query string as received, without `?`. */
  readonly raw: string;
  /** Decoded pairs in order, under the grammar above. */
  readonly pairs: readonly QueryPair[];
  /** Every value an upstream may bind to `name`, under every spelling. */
  values(name: string): string[];
  /** The spellings of `name` present other than `name` itself (`name[]`, `NAME`, `a;name=…`). */
  spellings(name: string): string[];
}

/** Decodes one name or value; undefined when malformed. */
export function decodeFormComponent(text: string): string | undefined {
  if (!text.includes('%') && !text.includes('+')) return text;
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/**
 * Splits `a=1&b=2` into decoded pairs. Undefined when any escape or UTF-8
 * sequence is malformed. Also the grammar of form bodies.
 */
export function parseFormPairs(text: string): QueryPair[] | undefined {
  const out: QueryPair[] = [];
  if (text === '') return out;
  for (const part of text.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decodeFormComponent(eq === -1 ? part : part.slice(0, eq));
    const value = decodeFormComponent(eq === -1 ? '' : part.slice(eq + 1));
    if (name === undefined || value === undefined) return undefined;
    out.push([name, value]);
  }
  return out;
}

/** The name a framework binds a query name to: brackets cut, PHP-mangled, case-folded. */
export function bindingName(name: string): string {
  const bracket = name.indexOf('[');
  const base = bracket > 0 ? name.slice(0, bracket) : name;
  // PHP turns ' ', '.' (and '[' when unbalanced) in names into '_'.
  return base.replace(/[ .]/g, '_').toLowerCase();
}

const EMPTY: QueryView = {
  raw: '',
  pairs: [],
  values: () => [],
  spellings: () => [],
};

/** Reads a raw query string; undefined when it cannot be decoded. */
export function parseQuery(raw: string): QueryView | undefined {
  if (raw === '') return EMPTY;
  const pairs = parseFormPairs(raw);
  if (pairs === undefined) return undefined;
  // The `;` reading: each `&` part's value may hold more pairs for readers that split on `;` too.
  let extra: QueryPair[] | undefined;
  if (raw.includes(';')) {
    extra = [];
    for (const part of raw.split(/[&;]/)) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      const name = decodeFormComponent(eq === -1 ? part : part.slice(0, eq));
      const value = decodeFormComponent(eq === -1 ? '' : part.slice(eq + 1));
      if (name === undefined || value === undefined) return undefined;
      extra.push([name, value]);
    }
  }
  return new ParsedQuery(raw, pairs, extra);
}

class ParsedQuery implements QueryView {
  private index: Map<string, { values: string[]; spellings: Set<string> }> | undefined;

  constructor(
    readonly raw: string,
    readonly pairs: readonly QueryPair[],
    private readonly semicolonPairs: readonly QueryPair[] | undefined,
  ) {}

  values(name: string): string[] {
    return this.lookup(name)?.values.slice() ?? [];
  }

  spellings(name: string): string[] {
    const found = this.lookup(name);
    if (found === undefined) return [];
    return [...found.spellings].filter((s) => s !== name);
  }

  private lookup(name: string): { values: string[]; spellings: Set<string> } | undefined {
    if (this.index === undefined) this.index = this.buildIndex();
    return this.index.get(bindingName(name));
  }

  private buildIndex(): Map<string, { values: string[]; spellings: Set<string> }> {
    const index = new Map<string, { values: string[]; spellings: Set<string> }>();
    const add = (name: string, value: string, spelling: string): void => {
      const key = bindingName(name);
      let entry = index.get(key);
      if (entry === undefined) {
        entry = { values: [], spellings: new Set() };
        index.set(key, entry);
      }
      entry.values.push(value);
      entry.spellings.add(spelling);
    };
    for (const [name, value] of this.pairs) add(name, value, name);
    if (this.semicolonPairs !== undefined) {
      const seen = new Set(this.pairs.map(([n, v]) => `${n}\u0000${v}`));
      for (const [name, value] of this.semicolonPairs) {
        if (!seen.has(`${name}\u0000${value}`)) add(name, value, `;${name}`);
      }
    }
    return index;
  }
}
