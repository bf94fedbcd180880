/**
 * Plain values, and the rules that cannot match them.
 *
 * Most of what a request carries is plain: words, numbers, identifiers,
 * e-mail addresses (`red running shoes`, `SKU-1000`, `price_asc`,
 * `sean@example.com`). A plain value is made only of the characters PLAIN
 * (ASCII letters and digits, space, `_ . , @ -`). Every transformation the
 * rules use except path normalisation and base64 decoding maps plain text to
 * plain text (the decoders need `%`, `+`, `&` or ``; lowercasing, comment
 * and NUL removal and shell unescaping only drop or lower characters), and
 * most CRS regexes need a character that is not plain (`<`, `'`, `(`, `;`,
 * `/` ...). Such a regex can never match a plain value, however it is
 * transformed: the engine gives plain values only to the conditions that
 * can match them (`canMatchPlain`), which is most of the saving in CPU time.
 *
 * Values beyond ASCII have charsets too: LETTERS, text with letters and
 * marks of most scripts (`Seán`, `Müller`, `Москва`, `東京`), and WORDS,
 * such text without quotes, parentheses or line breaks. libddwaf's
 * transformations leave those letters letters (its NFKD makes some ASCII
 * letters), and a regex needing `<` or `;` needs it still; but classes like
 * `[^a-z]` or `\W` match them, which the analysis tests every atom for.
 *
 * The analysis is conservative: a regex is taken to require a non-plain
 * character only when every way of matching it consumes one — each
 * alternative needs one, and a sequence needs one when one of its
 * (non-optional) parts does. Any construct it does not understand counts
 * as "can match plain".
 */

