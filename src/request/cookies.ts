/**
 * The Cookie header (RFC 6265 §5.4: one header, `name=value` pairs joined
 * by `; `), read the way common upstream cookie parsers do: names and
 * values trimmed, values not percent-decoded, pairs without `=` skipped.
 *
 * Upstreams then read a value their own way (`cookieReadings`): express's
 * `cookie` strips surrounding double quotes and percent-decodes, Python's
 * SimpleCookie strips the quotes and undoes backslash escapes (`\"`, `\\`,
 * octal `\141`), Go strips the quotes. A check of the value as sent says
 * nothing about `%61dmin`, which express reads as `admin`: so validation
 * checks every reading (`src/stages/validate`), and inspection decodes with
 * the CRS's transformations.
 */
export function parseCookies(header: string | undefined): [name: string, value: string][] {
  const out: [string, string][] = [];
  if (header === undefined || header === '') return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    out.push([part.slice(0, eq).trim(), part.slice(eq + 1).trim()]);
  }
  return out;
}

/** A value without its surrounding double quotes, or undefined when it has none. */
function unquoted(value: string): string | undefined {
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : undefined;
}

/** `value` percent-decoded, as express's `cookie` decodes; undefined without `%` or when it is no valid encoding. */
export function percentDecoded(value: string): string | undefined {
  if (!value.includes('%')) return undefined;
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

/** As express's `cookie` (0.7, 1.x) reads a value: one `"` off each end (a lone `"` reads as empty), then percent-decoded when it can be. */
function expressReading(value: string): string {
  const inner = value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  return percentDecoded(inner) ?? inner;
}

/** As Python's http.cookies reads a quoted value: backslash escapes undone (`\"`, `\\`, octal `\141`). */
function pythonReading(value: string): string {
  const inner = unquoted(value);
  if (inner === undefined || !inner.includes('\\')) return inner ?? value;
  return inner.replace(/\\([0-3][0-7]{2}|[\s\S])/g, (_, e: string) =>
    e.length === 3 ? String.fromCharCode(Number.parseInt(e, 8)) : e,
  );
}

/**
 * The readings of the cookies that upstream parsers would act on where they
 * differ from the values as sent: one list of pairs per parser that reads
 * any value differently (none for ordinary values, which have no `%`, `"`
 * or `\`).
 */
export function cookieReadings(pairs: readonly [string, string][]): [string, string][][] {
  if (!pairs.some(([, v]) => /[%"\\]/.test(v))) return [];
  const views: [string, string][][] = [];
  for (const read of [expressReading, pythonReading]) {
    const view = pairs.map(([n, v]): [string, string] => [n, read(v)]);
    const differs = view.some(([, v], i) => v !== pairs[i]?.[1]);
    if (differs && !views.some((o) => o.every(([, v], i) => v === view[i]?.[1]))) views.push(view);
  }
  return views;
}
