/**
 * The Cookie header (RFC 6265 §5.4: one header, `name=value` pairs joined
 * by `; `), read the way common upstream cookie parsers do: names and
 * values trimmed, values not percent-decoded, pairs without `=` skipped.
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