/** A set of characters values are sorted by: every value made only of them. */
export interface Charset {
  readonly name: string;
  readonly chars: string;
  readonly test: RegExp;
  /** Transformations that can join two words of a value of the charset into one (see `requiredWords`). */
  readonly joiners: readonly string[];
  /**
   * Transformations that leave a value of the ASCII charsets as it is (IDENTITY_ON_PLAIN in
   * `engine.ts`) but may change a value of this one: `unicode_normalize` on LETTERS.
   */
  readonly unsteady: readonly string[];
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** The plain characters: words, numbers, identifiers, e-mail addresses. */
export const PLAIN: Charset = {
  name: 'plain',
  chars: `${ALNUM} _.,@-`,
  test: /^[A-Za-z0-9 _.,@-]*$/,
  joiners: ['removeWhitespace'],
  unsteady: [],
};

/**
 * Plain, with what URLs, paths, media types, dates and language tags add
 * (`/ : ; = ?`, and `!`): `application/json`, `en-GB,en;q=0.9`,
 * `https://example.com/a?x=1`. Not `%`, `+` or `&`: decoding changes them.
 */
export const URLISH: Charset = {
  name: 'urlish',
  chars: `${PLAIN.chars}/:;=?!`,
  test: /^[A-Za-z0-9 _.,@/:;=?!-]*$/,
  joiners: ['removeWhitespace'],
  unsteady: [],
};

/**
 * URL-like, with quotes, parentheses, line breaks and tabs: prose (`O'Brien`, `"fine" (mostly)`),
 * paragraphs and lines, and User-Agent strings. Shell unescaping drops quotes, which can join
 * words. (Without line breaks, every paragraph of more than one line was read by every rule:
 * 10,000 characters of prose in lines cost 7.4 ms of CPU instead of 4.2.)
 */
export const TEXT: Charset = {
  name: 'text',
  chars: `${URLISH.chars}'"()\n\r\t`,
  test: /^[A-Za-z0-9 _.,@/:;=?!'"()\n\r\t-]*$/,
  joiners: ['removeWhitespace', 'shell_unescape', 'unshell'],
  unsteady: [],
};

/**
 * Where the letters and marks beyond ASCII that LETTERS may hold are taken from: Latin (with
 * Latin-1, Extended-A and B, and Extended Additional), the combining diacritical marks, Greek,
 * Cyrillic, Hebrew, Arabic, Hangul (syllables, and the jamo they decompose to), kana and the CJK
 * ideographs. Names, addresses and prose in most of the world's languages.
 */
const SCRIPTS: readonly (readonly [number, number])[] = [
  [0x00c0, 0x024f],
  [0x0300, 0x036f],
  [0x0370, 0x03ff],
  [0x0400, 0x052f],
  [0x0591, 0x05f4],
  [0x0610, 0x06ff],
  [0x1100, 0x11ff],
  [0x1e00, 0x1eff],
  [0x3041, 0x30ff],
  [0x4e00, 0x9fff],
  [0xac00, 0xd7a3],
];

/**
 * Punctuation beyond ASCII that prose in many languages is written with, and that libddwaf's
 * `unicode_normalize` leaves as it is (no compatibility decomposition, not lumped to ASCII): curly
 * double quotes and guillemets, Spanish `¿ ¡`, bullets and middle dots, CJK full stops, commas,
 * brackets and the katakana middle dot, Arabic comma, question mark and semicolon. Not the curly
 * single quotes, dashes, `…`, `‹ ›` or `〈 〉`, which it lumps to `'`, `-`, `...`, `<` and `>`
 * (signs the rules and the word filter look for). Without these, a value holding one was read by
 * every condition: "¿Pueden envolverlo para regalo? ¡Gracias!" cost 39 µs a value, 9 µs without
 * `¿ ¡`.
 */
export const PUNCTUATION =
  '\u201c\u201d\u201e\u00ab\u00bb\u00bf\u00a1\u2022\u00b7\u3001\u3002\u300c\u300d\u300e\u300f\u3010\u3011\u300a\u300b\u060c\u061b\u061f\u30fb';

/**
 * Punctuation beyond ASCII that libddwaf's `unicode_normalize` lumps to a sign of LETTERS: the curly
 * single quotes, which it makes `'` (the apostrophe of "don’t" typed on a phone). A value holding
 * one is taken to hold that sign by the word filter (`wordTest` in `engine.ts`), since a chain may
 * make the sign of it. Without them, such a value was read by every condition: "I don’t know,
 * maybe later" cost 33 µs a value, 14 µs with a straight apostrophe.
 */
export const LUMPED: Readonly<Record<string, string>> = { '\u2018': "'", '\u2019': "'" };

/**
 * The letters and marks beyond ASCII of LETTERS: the characters of SCRIPTS that are letters or
 * marks (`\p{L}`, `\p{M}`: no spaces, punctuation, symbols, digits or format characters), and
 * PUNCTUATION and LUMPED, less
 * - any that is an ASCII character's case variant under Unicode case folding (`ſ` is an `s` and
 *   the Kelvin sign a `k` to a case-insensitive RE2 regex, which libddwaf's ASCII-only lowercasing
 *   and the word filter would not see), and
 * - any whose compatibility decomposition (NFKD) or JavaScript lower or upper case holds a
 *   character that is neither an ASCII letter or digit nor one of the set (to a fixpoint): so
 *   fullwidth forms (`＜` is `<`, `＇` is `'`) never get in, a letter decomposing to
 *   ASCII letters (`é`, `ǆ`) does, and what `unicode_normalize` makes of the set stays in it.
 * libddwaf's `unicode_normalize` is utf8proc's decomposition with compatibility mappings, marks
 * stripped, punctuation lumped to ASCII and a case fold undone: `plain.test.ts` runs it on every
 * character of the set and checks that only ASCII letters and digits and the set come out.
 */
function lettersBeyondAscii(): string {
  // Each candidate with its decomposition and case forms (computed once: this runs at start-up).
  const forms = new Map<string, string>();
  for (const [from, to] of SCRIPTS) {
    for (let c = from; c <= to; c++) {
      const ch = String.fromCharCode(c);
      if (/[\p{L}\p{M}]/u.test(ch) && !/\p{ASCII}/iu.test(ch))
        forms.set(ch, `${ch.normalize('NFKD')}${ch.toLowerCase()}${ch.toUpperCase()}`);
    }
  }
  for (const ch of PUNCTUATION)
    forms.set(ch, `${ch.normalize('NFKD')}${ch.toLowerCase()}${ch.toUpperCase()}`);
  const alnum = (d: string) => /^[A-Za-z0-9]$/.test(d);
  for (let changed = true; changed; ) {
    changed = false;
    for (const [ch, form] of forms) {
      if (form === ch + ch + ch || [...form].every((d) => forms.has(d) || alnum(d))) continue;
      forms.delete(ch);
      changed = true;
    }
  }
  // And U+FFFD, the mark a long value's windows are cut with (`windows` in engine.ts): a symbol, in
  // no script, but with no case variant and a decomposition of its own, as the set's letters.
  // Without it every window of a long value held a character beyond the set, and was read by every
  // condition (10,000 characters of English prose cost 7.3 ms of CPU instead of 4.2).
  return `${[...forms.keys()].join('')}${Object.keys(LUMPED).join('')}\uFFFD`;
}

/** A regex class body for a string's characters (all in the BMP), as runs of code points. */
function rangesOf(chars: string): string {
  const codes = [...chars].map((c) => c.charCodeAt(0)).sort((a, b) => a - b);
  const hex = (c: number) => `\\u${c.toString(16).padStart(4, '0')}`;
  let out = '';
  for (let i = 0; i < codes.length; ) {
    let j = i;
    while (j + 1 < codes.length && codes[j + 1] === (codes[j] as number) + 1) j++;
    out += i === j ? hex(codes[i] as number) : `${hex(codes[i] as number)}-${hex(codes[j] as number)}`;
    i = j + 1;
  }
  return out;
}

/** The letters and marks beyond ASCII that LETTERS holds, and U+FFFD (see `lettersBeyondAscii`). */
export const BEYOND_ASCII: string = lettersBeyondAscii();

/**
 * Text, with letters and marks beyond ASCII (BEYOND_ASCII): `Seán O'Brien`, `Müller`,
 * `Αθήνα`, `Москва`, `東京都`. To libddwaf's transformations these are just more letters: its
 * lowercasing and decoders change only ASCII, and `unicode_normalize` turns them into ASCII
 * letters and letters of the set (`é` → `e`), which may join words (`se\u0301lect` → `select`).
 * To RE2 (UTF-8, case folding by Unicode) they are characters a class like `[^a-z]`, `\W` or
 * `.` matches, which the analysis tests each atom on (`atomMatchesPlain`).
 */
export const LETTERS: Charset = {
  name: 'letters',
  chars: `${TEXT.chars}${BEYOND_ASCII}`,
  test: new RegExp(`^[A-Za-z0-9 _.,@/:;=?!'"()\\n\\r\\t\\-${rangesOf(BEYOND_ASCII)}]*$`),
  joiners: [...TEXT.joiners, 'unicode_normalize'],
  unsteady: ['unicode_normalize'],
};

/** BEYOND_ASCII without the LUMPED quotes (WORDS holds no `'` for them to become). */
const UNLUMPED: string = [...BEYOND_ASCII].filter((c) => !(c in LUMPED)).join('');

/**
 * URL-like, with the letters and marks beyond ASCII (BEYOND_ASCII, but for the LUMPED quotes,
 * which `unicode_normalize` makes `'`): names, addresses and prose in most of the world's
 * languages without TEXT's quotes, parentheses and line breaks (`Jürgen Müller`, `Hauptstraße 5,
 * 10115 Berlin`, `Οδός Ερμού 10, Αθήνα`, `東京都千代田区`). Fewer conditions can match these than
 * LETTERS's values, as fewer can match URLISH's than TEXT's: at paranoia level 1, 8 conditions
 * on arguments read every such value unfiltered, against 29 for LETTERS.
 */
export const WORDS: Charset = {
  name: 'words',
  chars: `${URLISH.chars}${UNLUMPED}`,
  test: new RegExp(`^[A-Za-z0-9 _.,@/:;=?!\\-${rangesOf(UNLUMPED)}]*$`),
  joiners: [...URLISH.joiners, 'unicode_normalize'],
  unsteady: ['unicode_normalize'],
};

/** Whether a string is made of the charset's characters (for the analysis of rules). */
export function isPlain(text: string, charset: Charset = PLAIN): boolean {
  return charset.test.test(text);
}

/**
 * Whether a value is sorted into the charset: made of its characters, and
 * without `--`, the one comment marker they can spell — so `remove_comments`
 * leaves it as it is (IDENTITY_ON_PLAIN in `engine.ts`).
 */
export function inCharset(text: string, charset: Charset): boolean {
  return charset.test.test(text) && !text.includes('--');
}

/**
 * Transformations that keep a value in every charset (every one but base64 decoding): they change
 * only ASCII (the decoders need `%`, `&` or `\\`), but for `unicode_normalize` on LETTERS, whose
 * characters it maps into LETTERS (`lettersBeyondAscii`).
 */
const PLAIN_SAFE = new Set([
  'lowercase',
  'url_decode',
  'url_decode_iis',
  'html_entity_decode',
  'js_decode',
  'css_decode',
  'remove_nulls',
  'compress_whitespace',
  'remove_comments',
  'unicode_normalize',
  'shell_unescape',
  // Drop `.` and `..` segments, squeeze slashes, turn backslashes into slashes: never a character that
  // was not there, but for a slash (in URLISH) from a backslash (in neither charset).
  'normalize_path',
  'normalize_path_win',
  // Portcullis's own (`transforms.ts`).
  'removeWhitespace',
  'replaceComments',
  'urlDecode',
  'urlDecodeUni',
  // Drops `\ ' " ^`, glued `$x` expansions and `[c]` globs: only quotes are in a charset (TEXT, where it is a joiner).
  'unshell',
  // Changes only values with `<?`, in neither charset.
  'removeXmlDeclarations',
  // Leaves a value as it is, or empties it.
  'sqlSigned',
]);

/** Whether a chain of transformations keeps plain text plain. */
export function keepsPlain(transformers: readonly string[]): boolean {
  return transformers.every((t) => PLAIN_SAFE.has(t));
}

const atomCache = new Map<string, boolean>();

/**
 * Whether a single-character atom (`a`, `\s`, `[^<>]`, `\x3c`) matches some character of the
 * charset. Case-insensitive always: a superset of what the atom matches either way; and both by
 * JavaScript's legacy case mapping and by Unicode case folding (the `u` flag, which RE2 follows),
 * so that a character matches when either says so. Searched for in the charset's characters as
 * one string: the atom matches one character, so it occurs there exactly when one matches it.
 */
function atomMatchesPlain(atom: string, charset: Charset): boolean {
  const key = `${charset.name} ${atom}`;
  let known = atomCache.get(key);
  if (known === undefined) {
    try {
      known = new RegExp(`(?:${atom})`, 'is').test(charset.chars);
      if (!known) {
        // The `u` flag refuses identity escapes of punctuation (`\'`): spelled as code points.
        const unicode = atom.replace(
          /\\([^A-Za-z0-9])/g,
          (_, c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
        );
        known = new RegExp(`(?:${unicode})`, 'isu').test(charset.chars);
      }
    } catch {
      known = true;
    }
    atomCache.set(key, known);
  }
  return known;
}

class Unknown extends Error {}

/**
 * What the analysis knows of a piece of a regex: whether every match
 * consumes a non-plain character (`needs`); the exact (lower-case) strings
 * it matches, when they are few (`exact`); strings one of which every match
 * contains (`req`). `null` for "not known".
 */
interface Info {
  readonly needs: boolean;
  readonly exact: readonly string[] | null;
  readonly req: readonly string[] | null;
}

const MAX_EXACT = 64;
const UNKNOWN: Info = { needs: false, exact: null, req: null };
const EMPTY: Info = { needs: false, exact: [''], req: null };

/** How useful a set of required strings is as a filter: the shortest string's length (0 for none). */
function quality(set: readonly string[] | null): number {
  if (set === null || set.length === 0) return 0;
  let q = Number.POSITIVE_INFINITY;
  for (const x of set) q = Math.min(q, x.length);
  return q;
}

function better(
  a: readonly string[] | null,
  b: readonly string[] | null,
  measure: Quality = quality,
): readonly string[] | null {
  return measure(b) > measure(a) ? b : a;
}

/** A single-character atom's info. */
function charInfo(atom: string, chars: readonly string[] | null, charset: Charset): Info {
  const exact = chars !== null && chars.length <= 4 ? chars : null;
  return { needs: !atomMatchesPlain(atom, charset), exact, req: exact };
}

/** The ASCII characters (lower-cased) a class matches, or null when it may match others. */
function classChars(cls: string): string[] | null {
  if (
    cls.startsWith('[^') ||
    /\\[sSwWdD]|\\u00[89a-f]|\\u0[1-9a-f]|\\u[1-9a-f]/i.test(cls) ||
    /\P{ASCII}/u.test(cls)
  )
    return null;
  const re = new RegExp(`^${cls}$`, 'i');
  const out = new Set<string>();
  for (let c = 0; c < 128; c++) {
    const ch = String.fromCharCode(c);
    if (re.test(ch)) out.add(ch.toLowerCase());
  }
  return [...out];
}

/** How useful a set of required strings is as a filter (higher is better). */
type Quality = (set: readonly string[] | null) => number;

/** A recursive-descent reading of an RE2 regex (see Info). */
class Reader {
  private i = 0;
  constructor(
    private readonly s: string,
    private readonly charset: Charset,
    /** Which of two required sets to keep: any is right, this is what makes the better filter. */
    private readonly measure: Quality = quality,
  ) {}

  all(): Info {
    const r = this.alternation();
    if (this.i !== this.s.length) throw new Unknown();
    return r;
  }

  private alternation(): Info {
    const branches = [this.sequence()];
    while (this.s[this.i] === '|') {
      this.i++;
      branches.push(this.sequence());
    }
    if (branches.length === 1) return branches[0] as Info;
    const needs = branches.every((b) => b.needs);
    // A branch that needs a non-plain character never matches plain text: it adds nothing to what must occur.
    const live = branches.filter((b) => !b.needs);
    const exact = live.every((b) => b.exact !== null) ? live.flatMap((b) => b.exact ?? []) : null;
    const req = live.every((b) => (b.req ?? b.exact) !== null)
      ? live.flatMap((b) => b.req ?? b.exact ?? [])
      : null;
    return { needs, exact: exact !== null && exact.length <= MAX_EXACT ? exact : null, req };
  }

  private sequence(): Info {
    let needs = false;
    // `run`: the exact strings of the items since the last one that broke the run (so every match
    // contains one of them); `whole`: whether the run is the whole sequence so far.
    let run: readonly string[] = [''];
    let whole = true;
    let req: readonly string[] | null = null;
    while (this.i < this.s.length && this.s[this.i] !== '|' && this.s[this.i] !== ')') {
      const atom = this.atom();
      const { min, max } = this.quantifier();
      let item: Info = atom;
      // An optional item that needs a character outside the charset matches only the empty string
      // on a value of the charset: the run goes on through it (`j(?:\t|&#9;)*a` holds `ja`).
      if (min === 0) item = atom.needs ? EMPTY : { needs: false, exact: null, req: null };
      else if (max !== 1) item = { needs: atom.needs, exact: null, req: atom.req ?? atom.exact };
      if (item.needs) needs = true;
      if (item.exact !== null && run.length * item.exact.length <= MAX_EXACT) {
        const product: string[] = [];
        for (const x of run) for (const y of item.exact) product.push(x + y);
        run = product;
        req = better(req, run, this.measure);
      } else {
        req = better(better(req, run, this.measure), item.req ?? item.exact, this.measure);
        run = item.exact ?? [''];
        whole = false;
      }
    }
    return { needs, exact: whole ? run : null, req: better(req, run, this.measure) };
  }

  /** The counts of a quantifier after an atom (1, 1 without one). */
  private quantifier(): { min: number; max: number } {
    let min = 1;
    let max = 1;
    for (;;) {
      const c = this.s[this.i];
      if (c === '*' || c === '?') {
        min = 0;
        max = c === '*' ? Number.POSITIVE_INFINITY : max;
        this.i++;
      } else if (c === '+') {
        max = Number.POSITIVE_INFINITY;
        this.i++;
      } else if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.s.slice(this.i));
        if (!m) return { min, max };
        min = min === 0 ? 0 : Number(m[1]);
        max = m[2] === undefined ? Number(m[1]) : m[3] === '' ? Number.POSITIVE_INFINITY : Number(m[3]);
        if (max !== 1) max = Number.POSITIVE_INFINITY;
        this.i += m[0].length;
      } else return { min, max };
      // Lazy or possessive marks.
      if (this.s[this.i] === '?' || this.s[this.i] === '+') this.i++;
    }
  }

  /** Reads one atom. */
  private atom(): Info {
    const s = this.s;
    const c = s[this.i];
    if (c === '(') {
      this.i++;
      if (s[this.i] === '?') {
        const flags = /^\?([a-zA-Z-]*)(\)|:)/.exec(s.slice(this.i));
        const named = /^\?P?<[A-Za-z_][A-Za-z0-9_]*>/.exec(s.slice(this.i));
        if (flags) {
          this.i += flags[0].length;
          if (flags[2] === ')') return EMPTY; // (?i): zero width
        } else if (named) this.i += named[0].length;
        else throw new Unknown();
      }
      const r = this.alternation();
      if (s[this.i] !== ')') throw new Unknown();
      this.i++;
      return r;
    }
    if (c === '^' || c === '$') {
      this.i++;
      return EMPTY;
    }
    if (c === '.') {
      this.i++;
      return UNKNOWN;
    }
    if (c === '[') {
      const cls = this.charClass();
      return charInfo(cls, classChars(cls), this.charset);
    }
    if (c === '\\') {
      const e = this.escape();
      if (e === '') return EMPTY; // zero width
      if (/^\\[dDwWsS]$/.test(e)) return { ...UNKNOWN, needs: !atomMatchesPlain(e, this.charset) };
      return charInfo(e, classChars(`[${e}]`), this.charset);
    }
    if (c === undefined || c === '*' || c === '+' || c === '?') throw new Unknown();
    this.i++;
    // A character beyond ASCII has case variants beyond JavaScript's lower case: no exact strings.
    const exact = c.charCodeAt(0) < 128 ? [c.toLowerCase()] : null;
    return charInfo(/[\w\s]/.test(c) ? c : `\\${c}`, exact, this.charset);
  }

