/**
 * A small, refusing XML reader: it turns an XML request body into the text
 * leaves that injection inspection and body-bound rules look at, or refuses
 * it. It builds no tree and resolves nothing.
 *
 * Why hand-written: no XML parser is a dependency, and what is needed here
 * is not a DOM but a tokenizer that refuses everything risky or ambiguous.
 * A full parser would bring DTD processing, entity expansion and external
 * fetches, only to have them all switched off. The XXE and billion-laughs
 * class is closed by refusing any DOCTYPE outright, so no entity can be
 * declared, expanded or fetched: the only references read are the five
 * predefined entities and numeric character references.
 *
 * Refused (`ok: false`, with a fixed reason that never quotes the input):
 * - a DOCTYPE (so any DTD, internal or external) and any other `<!`
 *   declaration;
 * - any entity reference other than `&lt;` `&gt;` `&amp;` `&apos;` `&quot;`,
 *   a bare `&`, and a character reference to a character XML does not allow;
 * - processing instructions, except one XML declaration at the very start
 *   (version 1.0, encoding UTF-8 if given: the body was decoded as UTF-8,
 *   and an upstream told otherwise would read other characters);
 * - mismatched or unclosed tags, a second root, text or CDATA outside the
 *   root, duplicate attributes, `<` in an attribute value, `]]>` in text,
 *   `--` inside a comment, characters XML does not allow, malformed names;
 * - nesting deeper than `maxDepth` elements, or more than `maxNodes` nodes
 *   (elements, attributes, comments, CDATA sections and text runs that are
 *   not only whitespace).
 *
 * Leaves (paths use names as written, prefix included; namespaces are not
 * resolved, so `xmlns` declarations are ordinary attributes):
 * - every element's name: `{ path: [...elements, '#name'], text: name }`,
 *   where `elements` runs from the root to that element itself, e.g.
 *   `{ path: ['soap:Envelope', 'soap:Body', '#name'], text: 'soap:Body' }`;
 * - every attribute's name and value:
 *   `{ path: [...elements, '@id', '#name'], text: 'id' }` and
 *   `{ path: [...elements, '@id'], text: value }`;
 * - every element's text: `{ path: elements, text }`, the character data
 *   directly inside it (text, CDATA sections, references decoded) joined
 *   into one string across comments and child elements, so a payload split
 *   by `<!-- -->` or `<![CDATA[`, which an upstream would join, is seen
 *   whole. Omitted when only whitespace.
 * A `#name` or `@...` segment cannot be an element name, so paths never
 * collide. Text is decoded as a conforming parser would: line ends become
 * `\n`, and literal tabs and newlines in attribute values become spaces.
 *
 * Linear in the input: every scan moves forward (indexOf, sticky regexes),
 * a reference is looked at within a bounded window, and each element costs
 * its depth once more (bounded by `maxDepth`) for its paths.
 */

export type XmlResult =
  | { ok: true; leaves: { path: string[]; text: string }[] }
  | { ok: false; reason: string };

export interface XmlLimits {
  maxDepth: number;
  maxNodes: number;
}

export const DEFAULT_XML_LIMITS: XmlLimits = { maxDepth: 32, maxNodes: 10_000 };

type Refusal = { ok: false; reason: string };

const refuse = (reason: string): Refusal => ({ ok: false, reason });

const PREDEFINED: ReadonlyMap<string, string> = new Map([
  ['lt', '<'],
  ['gt', '>'],
  ['amp', '&'],
  ['apos', "'"],
  ['quot', '"'],
]);

/** The longest reference read: `&#x` or `&#` with leading zeros; longer is refused. */
const MAX_REFERENCE = 32;

const NAME_START =
  ':A-Z_a-z\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C\\u200D' +
  '\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD\\u{10000}-\\u{EFFFF}';
/** An XML Name (XML 1.0 fifth edition, production 5), at the current position. */
const NAME = new RegExp(`[${NAME_START}][${NAME_START}\\-.0-9\\u00B7\\u0300-\\u036F\\u203F\\u2040]*`, 'uy');
/** XML whitespace (carriage returns are gone by then), at the current position. */
const SPACE = /[ \t\n]*/y;
const ONLY_SPACE = /^[ \t\n]*$/;
/** The XML declaration: version 1.0, optionally an encoding and standalone. */
const DECLARATION =
  /<\?xml[ \t\n]+version[ \t\n]*=[ \t\n]*(["'])1\.0\1(?:[ \t\n]+encoding[ \t\n]*=[ \t\n]*(["'])([A-Za-z][A-Za-z0-9._-]*)\2)?(?:[ \t\n]+standalone[ \t\n]*=[ \t\n]*(["'])(?:yes|no)\4)?[ \t\n]*\?>/y;

