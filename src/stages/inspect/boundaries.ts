/**
 * Word boundaries that know letters beyond ASCII.
 *
 * RE2 (libddwaf's regex engine) reads `\b` and `\w` as ASCII: in
 * "Haßelt (1599)" it sees a word start between `ß` and `elt`, and the SQL
 * function `elt(` (CRS 4 test 942151-12, a real false positive). Every
 * rule that opens a keyword with `\b` or `(?:^|[^\w...])` flags a word
 * that merely ends in one after a letter like `ß`, `é` or `д`
 * ("Haßexec (", "Ébenchmark("), and one that closes it with `\b` a word
 * that goes on past it. No language these rules guard reads such a word
 * as the keyword: MySQL, PHP and the shell take every character beyond
 * ASCII into a name, JavaScript every letter. RE2 has no look-around, so
 * a boundary that knows letters cannot be written in place of every `\b`;
 * it can where nothing else of the match comes before it (or after it):
 * there the boundary may consume the character it looks at without
 * changing which texts match. This rewrites those:
 *
 * - a `\b` that opens a match, before a word character:
 *   `(?:^|B)`, B the class of `boundaryClass`;
 * - a `\b` that closes a match, after a word character: `(?:$|B)`;
 * - a class opening `(?:^|[^\w.$@])`: B without `.$@`.
 *
 * B is the ASCII characters that are no word character and a few signs
 * beyond ASCII (`SIGNS`): `¾` still ends a word, because in the US-ASCII
 * evasion (CRS 941310: `¼script¾alert(¢XSS¢)`) it stands for `>` with
 * its high bit set, and a non-breaking space does, which JavaScript reads
 * as a space (and PowerShell reads the General Punctuation block's spaces,
 * dashes and quotes as its own). Which signs depends on the language a
 * rule guards (`Signs`): PHP's lexer takes every byte beyond ASCII into a
 * name, so a PHP rule's B is ASCII alone (`none`); MySQL, PostgreSQL and
 * SQLite do too, and a SQL rule keeps only Latin-1's signs (`latin1`: a
 * non-breaking space, which other SQL dialects may read as a space). The
 * signs beyond Latin-1 are three-byte UTF-8 sequences, and in front of a
 * long list of names they cost RE2's automaton more states than libddwaf
 * lets it keep (see `engine.ts`, SPLIT): PHP's and SQL's function lists
 * cost 10-15 times as much per byte with them as without. A `\b` elsewhere (after a consuming atom, inside a repeated
 * group) is left as it is; `scripts/compile-crs.ts` writes one such rule
 * (941130) with B by hand, and its closing `\b` (after "formaction") is
 * left.
 *
 * Written here because no regex library rewrites RE2 syntax; the parse is
 * only as deep as the rewrite needs (groups, alternatives, classes,
 * escapes, quantifiers), and a regex it cannot read is left unchanged.
 */

/**
 * The characters beyond ASCII that end a word: Latin-1's signs (U+00A0-U+00BF: a non-breaking space,
 * `¼`, `¾`; `×`, `÷`), the General Punctuation block (spaces, dashes, quotes, line and paragraph
 * separators, zero-width characters), CJK punctuation, the byte-order mark and the fullwidth signs
 * (`＜`, `（`: Unicode normalisation makes them `<`, `(`). Every other character
 * beyond ASCII is taken for a letter. Listed rather than written `[^\w\pL\pM]`: RE2 compiles a class
 * of all letters in UTF-8 into an automaton that made a 20 KB text cost seven times as much.
 */
const SIGNS =
  '\\x{a0}-\\x{bf}\\x{d7}\\x{f7}\\x{2000}-\\x{206f}\\x{3000}-\\x{303f}\\x{feff}\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff20}\\x{ff3b}-\\x{ff40}\\x{ff5b}-\\x{ff65}';

/**
 * Which characters beyond ASCII end a word for a rule: every sign (`all`: JavaScript,
 * PowerShell, and rules of several languages), Latin-1's alone (`latin1`: SQL), or none (`none`:
 * PHP). See the header.
 */
export type Signs = 'all' | 'latin1' | 'none';

const SIGNS_OF: Readonly<Record<Signs, string>> = {
  all: SIGNS,
  latin1: '\\x{a0}-\\x{bf}\\x{d7}\\x{f7}',
  none: '',
};