  /** An escape as a JavaScript atom, or '' for a zero-width one. */
  private escape(): string {
    const s = this.s;
    const n = s[this.i + 1];
    if (n === undefined) throw new Unknown();
    if (n === 'b' || n === 'B' || n === 'A' || n === 'z') {
      this.i += 2;
      return '';
    }
    if (n === 'x') {
      const m = /^\\x(?:([0-9a-fA-F]{2})|\{([0-9a-fA-F]+)\})/.exec(s.slice(this.i));
      if (!m) throw new Unknown();
      this.i += m[0].length;
      const code = Number.parseInt(m[1] ?? m[2] ?? '', 16);
      if (code > 0xffff) throw new Unknown();
      return `\\u${code.toString(16).padStart(4, '0')}`;
    }
    if (/[dDwWsS]/.test(n)) {
      this.i += 2;
      return `\\${n}`;
    }
    if (/[A-Za-z0-9]/.test(n) && !'tnrfv'.includes(n)) throw new Unknown(); // \p, \Q, \C, octal ...
    this.i += 2;
    return `\\${n}`;
  }

  /** A bracketed class, as its source (converted for JavaScript). */
  private charClass(): string {
    const s = this.s;
    let j = this.i + 1;
    let out = '[';
    if (s[j] === '^') {
      out += '^';
      j++;
    }
    if (s[j] === ']') {
      out += '\\]';
      j++;
    }
    for (;;) {
      const c = s[j];
      if (c === undefined) throw new Unknown();
      if (c === ']') break;
      if (c === '[') {
        if (s[j + 1] === ':') throw new Unknown(); // POSIX classes
        out += '\\[';
        j++;
        continue;
      }
      if (c === '\\') {
        const n = s[j + 1];
        if (n === undefined) throw new Unknown();
        if (n === 'x') {
          const m = /^\\x(?:([0-9a-fA-F]{2})|\{([0-9a-fA-F]+)\})/.exec(s.slice(j));
          if (!m) throw new Unknown();
          const code = Number.parseInt(m[1] ?? m[2] ?? '', 16);
          if (code > 0xffff) throw new Unknown();
          out += `\\u${code.toString(16).padStart(4, '0')}`;
          j += m[0].length;
          continue;
        }
        if (/[A-Za-z0-9]/.test(n) && !'dDwWsStnrfv'.includes(n)) throw new Unknown();
        out += `\\${n}`;
        j += 2;
        continue;
      }
      out += c;
      j++;
    }
    this.i = j + 1;
    return `${out}]`;
  }
}