/** Whether XML 1.0 allows the code point (production 2, Char). */
function isXmlChar(cp: number): boolean {
  return (
    cp === 0x9 ||
    cp === 0xa ||
    cp === 0xd ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  );
}

/** Whether every code point of `text` is one XML allows (no lone surrogates). */
function allXmlChars(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x20 && c < 0xd800) continue;
    if (c >= 0xd800 && c < 0xdc00) {
      const d = text.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d < 0xe000)) return false;
      i++;
      continue;
    }
    if (!isXmlChar(c)) return false;
  }
  return true;
}

/** Character data with its references decoded, or the refusal. */
function decode(raw: string): string | Refusal {
  let amp = raw.indexOf('&');
  if (amp < 0) return raw;
  let out = '';
  let from = 0;
  while (amp >= 0) {
    out += raw.slice(from, amp);
    let semi = -1;
    const limit = Math.min(raw.length, amp + MAX_REFERENCE);
    for (let i = amp + 1; i < limit; i++) {
      if (raw.charCodeAt(i) === 0x3b) {
        semi = i;
        break;
      }
    }
    if (semi < 0) return refuse('malformed reference');
    const name = raw.slice(amp + 1, semi);
    if (name.startsWith('#')) {
      const hex = name.startsWith('#x');
      const digits = name.slice(hex ? 2 : 1);
      if (!(hex ? /^[0-9a-fA-F]+$/ : /^[0-9]+$/).test(digits)) return refuse('malformed character reference');
      const cp = Number.parseInt(digits, hex ? 16 : 10);
      if (!isXmlChar(cp)) return refuse('character reference to a character XML does not allow');
      out += String.fromCodePoint(cp);
    } else {
      const c = PREDEFINED.get(name);
      if (c === undefined) return refuse('entity reference (only the predefined entities are read)');
      out += c;
    }
    from = semi + 1;
    amp = raw.indexOf('&', from);
  }
  return out + raw.slice(from);
}

interface Open {
  readonly name: string;
  /** Root to this element. */
  readonly path: string[];
  /** Its direct character data so far, decoded. */
  text: string;
}

