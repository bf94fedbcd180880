/**
 * Redaction of the representations other than JSON that the filter can
 * read: text (`text/*`) and XML (`application/xml`, `text/xml`, `+xml`).
 * Anything else it cannot read, so it refuses it unless the route lists the
 * type in `responses.pass_through_media_types`.
 *
 * - text: `redact_patterns` replaced in the whole body; property names
 *   (`redact`) have no structure to apply to (a CSV column or an HTML field
 *   is not recognised), which the docs say;
 * - XML: `redact_patterns` replaced in the whole document, and the text of
 *   elements and the values of attributes whose local name is in `redact`
 *   replaced. The rewrite is textual, so the result is read again with the
 *   strict reader of request bodies (`src/request/xml.ts`) and refused
 *   unless it is well formed and nothing to redact is left in any element
 *   text or attribute value (an entity-split card number, a redacted
 *   element with child elements or CDATA): it fails closed, never open.
 */
import type { MediaType } from '../../contracts/request.js';
import { REDACTED } from '../../openapi/settings.js';
import { decodeUtf8 } from '../../request/json.js';
import { bodyKindOf, parseMediaType } from '../../request/media-type.js';
import { readXml } from '../../request/xml.js';

/** Why a body cannot be sent; the message goes to the log only. */
export class Unfilterable extends Error {}

export type RepresentationKind = 'json' | 'xml' | 'text';

/** How the filter reads a response of this Content-Type; undefined when it cannot. */
export function representationKind(media: MediaType | undefined): RepresentationKind | undefined {
  if (media === undefined) return undefined;
  const kind = bodyKindOf(media.essence);
  return kind === 'json' || kind === 'xml' || kind === 'text' ? kind : undefined;
}

/** The parsed Content-Type of a response; undefined when absent or malformed. */
export function responseMedia(value: string | undefined): MediaType | undefined {
  return value === undefined ? undefined : parseMediaType(value);
}

/**
 * The body as text, decoded as UTF-8 (the only charset read: a pattern does
 * not match a card number spelled in UTF-16). Throws Unfilterable otherwise.
 */
export function bodyText(body: Buffer, media: MediaType): string {
  const charset = media.parameters.charset?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8' && charset !== 'us-ascii')
    throw new Unfilterable(`charset ${charset} cannot be filtered`);
  const text = decodeUtf8(body);
  if (text === undefined) throw new Unfilterable('body is not UTF-8');
  return text;
}

/** A response is bounded by `max_bytes`; the reader is linear, its depth cost bounded here. */
const RESPONSE_XML_LIMITS = { maxDepth: 64, maxNodes: 1_000_000 };

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const NAME_CHARS = '[A-Za-z_][\\w.\\-]*';

function localName(name: string): string {
  return name.slice(name.indexOf(':') + 1).toLowerCase();
}

/** A redactor of XML documents for property names `keys` (lower case) and `redactText`. */
export function createXmlRedactor(
  keys: ReadonlySet<string>,
  redactText: ((t: string) => string) | undefined,
): (source: string) => string {
  const names = [...keys].filter((k) => new RegExp(`^${NAME_CHARS}$`).test(k)).map(escapeRegExp);
  const alternatives = names.join('|');
  // `<name …>text</name>` (any prefix), text without markup; the closing tag must repeat the opening name.
  const element =
    names.length === 0
      ? undefined
      : new RegExp(`<((?:${NAME_CHARS}:)?(?:${alternatives}))(\\s[^<>]*)?>([^<]*)</\\1\\s*>`, 'gi');
  // `name="value"` inside a tag (or, harmlessly, in text: redacted too).
  const attribute =
    names.length === 0
      ? undefined
      : new RegExp(`(\\s(?:${NAME_CHARS}:)?(?:${alternatives})\\s*=\\s*)("[^"<]*"|'[^'<]*')`, 'gi');
  return (source) => {
    let out = redactText ? redactText(source) : source;
    if (element)
      out = out.replace(element, (_m, name, attrs = '') => `<${name}${attrs}>${REDACTED}</${name}>`);
    if (attribute)
      out = out.replace(attribute, (_m, prefix: string, v: string) => `${prefix}${v[0]}${REDACTED}${v[0]}`);
    const read = readXml(out, RESPONSE_XML_LIMITS);
    if (!read.ok) throw new Unfilterable(`XML response cannot be read: ${read.reason}`);
    for (const leaf of read.leaves) {
      const last = leaf.path.at(-1) ?? '';
      if (last === '#name') continue;
      const named = last.startsWith('@') ? [last.slice(1)] : leaf.path;
      if (named.some((n) => keys.has(localName(n))) && leaf.text !== REDACTED)
        throw new Unfilterable('XML response carries a redacted name the rewrite could not reach');
      if (redactText && redactText(leaf.text) !== leaf.text)
        throw new Unfilterable('XML response carries a sensitive pattern the rewrite could not reach');
    }
    return out;
  };
}