/** Whether every match of an RE2 regex consumes a character not in the charset (false when unsure). */
export function needsNonPlain(regex: string, charset: Charset = PLAIN): boolean {
  return readRegex(regex, charset) === 'needs';
}

/**
 * Lower-case words of which every value of the charset the regex can match
 * (after a chain that keeps it in the charset) contains one, or null when
 * there are none to be had. A word is a run of letters, digits and `_ . @ -`
 * — what survives every charset-keeping transformation as a substring of
 * the value as received (they only lower case, drop trailing comments,
 * squeeze or replace spaces, commas and semicolons, and drop a space
 * before a slash).
 */
export function requiredWords(regex: string, charset: Charset = PLAIN): string[] | null {
  let info: Info;
  try {
    info = new Reader(regex, charset).all();
  } catch {
    return null;
  }
  if (info.needs) return [];
  return wordsOf(info.req ?? info.exact, charset);
}

/** The longest word of each string of a set in the charset (others cannot occur); null if one has none of MIN_WORD. */
export function wordsOf(set: readonly string[] | null, charset: Charset = PLAIN): string[] | null {
  if (set === null) return null;
  const out = new Set<string>();
  for (const x of set) {
    if (!isPlain(x, charset)) continue;
    let best = '';
    for (const w of x.toLowerCase().split(/[^a-z0-9_.@-]/)) if (w.length > best.length) best = w;
    if (best.length < MIN_WORD) return null;
    out.add(best);
  }
  return [...out];
}