/** Reads `source` (an XML document as text) into its leaves, or refuses it. */
export function readXml(source: string, limits: XmlLimits = DEFAULT_XML_LIMITS): XmlResult {
  const text = source.includes('\r') ? source.replace(/\r\n?/g, '\n') : source;
  if (!allXmlChars(text)) return refuse('character XML does not allow');
  const n = text.length;
  // A byte order mark may open the document.
  let pos = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  if (text.startsWith('<?xml', pos) && /[ \t\n]/.test(text.charAt(pos + 5))) {
    DECLARATION.lastIndex = pos;
    const m = DECLARATION.exec(text);
    if (m === null) return refuse('malformed XML declaration');
    if (m[3] !== undefined && m[3].toLowerCase() !== 'utf-8') return refuse('encoding other than UTF-8');
    pos = DECLARATION.lastIndex;
  }

  const leaves: { path: string[]; text: string }[] = [];
  const stack: Open[] = [];
  let nodes = 0;
  let rooted = false;
  const name = (): string | undefined => {
    NAME.lastIndex = pos;
    const m = NAME.exec(text);
    if (m === null) return undefined;
    pos = NAME.lastIndex;
    return m[0];
  };
  const space = (): number => {
    const from = pos;
    SPACE.lastIndex = pos;
    SPACE.exec(text);
    pos = SPACE.lastIndex;
    return pos - from;
  };
  const close = (element: Open): void => {
    if (!ONLY_SPACE.test(element.text)) leaves.push({ path: element.path, text: element.text });
  };

  while (pos < n) {
    const lt = text.indexOf('<', pos);
    const end = lt < 0 ? n : lt;
    if (end > pos) {
      const raw = text.slice(pos, end);
      pos = end;
      const top = stack.at(-1);
      if (top === undefined) {
        if (!ONLY_SPACE.test(raw)) return refuse('text outside the root element');
        continue;
      }
      if (raw.includes(']]>')) return refuse('"]]>" in text');
      const decoded = decode(raw);
      if (typeof decoded !== 'string') return decoded;
      if (!ONLY_SPACE.test(decoded) && ++nodes > limits.maxNodes) return refuse('too many nodes');
      top.text += decoded;
      continue;
    }

    if (text.startsWith('<!--', pos)) {
      const dashes = text.indexOf('--', pos + 4);
      if (dashes < 0) return refuse('unclosed comment');
      if (text.charCodeAt(dashes + 2) !== 0x3e) return refuse('"--" inside a comment');
      if (++nodes > limits.maxNodes) return refuse('too many nodes');
      pos = dashes + 3;
      continue;
    }
    if (text.startsWith('<![CDATA[', pos)) {
      const top = stack.at(-1);
      if (top === undefined) return refuse('CDATA outside the root element');
      const stop = text.indexOf(']]>', pos + 9);
      if (stop < 0) return refuse('unclosed CDATA section');
      if (++nodes > limits.maxNodes) return refuse('too many nodes');
      top.text += text.slice(pos + 9, stop);
      pos = stop + 3;
      continue;
    }
    if (text.startsWith('<!DOCTYPE', pos)) return refuse('DOCTYPE (DTDs are refused)');
    if (text.startsWith('<!', pos)) return refuse('markup declaration');
    if (text.startsWith('<?', pos)) return refuse('processing instruction');

    if (text.startsWith('</', pos)) {
      pos += 2;
      const closing = name();
      if (closing === undefined) return refuse('malformed end tag');
      space();
      if (text.charCodeAt(pos) !== 0x3e) return refuse('malformed end tag');
      pos++;
      const top = stack.pop();
      if (top === undefined || top.name !== closing) return refuse('mismatched end tag');
      close(top);
      continue;
    }

    // A start tag or an empty-element tag.
    pos++;
    const element = name();
    if (element === undefined) return refuse('malformed tag');
    if (stack.length === 0) {
      if (rooted) return refuse('more than one root element');
      rooted = true;
    }
    if (stack.length >= limits.maxDepth) return refuse('nested too deep');
    if (++nodes > limits.maxNodes) return refuse('too many nodes');
    const parent = stack.at(-1);
    const open: Open = { name: element, path: parent ? [...parent.path, element] : [element], text: '' };
    leaves.push({ path: [...open.path, '#name'], text: element });
    // Names of its attributes so far (a set once there are a few).
    let attributes: string[] | Set<string> | undefined;
    for (;;) {
      const spaced = space() > 0;
      if (pos >= n) return refuse('unclosed tag');
      if (text.startsWith('/>', pos)) {
        pos += 2;
        close(open);
        break;
      }
      if (text.charCodeAt(pos) === 0x3e) {
        pos++;
        stack.push(open);
        break;
      }
      if (!spaced) return refuse('malformed tag');
      const attribute = name();
      if (attribute === undefined) return refuse('malformed attribute');
      space();
      if (text.charCodeAt(pos) !== 0x3d) return refuse('malformed attribute');
      pos++;
      space();
      const quote = text.charAt(pos);
      if (quote !== '"' && quote !== "'") return refuse('unquoted attribute value');
      const stop = text.indexOf(quote, pos + 1);
      if (stop < 0) return refuse('unclosed attribute value');
      const raw = text.slice(pos + 1, stop);
      pos = stop + 1;
      if (raw.includes('<')) return refuse('"<" in an attribute value');
      if (attributes === undefined) attributes = [attribute];
      else if (Array.isArray(attributes)) {
        if (attributes.includes(attribute)) return refuse('duplicate attribute');
        attributes.push(attribute);
        if (attributes.length > 8) attributes = new Set(attributes);
      } else {
        if (attributes.has(attribute)) return refuse('duplicate attribute');
        attributes.add(attribute);
      }
      if (++nodes > limits.maxNodes) return refuse('too many nodes');
      const value = decode(raw.replace(/[\t\n]/g, ' '));
      if (typeof value !== 'string') return value;
      const at = [...open.path, `@${attribute}`];
      leaves.push({ path: [...at, '#name'], text: attribute });
      leaves.push({ path: at, text: value });
    }
  }
  if (stack.length > 0) return refuse('unclosed element');
  if (!rooted) return refuse('no root element');
  return { ok: true, leaves };
}