/** A class of the ASCII characters that are no word character (but `except`), and the signs beyond ASCII. */
export function boundaryClass(except = '', signs: Signs = 'all'): string {
  let out = '';
  for (let c = 0; c < 128; c++) {
    const ch = String.fromCharCode(c);
    if (/\w/.test(ch) || except.includes(ch)) continue;
    const start = c;
    while (
      c + 1 < 128 &&
      !/\w/.test(String.fromCharCode(c + 1)) &&
      !except.includes(String.fromCharCode(c + 1))
    )
      c++;
    const hex = (n: number) => `\\x${n.toString(16).padStart(2, '0')}`;
    out += c === start ? hex(start) : `${hex(start)}-${hex(c)}`;
  }
  return `[${out}${SIGNS_OF[signs]}]`;
}

type Node =
  | { kind: 'atom'; text: string; quantifier: string }
  | { kind: 'group'; open: string; alt: Node[][]; quantifier: string };

class Unreadable extends Error {}

/** Parses an RE2 regex into alternatives of atoms and groups, each with its quantifier. */
function parse(s: string): Node[][] {
  let i = 0;
  const quantifier = (): string => {
    const rest = s.slice(i);
    const m = /^(?:[*+?]|\{\d+(?:,\d*)?\})\??/.exec(rest);
    if (m === null) return '';
    i += m[0].length;
    return m[0];
  };
  const alternation = (): Node[][] => {
    const alt: Node[][] = [[]];
    while (i < s.length) {
      const c = s[i];
      if (c === ')') return alt;
      if (c === '|') {
        i++;
        alt.push([]);
        continue;
      }
      const seq = alt[alt.length - 1] as Node[];
      if (c === '(') {
        const header = /^\((?:\?(?:[imsU-]*:|P?<\w+>))?/.exec(s.slice(i));
        const flags = /^\(\?[imsU-]+\)/.exec(s.slice(i));
        if (flags !== null) {
          i += flags[0].length;
          seq.push({ kind: 'atom', text: flags[0], quantifier: '' });
          continue;
        }
        const open = (header as RegExpExecArray)[0];
        i += open.length;
        const inner = alternation();
        if (s[i] !== ')') throw new Unreadable();
        i++;
        seq.push({ kind: 'group', open, alt: inner, quantifier: quantifier() });
        continue;
      }
      const start = i;
      if (c === '\\') {
        i += 2;
        if (s[i - 1] === 'x' && s[i] === '{') i = s.indexOf('}', i) + 1;
        else if (s[i - 1] === 'x') i += 2;
        else if (s[i - 1] === 'p' || s[i - 1] === 'P') i = s[i] === '{' ? s.indexOf('}', i) + 1 : i + 1;
        if (i === 0 || i > s.length) throw new Unreadable();
      } else if (c === '[') {
        i++;
        if (s[i] === '^') i++;
        if (s[i] === ']') i++;
        while (i < s.length && s[i] !== ']') {
          if (s[i] === '\\') i += 2;
          else if (s.startsWith('[:', i)) i = s.indexOf(':]', i) + 2;
          else i++;
        }
        if (i >= s.length) throw new Unreadable();
        i++;
      } else i++;
      const text = s.slice(start, i);
      seq.push({ kind: 'atom', text, quantifier: quantifier() });
    }
    return alt;
  };
  const alt = alternation();
  if (i !== s.length) throw new Unreadable();
  return alt;
}

/** Whether a node matches nothing: a flag group like `(?i)`. */
const isFlags = (n: Node): boolean => n.kind === 'atom' && /^\(\?[imsU-]+\)$/.test(n.text);

const WORD = /^[A-Za-z0-9_]$|^\\[wd]$/;

/** Whether a quantifier lets its atom or group match nothing (`?`, `*`, `{0,2}`). */
const optional = (q: string): boolean => /^(?:[?*]|\{0[,}])/.test(q);

/** Whether every match of the node, once, starts (or, `last`, ends) with an ASCII word character. */
function wordAtEdge(n: Node, last: boolean): boolean {
  if (n.kind === 'atom') return WORD.test(n.text);
  return n.alt.every((seq) => seqAtEdge(seq, last));
}

/** Whether every match of a sequence starts (ends) with an ASCII word character. */
function seqAtEdge(seq: readonly Node[], last: boolean): boolean {
  const items = seq.filter((x) => !isFlags(x));
  if (last) items.reverse();
  for (const n of items) {
    if (!wordAtEdge(n, last)) return false;
    if (!optional(n.quantifier)) return true;
  }
  return false;
}

/** Rewrites the boundaries of a sequence; `free`: nothing of the match comes before (after) it. */
function rewrite(alt: Node[][], startFree: boolean, endFree: boolean, cls: string): void {
  for (const seq of alt) {
    for (let k = 0; k < seq.length; k++) {
      const node = seq[k] as Node;
      const before = startFree && seq.slice(0, k).every(isFlags);
      const after = endFree && seq.slice(k + 1).every(isFlags);
      if (node.kind === 'group') {
        if (node.quantifier === '') rewrite(node.alt, before, after, cls);
        continue;
      }
      if (node.text !== '\\b' || node.quantifier !== '') continue;
      if (before && seqAtEdge(seq.slice(k + 1), false)) node.text = `(?:^|${cls})`;
      else if (after && seqAtEdge(seq.slice(0, k), true)) node.text = `(?:$|${cls})`;
    }
  }
}

function print(alt: Node[][]): string {
  return alt
    .map((seq) =>
      seq
        .map((n) =>
          n.kind === 'atom' ? `${n.text}${n.quantifier}` : `${n.open}${print(n.alt)})${n.quantifier}`,
        )
        .join(''),
    )
    .join('|');
}

/**
 * The regex with its boundaries made to know letters beyond ASCII, and the `signs` beyond ASCII that
 * end a word in the language its rule guards (see the header); unchanged if unreadable.
 */
export function unicodeBoundaries(regex: string, signs: Signs = 'all'): string {
  // `(?:^|[^\w.$@])`: the class, with the signs beyond ASCII, minus the characters it leaves out.
  const widened = regex.replace(
    /\(\?:\^\|\[\^\\w([^\]\\[-]*)\]\)/g,
    (_, except: string) => `(?:^|${boundaryClass(except, signs)})`,
  );
  let tree: Node[][];
  try {
    tree = parse(widened);
  } catch (err) {
    if (err instanceof Unreadable) return widened;
    throw err;
  }
  rewrite(tree, true, true, boundaryClass('', signs));
  return print(tree);
}

type Alternation = Node[][];

/** The alternations of a tree that a split may cut: two or more alternatives, no quantifier on them or around them, no flags in them. */
function cuttable(alt: Alternation, into: Alternation[]): void {
  if (alt.length >= 2 && !alt.some((seq) => seq.some(isFlags))) into.push(alt);
  for (const seq of alt)
    for (const n of seq) if (n.kind === 'group' && n.quantifier === '') cuttable(n.alt, into);
}

/** The tree with alternation `target` (found by identity) replaced by `by`. */
function substitute(alt: Alternation, target: Alternation, by: Alternation): Alternation {
  if (alt === target) return by;
  return alt.map((seq) =>
    seq.map((n) =>
      n.kind === 'group' && n.quantifier === '' ? { ...n, alt: substitute(n.alt, target, by) } : n,
    ),
  );
}

const size = (alt: Alternation): number => print(alt).length;

/** The tree as two, its largest cuttable alternation cut in two halves of about the same length. */
function halve(tree: Alternation): [Alternation, Alternation] | undefined {
  const found: Alternation[] = [];
  cuttable(tree, found);
  const target = found.reduce<Alternation | undefined>(
    (a, b) => (a === undefined || size(b) > size(a) ? b : a),
    undefined,
  );
  if (target === undefined) return undefined;
  const lengths = target.map((seq) => size([seq]));
  const total = lengths.reduce((a, b) => a + b, 0);
  let cut = 1;
  for (
    let sum = lengths[0] as number;
    cut < target.length - 1 && sum + (lengths[cut] as number) / 2 < total / 2;
    cut++
  )
    sum += lengths[cut] as number;
  return [substitute(tree, target, target.slice(0, cut)), substitute(tree, target, target.slice(cut))];
}

/**
 * A regex as `pieces` regexes (or fewer, if it has not so many alternatives) that match together
 * exactly where it matches: a search for `a(?:x|y)b` finds a match where a search for `a(?:x)b` or
 * one for `a(?:y)b` does, since an alternation that no quantifier repeats distributes over what
 * surrounds it. Each cut halves the largest alternation of the longest piece. An alternation
 * holding a flag group (`(?i)a|b`, whose flag reaches `b`) is never cut. `undefined` when the
 * regex cannot be cut or is unreadable. For the rules whose regex outgrows RE2's memory in
 * libddwaf (`engine.ts`, SPLIT).
 */
export function splitRegex(regex: string, pieces: number): string[] | undefined {
  let tree: Alternation;
  try {
    tree = parse(regex);
  } catch (err) {
    if (err instanceof Unreadable) return undefined;
    throw err;
  }
  const out: Alternation[] = [tree];
  while (out.length < pieces) {
    const longest = out.reduce((a, b) => (size(b) > size(a) ? b : a));
    const halves = halve(longest);
    if (halves === undefined) break;
    out.splice(out.indexOf(longest), 1, ...halves);
  }
  return out.length > 1 ? out.map((alt) => print(alt)) : undefined;
}
