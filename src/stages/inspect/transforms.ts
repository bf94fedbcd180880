/**
 * ModSecurity transformations libddwaf lacks, done by Portcullis before
 * libddwaf's own (see `scripts/compile-crs.ts`): `removeWhitespace` and
 * `replaceComments`, and the ones a CRS chain applies before them
 * (`lowercase`, `urlDecode`, `urlDecodeUni`). Each follows ModSecurity's
 * definition (its reference manual, "Transformation functions").
 *
 * And three of Portcullis's own: `removeXmlDeclarations` (below), for the
 * libinjection XSS checks, `sqlSigned` (below), for its SQL checks, and,
 * for its command-injection rules, `unshell`
 * (below), which undoes the quoting tricks a shell ignores but a regex does
 * not. ModSecurity's `cmdLine` (libddwaf's `shell_unescape`) drops quotes
 * and backslashes too, but also turns `;` into a space, which loses the
 * separator the rules look for, and leaves `c${x}url` as it is.
 */

export type PreTransform = (text: string) => string;

/** ModSecurity's whitespace: space, \t \n \v \f \r and the no-break space. */
const WHITESPACE = /[ \t\n\v\f\r\u00a0]+/g;

/** `%XX` (and `%uXXXX` when `unicode`) decoded, `+` as a space; invalid escapes left as they are. */
function urlDecode(text: string, unicode: boolean): string {
  if (!text.includes('%') && !text.includes('+')) return text;
  const bytes: number[] = [];
  let out = '';
  const flush = () => {
    if (bytes.length > 0) {
      out += Buffer.from(bytes).toString('latin1');
      bytes.length = 0;
    }
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '+') {
      bytes.push(0x20);
      continue;
    }
    if (c === '%') {
      const hex = text.slice(i + 1, i + 3);
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        bytes.push(Number.parseInt(hex, 16));
        i += 2;
        continue;
      }
      const uni = text.slice(i + 1, i + 6);
      if (unicode && /^[uU][0-9a-fA-F]{4}$/.test(uni)) {
        // As IIS does: the low byte of the code unit (ModSecurity keeps full-width ASCII as ASCII).
        const code = Number.parseInt(uni.slice(1), 16);
        bytes.push(code >= 0xff01 && code <= 0xff5e ? code - 0xfee0 : code & 0xff);
        i += 5;
        continue;
      }
    }
    flush();
    out += c;
  }
  flush();
  return out;
}

/** `/* ... *\/` replaced by one space; an unterminated comment to the end too (ModSecurity's replaceComments). */
function replaceComments(text: string): string {
  if (!text.includes('/*')) return text;
  return text.replace(/\/\*[\s\S]*?(?:\*\/|$)/g, ' ');
}