/**
 * The shortest word worth filtering on. Two characters still pay: `..` (path traversal) or `nc`
 * and `sh` (reverse shells) keep most values away from a condition, and since each word-filtered
 * condition reads values through an address of its own (`plan` in `engine.ts`), a common short
 * word costs only the values that hold it.
 */
const MIN_WORD = 2;

/** What the analysis makes of a regex: it needs a character not in the charset, it may not, or it was not understood. */
export function readRegex(regex: string, charset: Charset = PLAIN): 'needs' | 'may-not' | 'unknown' {
  try {
    return new Reader(regex, charset).all().needs ? 'needs' : 'may-not';
  } catch {
    return 'unknown';
  }
}

/** The characters without one of which libinjection's XSS check never fires (see `canMatchPlain`). */
const XSS_NEEDS = '<=\'"`';

interface Condition {
  operator: string;
  parameters: { regex?: string; list?: string[] };
}

/** Whether a condition's operator can match a value of the charset (after a chain that keeps it there). */
export function canMatchPlain(condition: Condition, charset: Charset = PLAIN): boolean {
  switch (condition.operator) {
    case 'match_regex':
      return condition.parameters.regex === undefined || !needsNonPlain(condition.parameters.regex, charset);
    case 'phrase_match':
      return (condition.parameters.list ?? []).some((w) => isPlain(w, charset));
    case 'is_xss':
      // libinjection's XSS check tokenises the value as HTML from five starting states and fires
      // only on a tag, doctype or comment (which need `<`) or on an attribute value after a
      // dangerous attribute name (which needs `=`); started inside a quoted value, it leaves that
      // value only at its closing quote (`'`, `"` or a backtick). A value with none of them is
      // text, attribute names or one quoted value, which never fire (libinjection_xss.c, html5.c).
      return [...XSS_NEEDS].some((c) => charset.chars.includes(c));
    default:
      return true;
  }
}

