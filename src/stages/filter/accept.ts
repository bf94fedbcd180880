/**
 * Narrowing a request's `Accept` to the media types a route declares for
 * its responses, so a negotiating upstream answers in a representation the
 * filter can read (issue 14: an `Accept: application/xml` must not make the
 * upstream answer in a form the JSON filter never looks at).
 *
 * Each media range is parsed with the `content-type` package (the same
 * grammar as Content-Type: `type/subtype` and `;` parameters, quoted strings
 * unescaped); only the list splitting and the `q` weight (RFC 9110 §12.4.2,
 * §12.5.1) are done here. Why not `negotiator`: it is not a dependency, and
 * it chooses among offers, while this has to rewrite the client's ranges
 * (keeping their parameters and weights) into ranges within the declared
 * ones, so the upstream's own negotiation still follows the client's order.
 */
import contentType from 'content-type';

export interface AcceptRange {
  /** Lower-case `type/subtype`; either part may be `*`. */
  readonly type: string;
  /** Parameters other than `q`, names lower case, in the order written. */
  readonly parameters: Readonly<Record<string, string>>;
  /** The weight, 0 to 1. */
  readonly q: number;
}

const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

/** Splits a header value on commas outside quoted strings (linear). */
function splitList(value: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (quoted && c === 0x5c /* \ */) i++;
    else if (c === 0x22 /* " */) quoted = !quoted;
    else if (c === 0x2c /* , */ && !quoted) {
      out.push(value.slice(start, i));
      start = i + 1;
    }
  }
  out.push(value.slice(start));
  return out.map((s) => s.trim()).filter((s) => s !== '');
}

/**
 * The ranges of an Accept value; a range that does not parse (or has a bad
 * `q`) is left out, as RFC 9110 lets a recipient ignore what it cannot read.
 */
export function parseAccept(value: string): AcceptRange[] {
  const ranges: AcceptRange[] = [];
  for (const item of splitList(value)) {
    let parsed: contentType.ParsedMediaType;
    try {
      parsed = contentType.parse(item);
    } catch {
      continue;
    }
    const [type, subtype] = parsed.type.split('/') as [string, string];
    if (type === '*' && subtype !== '*') continue;
    const { q: weight, ...parameters } = parsed.parameters;
    if (weight !== undefined && !QVALUE.test(weight)) continue;
    ranges.push({ type: parsed.type, parameters, q: weight === undefined ? 1 : Number(weight) });
  }
  return ranges;
}

/** True when every media type in range `inner` is in range `outer`. */
function within(inner: string, outer: string): boolean {
  if (outer === '*/*' || inner === outer) return true;
  if (!outer.endsWith('/*')) return false;
  return inner.startsWith(outer.slice(0, -1)) && inner !== '*/*';
}

/** 3 for `a/b;p=v`, 2 for `a/b`, 1 for `a/*`, 0 for `*​/*`. */
function specificity(r: AcceptRange): number {
  if (r.type === '*/*') return 0;
  if (r.type.endsWith('/*')) return 1;
  return Object.keys(r.parameters).length > 0 ? 3 : 2;
}

function format(r: AcceptRange): string {
  const base = contentType.format({ type: r.type, parameters: r.parameters });
  return r.q === 1 ? base : `${base};q=${Number(r.q.toFixed(3))}`;
}

/**
 * The client's ranges narrowed to `declared` (lower-case types, `*` allowed),
 * as an Accept value, or undefined when none of them is acceptable.
 *
 * - a client range within a declared one is kept as written (parameters and
 *   weight, `q=0` too: it still excludes something);
 * - a client range wider than a declared range (`*​/*`, `application/*`)
 *   stands for that range, with its weight, unless a more specific client
 *   range without parameters covers all of it (that one decides, RFC 9110
 *   §12.5.1);
 * - no Accept at all is `*​/*`.
 */
export function narrowAccept(value: string | undefined, declared: readonly string[]): string | undefined {
  const client = value === undefined ? [{ type: '*/*', parameters: {}, q: 1 }] : parseAccept(value);
  const out: AcceptRange[] = [];
  const seen = new Set<string>();
  const push = (r: AcceptRange): void => {
    const text = format(r);
    if (seen.has(text)) return;
    seen.add(text);
    out.push(r);
  };
  for (const c of client) {
    for (const d of declared) {
      if (within(c.type, d)) {
        push(c);
        break;
      }
      if (!within(d, c.type)) continue;
      // A range with parameters covers only representations with them: it never stands for all of `d`.
      const closer = client.some(
        (o) => specificity(o) > specificity(c) && Object.keys(o.parameters).length === 0 && within(d, o.type),
      );
      if (!closer) push({ type: d, parameters: {}, q: c.q });
    }
  }
  if (!out.some((r) => r.q > 0)) return undefined;
  return out.map(format).join(', ');
}