/** A variable expansion glued to a word character (`c${x}url`, `sh$XX`, `wh$@oami`): what a shell expands to nothing. */
const GLUED_EXPANSION = /(?<=[A-Za-z0-9_])\$(?:\{[^}\s]*\}|[A-Za-z_][A-Za-z0-9_]*|[@*#?!$0-9-])/g;

// Made once, not per call: a regex literal in a function body is a new RegExp object each time it
// is evaluated, and `unshell` runs on every new value (it was most of what inspecting a request of
// new values allocated: 27 KB a request for the 4 KB body of `bench/inspect/cost.ts`, 8 KB since).
/** The characters `unshell` acts on: a value without them is left as it is. */
const SHELL_SIGNS = /[\\'"^$[]/;
/** A single-character glob (`/bi[n]/sh`). */
const ONE_CHARACTER_GLOB = /\[([A-Za-z0-9])\]/g;
/** The escapes and quotes a shell removes (and cmd.exe's `^`). */
const SHELL_QUOTING = /[\\'"^]/g;

/**
 * A command as a shell reads it, from the tricks that hide one from a
 * regex: the escapes and quotes a shell removes (`w\ho'am'i`, `"curl"`,
 * cmd.exe's `^`), empty-looking expansions glued inside a word
 * (`c${KK}url`, `sh$XX`) and single-character globs (`/bi[n]/sh`). A value
 * without `\ ' " ^ $ [` is left as it is.
 */
function unshell(text: string): string {
  if (!SHELL_SIGNS.test(text)) return text;
  return text.replace(GLUED_EXPANSION, '').replace(ONE_CHARACTER_GLOB, '$1').replace(SHELL_QUOTING, '');
}

/**
 * An XML declaration or an `xml-` processing instruction (`<?xml version="1.0"?>`,
 * `<?xml-stylesheet href="a.xsl"?>`): a target of `xml` or `xml-<name>`,
 * pseudo-attributes without `<` or `>`, and `?>`.
 */
const XML_DECLARATION = /<\?xml(?:-[A-Za-z]+)?(?:\s[^<>]*)?\?>/gi;

/**
 * XML declarations removed (each replaced by one space), for libinjection's
 * XSS check: it flags every comment-like token that starts with `xml` (a
 * `<?xml ...` is one in HTML), for Internet Explorer's XML data islands, so
 * an XML document or an XMP packet pasted into a field was an attack. A
 * declaration holds no markup (no `<` or `>` inside) and ends with `?>`;
 * IE's own forms (`<?xml:namespace ... >`, `<?import ...>`) do not, and
 * stay. The rest of the value is checked as it was; a value without `<?` is
 * left as it is.
 */
function removeXmlDeclarations(text: string): string {
  if (!text.includes('<?')) return text;
  return text.replace(XML_DECLARATION, ' ');
}

/**
 * A sign that a value may be SQL: a character that opens or ends a string,
 * a comment or a statement, or is an operator (`' " \` ; = < > | & ^ ~ * #
 * \\`, `--`, `/*`); `&`, and `%` before two hex digits or `u` and four
 * (`%27`, `%u0027`), which the rules' decoding may turn into one (a `%`
 * before anything else it leaves as it is: "One quarter (24%) of people"
 * shows no sign); a NUL, which it removes; or a word that joins a
 * condition or a query to the one a value is put in (`or`, `and`, `union`,
 * `select`, `order`, `having`, `waitfor` ...), standing apart from other
 * ASCII letters (`1or1`, `+union+`, `order_by` count; `Oregon` does not).
 *
 * As the regex `['"\`;=<>|&^~*#\\\0]|%(?:[0-9a-f]{2}|u[0-9a-f]{4})|--|\/\*|(?<![a-z])(?:or|and|...)(?![a-z])`
 * with the `i` flag finds one (a test holds the two to the same answers), written out by hand: the
 * regex tried every word at every position, and at 120-190 ns a value it was the larger part of what
 * the SQL gate cost a request of new values (110 values in the 4 KB body of `bench/inspect/cost.ts`);
 * this reads each character once and looks a run of letters up by a hash.
 */
export function showsSqlSign(text: string): boolean {
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128) continue;
    switch (SIGN_CLASS[c]) {
      case SIGN:
        return true;
      case LETTER: {
        // A run of ASCII letters, hashed lower-cased as it is read: a sign when it is a word whole.
        let h = c | 32;
        let j = i + 1;
        for (; j < n; j++) {
          const d = text.charCodeAt(j);
          if (d >= 128 || SIGN_CLASS[d] !== LETTER) break;
          h = (Math.imul(h, 31) + (d | 32)) | 0;
        }
        const word = SQL_WORDS.get(h);
        if (word !== undefined && word.length === j - i && sameLetters(text, i, word)) return true;
        i = j - 1;
        break;
      }
      case PERCENT:
        if (isHex(text, i + 1) && isHex(text, i + 2)) return true;
        if (
          (text.charCodeAt(i + 1) | 32) === 117 &&
          isHex(text, i + 2) &&
          isHex(text, i + 3) &&
          isHex(text, i + 4) &&
          isHex(text, i + 5)
        )
          return true;
        break;
      case DASH:
        if (text.charCodeAt(i + 1) === 45) return true;
        break;
      case SLASH:
        if (text.charCodeAt(i + 1) === 42) return true;
        break;
    }
  }
  return false;
}

/** What an ASCII character is to `showsSqlSign` (0: nothing). */
const SIGN = 1;
const LETTER = 2;
const PERCENT = 3;
const DASH = 4;
const SLASH = 5;
const SIGN_CLASS: Uint8Array = (() => {
  const out = new Uint8Array(128);
  for (const c of '\'"`;=<>|&^~*#\\\0') out[c.charCodeAt(0)] = SIGN;
  for (let c = 65; c <= 90; c++) {
    out[c] = LETTER;
    out[c + 32] = LETTER;
  }
  out[37] = PERCENT;
  out[45] = DASH;
  out[47] = SLASH;
  return out;
})();

/** Whether the character at `i` is a hex digit (false past the end). */
function isHex(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  return (c >= 48 && c <= 57) || ((c | 32) >= 97 && (c | 32) <= 102);
}

/** The hash `showsSqlSign` rolls over a run of letters, of a lower-case word. */
function letterHash(word: string): number {
  let h = word.charCodeAt(0);
  for (let i = 1; i < word.length; i++) h = (Math.imul(h, 31) + word.charCodeAt(i)) | 0;
  return h;
}

/** The words that join a condition or a query, by `letterHash` (no two share one: checked here). */
const SQL_WORDS: ReadonlyMap<number, string> = (() => {
  const words =
    'or and xor div mod union except intersect select order group having limit procedure into like rlike regexp between sounds waitfor exec execute declare sleep benchmark';
  const out = new Map<number, string>();
  for (const w of words.split(' ')) {
    if (out.has(letterHash(w))) throw new Error(`two SQL words of one hash: ${w}, ${out.get(letterHash(w))}`);
    out.set(letterHash(w), w);
  }
  return out;
})();

/** Whether the letters at `at` are `word`'s, in either case. */
function sameLetters(text: string, at: number, word: string): boolean {
  for (let k = 0; k < word.length; k++)
    if ((text.charCodeAt(at + k) | 32) !== word.charCodeAt(k)) return false;
  return true;
}

/**
 * The value when it shows a sign of SQL (`showsSqlSign`), else nothing (an
 * empty value is not inspected), for libinjection's SQL check. libinjection
 * reads a value as SQL tokens and matches the first five against a list of
 * fingerprints of injections; prose with parentheses makes some
 * (`while (foo) is bar.`: a T-SQL keyword and a group; `Left (WA, RR)`: a
 * function call), though it can neither leave a string nor join a
 * condition. An injection must do one of those: close a quote, comment the
 * rest out, end the statement, or add to the condition or query with an
 * operator or one of those words. Values that are plain identifiers,
 * numbers and prose are most of what a request carries: left out of the
 * check, they also spare its cost. Measured on every attack corpus, CRS 3.3
 * and 4 regression tests and PayloadsAllTheThings' SQL lists, no value
 * lost its detection (the note of issue 12).
 */
function sqlSigned(text: string): string {
  return showsSqlSign(text) && !MATHS.test(text) ? text : '';
}

/**
 * A formula and nothing else, as people type one into a homework, calculator or support form
 * (`sqrt(16) + 2*3 = 10`, `f(x) = sin(x)/x`, `2^10 > 1000`): numbers, variables of one letter, the
 * functions of a scientific calculator applied to them, arithmetic and comparison signs, and
 * parentheses. libinjection reads the first as a function call followed by an operator (`f(1)o`, as
 * it reads `sleep(5)+1`), but a formula can neither close a quote nor comment out or end the
 * statement it is put in (no quote, `#`, `--`, `/*` or `;`), nor name a table, a column of more than
 * one letter or a function that reads data (its only words are the calculator's), nor join a
 * condition (no `and`, `or`): so it shows no sign of SQL. `1 and 1=1`, `sqrt(4)=2 or 1`,
 * `floor(rand(0)*2)` and `%27` are not formulas.
 */
const MATHS =
  /^(?!.*--|.*\/\*)(?:[\s0-9.,+*/^=<>()!×÷√π≤≥≠±²³∞·-]|(?<![A-Za-z])[A-Za-z](?![A-Za-z])|(?<![A-Za-z])(?:sqrt|cbrt|sin|cos|tan|cot|asin|acos|atan|atan2|sinh|cosh|tanh|ln|log|log2|log10|exp|abs|floor|ceil|round|min|max|pow)(?=\s*\())+$/i;

const TRANSFORMS: Record<string, PreTransform> = {
  lowercase: (t) => t.toLowerCase(),
  removeWhitespace: (t) => t.replace(WHITESPACE, ''),
  replaceComments,
  urlDecode: (t) => urlDecode(t, false),
  urlDecodeUni: (t) => urlDecode(t, true),
  unshell,
  removeXmlDeclarations,
  sqlSigned,
};

export function preTransform(name: string): PreTransform {
  const t = TRANSFORMS[name];
  if (t === undefined) throw new Error(`inspection rules use an unknown transformation: ${name}`);
  return t;
}