/** The words a condition's matches on values of the charset contain one of (null: no such filter). */
export function conditionWords(c: Condition, charset: Charset = PLAIN): string[] | null {
  if (c.operator === 'match_regex' && c.parameters.regex !== undefined)
    return requiredWords(c.parameters.regex, charset);
  if (c.operator === 'phrase_match') return wordsOf(c.parameters.list ?? null, charset);
  return null;
}

/**
 * The characters a key may be besides words (`conditionKeys`): ASCII, neither letters, digits nor
 * whitespace, and rare in ordinary values (not `. , - _ / @`, which a key would send most values
 * to the condition's own address: a copy each, which costs more than the check it spares). No
 * transformation that keeps a value in its charset makes one of them where it was not: they lower
 * case ASCII letters, drop characters, turn whitespace, commas and semicolons into spaces, and
 * `unicode_normalize` turns the letters beyond ASCII of LETTERS into ASCII letters and digits and
 * such letters (see `lettersBeyondAscii` and `PLAIN_SAFE`). So such a character in what a chain
 * makes of a value was in the value as received, whatever the chain dropped or joined.
 */
const KEY_SYMBOLS = '`!;=?:()"\'';

/** The first character of KEY_SYMBOLS in `x`, or ''. */
function keySymbol(x: string): string {
  for (const k of KEY_SYMBOLS) if (x.includes(k)) return k;
  return '';
}

