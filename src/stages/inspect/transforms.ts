/**
 * ModSecurity transformations libddwaf lacks, done by Portcullis before
 * libddwaf's own (see `scripts/compile-crs.ts`): `removeWhitespace` and
 * `replaceComments`, and the ones a CRS chain applies before them
 * (`lowercase`, `urlDecode`, `urlDecodeUni`). Each follows ModSecurity's
 * definition (its reference manual, "Transformation functions").
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

const TRANSFORMS: Record<string, PreTransform> = {
  lowercase: (t) => t.toLowerCase(),
  removeWhitespace: (t) => t.replace(WHITESPACE, ''),
  replaceComments,
  urlDecode: (t) => urlDecode(t, false),
  urlDecodeUni: (t) => urlDecode(t, true),
};

export function preTransform(name: string): PreTransform {
  const t = TRANSFORMS[name];
  if (t === undefined) throw new Error(`inspection rules use an unknown transformation: ${name}`);
  return t;
}
