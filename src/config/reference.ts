/** The configuration reference, generated from the schema's descriptions (kept in the README). */
import { ConfigSchema } from './schema.js';

type Schema = Record<string, unknown>;

function typeOf(s: Schema): string {
  if (typeof s.expected === 'string') return s.expected.replace(/\|/g, '\\|');
  if (Array.isArray(s.anyOf)) {
    const branches = s.anyOf as Schema[];
    if (branches.every((b) => 'const' in b))
      return branches.map((b) => `\`${String(b.const)}\``).join(' \\| ');
    return branches.map(typeOf).join(' or ');
  }
  if ('const' in s) return `\`${String(s.const)}\``;
  if (s.type === 'array') return `list of ${typeOf(s.items as Schema)}`;
  if (s.patternProperties) return 'mapping of name → …';
  return String(s.type ?? 'value');
}

/** Markdown table rows, one per key, in schema order. */
export function configReference(schema: Schema = ConfigSchema as unknown as Schema): string {
  const rows: string[] = ['| key | type | default | description |', '| --- | --- | --- | --- |'];
  const walk = (s: Schema, at: string) => {
    const required = new Set((s.required as string[] | undefined) ?? []);
    for (const [key, sub] of Object.entries((s.properties ?? {}) as Record<string, Schema>)) {
      if (key === '$schema') continue;
      const path = `${at}${key}`;
      const isObject = sub.type === 'object' && sub.properties;
      const dflt =
        sub.default === undefined || isObject
          ? required.has(key)
            ? '*required*'
            : ''
          : `\`${JSON.stringify(sub.default)}\``;
      rows.push(
        `| \`${path}\` | ${isObject ? 'section' : typeOf(sub)} | ${dflt} | ${String(sub.description ?? '')} |`,
      );
      if (isObject) walk(sub, `${path}.`);
      const items = sub.items as Schema | undefined;
      if (items?.properties) walk(items, `${path}[].`);
      for (const p of Object.values((sub.patternProperties ?? {}) as Record<string, Schema>))
        walk(p, `${path}.NAME.`);
    }
  };
  walk(schema, '');
  return rows.join('\n');
}

const START = '<!-- config-reference:start -->';
const END = '<!-- config-reference:end -->';

/** The README with its reference section replaced by `table`. */
export function withReference(readme: string, table: string = configReference()): string {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start === -1 || end < start) throw new Error(`the README has no ${START} … ${END} section`);
  return `${readme.slice(0, start + START.length)}\n${table}\n${readme.slice(end)}`;
}
