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
 * split on `;` (old CGI and Python readers). qs (express) adds two more:
 * a name that starts with a bracket group binds the name inside it
 * (`[role]=x` is `role`, `[]=x` is `0`), and a part is cut at its first
 * `]=` rather than its first `=` (`x=a]=b` binds `x=a]` to `b`). And the
 * `URLSearchParams` constructor drops a leading `?` (`?a=1` is `a`).
 * `values(name)` returns the values of every spelling; `spellings(name)`
 * lists the ones that are not exactly `name`, so a route that binds a name
 * can refuse the ambiguity.
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

/**
 * The names qs (express) binds a name starting with `[` to, where
 * `bindingName` does not see them: the first `[…]` group is the name itself
 * (`[role]`, `[role][x]` bind `role`; `[[a]]` binds `[`), and at depth 0
 * (`express.urlencoded()`) one outer pair of brackets is stripped (`[a][b]`
 * binds `a][b`). `''` (from `[]`) stands for the array indexes `0`, `1`, ….
 */
function bracketRoots(name: string): string[] {
  if (!name.startsWith('[')) return [];
  const roots: string[] = [];
  const group = /\[[^[\]]*]/.exec(name);
  if (group !== null) roots.push(group.index === 0 ? group[0].slice(1, -1) : name.slice(0, group.index));
  if (name.length > 1 && name.endsWith(']')) roots.push(name.slice(1, -1));
  return roots;
}

/** The array indexes qs binds `[]=x` to. */
const ARRAY_INDEX = /^(?:0|[1-9]\d*)$/;

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
  // Other readings: (name, value, spelling) an upstream may read that the grammar does not.
  let extra: SpelledPair[] | undefined;
  // The `;` reading: each `&` part's value may hold more pairs for readers that split on `;` too.
  if (raw.includes(';')) {
    extra = [];
    for (const part of raw.split(/[&;]/)) {
      if (part === '') continue;
      const pair = decodePart(part, part.indexOf('='));
      if (pair === undefined) return undefined;
      extra.push([...pair, `;${pair[0]}`]);
    }
  }
  // The `]=` reading (qs, so express): a part is cut at its first `]=` (`%5D=` too), not its first `=`.
  if (raw.includes(']=') || /%5d=/i.test(raw)) {
    extra ??= [];
    for (const part of raw.split('&')) {
      const cut = /(?:\]|%5d)=/i.exec(part);
      if (cut === null) continue;
      const eq = cut.index + cut[0].length - 1;
      if (eq === part.indexOf('=')) continue;
      const pair = decodePart(part, eq);
      if (pair === undefined) return undefined;
      extra.push([...pair, `]=${pair[0]}`]);
    }
  }
  // The leading `?` reading: `new URLSearchParams(text)` drops one (`/p??a=1` reaches it as `?a=1`).
  const first = raw.startsWith('?') ? raw.slice(1).split('&', 1)[0]! : '';
  if (first !== '') {
    const pair = decodePart(first, first.indexOf('='));
    if (pair === undefined) return undefined;
    extra ??= [];
    extra.push([...pair, `?${pair[0]}`]);
  }
  return new ParsedQuery(raw, pairs, extra);
}

/** Decodes a part cut at `eq` (-1: all name); undefined when malformed. */
function decodePart(part: string, eq: number): QueryPair | undefined {
  const name = decodeFormComponent(eq === -1 ? part : part.slice(0, eq));
  const value = decodeFormComponent(eq === -1 ? '' : part.slice(eq + 1));
  return name === undefined || value === undefined ? undefined : [name, value];
}

/** A pair read another way, with the spelling it is listed under. */
type SpelledPair = readonly [name: string, value: string, spelling: string];

interface IndexEntry {
  values: string[];
  spellings: Set<string>;
}

class ParsedQuery implements QueryView {
  private index: Map<string, IndexEntry> | undefined;
  /** What qs binds to every array index (`[]=x`). */
  private indexed: IndexEntry | undefined;

  constructor(
    readonly raw: string,
    readonly pairs: readonly QueryPair[],
    private readonly otherPairs: readonly SpelledPair[] | undefined,
  ) {}

  values(name: string): string[] {
    return this.lookup(name)?.values.slice() ?? [];
  }

  spellings(name: string): string[] {
    const found = this.lookup(name);
    if (found === undefined) return [];
    return [...found.spellings].filter((s) => s !== name);
  }

  private lookup(name: string): IndexEntry | undefined {
    if (this.index === undefined) this.index = this.buildIndex();
    const key = bindingName(name);
    const entry = this.index.get(key);
    if (this.indexed === undefined || !ARRAY_INDEX.test(key)) return entry;
    return {
      values: [...(entry?.values ?? []), ...this.indexed.values],
      spellings: new Set([...(entry?.spellings ?? []), ...this.indexed.spellings]),
    };
  }

  private buildIndex(): Map<string, IndexEntry> {
    const index = new Map<string, IndexEntry>();
    const file = (entry: IndexEntry, value: string, spelling: string): void => {
      entry.values.push(value);
      entry.spellings.add(spelling);
    };
    const add = (name: string, value: string, spelling: string): void => {
      const keys = new Set([bindingName(name)]);
      const roots = bracketRoots(name);
      for (const root of roots) if (root !== '') keys.add(bindingName(root));
      if (roots.includes('')) {
        this.indexed ??= { values: [], spellings: new Set() };
        file(this.indexed, value, spelling);
      }
      for (const key of keys) {
        let entry = index.get(key);
        if (entry === undefined) {
          entry = { values: [], spellings: new Set() };
          index.set(key, entry);
        }
        file(entry, value, spelling);
      }
    };
    for (const [name, value] of this.pairs) add(name, value, name);
    if (this.otherPairs !== undefined) {
      const seen = new Set(this.pairs.map(([n, v]) => `${n}\u0000${v}`));
      for (const [name, value, spelling] of this.otherPairs) {
        if (!seen.has(`${name}\u0000${value}`)) add(name, value, spelling);
      }
    }
    return index;
  }
}
