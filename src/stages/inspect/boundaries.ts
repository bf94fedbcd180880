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
 * as a space. A `\b` elsewhere (after a consuming atom, inside a repeated
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

/** A class of the ASCII characters that are no word character (but `except`), and the SIGNS. */
export function boundaryClass(except = ''): string {
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
  return `[${out}${SIGNS}]`;
}

const OPENING = `(?:^|${boundaryClass()})`;
const CLOSING = `(?:$|${boundaryClass()})`;

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
function rewrite(alt: Node[][], startFree: boolean, endFree: boolean): void {
  for (const seq of alt) {
    for (let k = 0; k < seq.length; k++) {
      const node = seq[k] as Node;
      const before = startFree && seq.slice(0, k).every(isFlags);
      const after = endFree && seq.slice(k + 1).every(isFlags);
      if (node.kind === 'group') {
        if (node.quantifier === '') rewrite(node.alt, before, after);
        continue;
      }
      if (node.text !== '\\b' || node.quantifier !== '') continue;
      if (before && seqAtEdge(seq.slice(k + 1), false)) node.text = OPENING;
      else if (after && seqAtEdge(seq.slice(0, k), true)) node.text = CLOSING;
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

/** The regex with its boundaries made to know letters beyond ASCII (see the header); unchanged if unreadable. */
export function unicodeBoundaries(regex: string): string {
  // `(?:^|[^\w.$@])`: the class, with the signs beyond ASCII, minus the characters it leaves out.
  const widened = regex.replace(
    /\(\?:\^\|\[\^\\w([^\]\\[-]*)\]\)/g,
    (_, except: string) => `(?:^|${boundaryClass(except)})`,
  );
  let tree: Node[][];
  try {
    tree = parse(widened);
  } catch (err) {
    if (err instanceof Unreadable) return widened;
    throw err;
  }
  rewrite(tree, true, true);
  return print(tree);
}