/**
 * Keys of which every value of the charset the condition can match (after a chain that keeps it in
 * the charset) contains one, as a substring of the lower-cased value as received, or null when
 * there are none to be had. Where the chain cannot join two words into one, the keys are words
 * (`conditionWords`). Where it can (`joins`: it has one of the charset's `joiners`, such as
 * `unshell` or `shell_unescape` on TEXT and LETTERS), a word of the value as received need not be
 * one of the value the condition reads, and words are no filter; but a character of KEY_SYMBOLS
 * is, since no such chain makes one: the keys are then those characters (`;` for a command after
 * a semicolon), or null when a required string holds none.
 *
 * Why: timed rule by rule (one libddwaf instance per rule over the bench's payloads),
 * pc-cmdi-320, a 2.7 KB case-insensitive regex read through `unshell` and so never word-filtered,
 * cost 3 to 6 µs a value it read: some 90 µs of the multilingual body's 650 µs in libddwaf. Not
 * where words are to be had, nor where a condition's matches hold no word but its chain joins
 * none: there a sign would send values to one more address each (a copy, which libddwaf's binding
 * converts at about 0.75 µs), and the 4 KB JSON body measured no better for it.
 */
export function conditionKeys(c: Condition, charset: Charset, joins: boolean): string[] | null {
  if (!joins) return conditionWords(c, charset);
  let set: readonly string[] | null;
  if (c.operator === 'match_regex' && c.parameters.regex !== undefined) {
    // Of the required sets the analysis meets, the one whose every string holds a key symbol.
    const symbols: Quality = (s) =>
      s !== null && s.length > 0 && s.every((x) => !isPlain(x, charset) || keySymbol(x) !== '') ? 1 : 0;
    try {
      const info = new Reader(c.parameters.regex, charset, symbols).all();
      if (info.needs) return [];
      set = info.req ?? info.exact;
    } catch {
      return null;
    }
  } else if (c.operator === 'phrase_match') set = c.parameters.list ?? null;
  else return null;
  if (set === null) return null;
  const out = new Set<string>();
  for (const x of set) {
    // A string outside the charset never occurs in a value of it (the chain keeps it there).
    if (!isPlain(x, charset)) continue;
    const k = keySymbol(x);
    if (k === '') return null;
    out.add(k);
  }
  return [...out];
}
