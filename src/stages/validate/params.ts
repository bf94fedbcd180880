/**
 * Reading parameters from a request: the query string and form bodies
 * (`application/x-www-form-urlencoded`), the Cookie header, and the values
 * of declared parameters turned into the JSON types their schemas expect,
 * following OpenAPI's serialisation styles.
 */
import { type ProblemItem, pointerSegment } from '../../openapi/errors.js';
import type { FieldSpec, ParameterGroup, ParameterSpec, Scalar } from '../../openapi/types.js';
import { isExactNumber } from '../../request/json.js';

export type Pairs = [name: string, value: string][];
export { parseCookies } from '../../request/cookies.js';

/**
 * Names that reach an object's prototype in the query-string and form
 * parsers many upstreams use (`a[__proto__][x]=1`, `constructor.prototype`):
 * refused wherever a name is read.
 */
const PROTOTYPE_NAME = /(?:^|[[.])(?:__proto__|constructor|prototype)(?:$|[\].])/;

export function isPrototypeName(name: string): boolean {
  return PROTOTYPE_NAME.test(name);
}

const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * Reads text as the first of `types` it fits; otherwise leaves it a string,
 * for the schema to reject. A number a double cannot hold exactly
 * (`100.0000000000000001`, `9007199254740993`, `1e400`) stays a string too:
 * validating the rounded value would pass what the upstream reads otherwise.
 */
export function coerce(text: string, types: readonly Scalar[]): unknown {
  if (types.length === 0) return text;
  if ((types.includes('integer') || types.includes('number')) && NUMBER.test(text) && isExactNumber(text)) {
    return Number(text);
  }
  if (types.includes('boolean') && (text === 'true' || text === 'false')) return text === 'true';
  if (types.includes('null') && text === '' && !types.includes('string')) return null;
  return text;
}

const DELIMITERS: Record<string, string> = {
  spaceDelimited: ' ',
  pipeDelimited: '|',
  form: ',',
  simple: ',',
};

/** The value of one parameter from its raw occurrences; a problem when it is repeated but not a list. */
function readParameter(spec: ParameterSpec, raw: string[], problems: ProblemItem[]): unknown {
  const location = `/${spec.in}/${pointerSegment(spec.name)}`;
  if (spec.shape === 'array') {
    const repeated = spec.style === 'form' && spec.explode;
    if (!repeated && raw.length > 1) problems.push({ location, rule: 'duplicate' });
    const parts = repeated ? raw : raw[0]!.split(DELIMITERS[spec.style] ?? ',');
    return parts.map((p) => coerce(p, spec.types));
  }
  if (raw.length > 1) problems.push({ location, rule: 'duplicate' });
  return coerce(raw[0]!, spec.types);
}

export interface ReadResult {
  values: Record<string, unknown>;
  problems: ProblemItem[];
  /** Names of the pairs no parameter declares. */
  unknown: string[];
}

/**
 * The declared parameters of `group` found in `pairs`, typed; pairs that no
 * parameter declares are listed in `unknown` (deepObject parameters claim
 * their `name[prop]` pairs).
 */
export function readPairs(group: ParameterGroup, pairs: Pairs): ReadResult {
  const values: Record<string, unknown> = {};
  const problems: ProblemItem[] = [];
  const unknown: string[] = [];
  const byName = new Map<string, string[]>();
  const deep = new Map<string, Map<string, string[]>>();
  const deepSpecs = group.params.filter((p) => p.style === 'deepObject');
  const declared = new Set(group.params.filter((p) => p.style !== 'deepObject').map((p) => p.name));
  for (const [name, value] of pairs) {
    if (declared.has(name)) {
      const list = byName.get(name);
      if (list) list.push(value);
      else byName.set(name, [value]);
      continue;
    }
    const owner = deepSpecs.find((p) => name.startsWith(`${p.name}[`) && name.endsWith(']'));
    if (owner !== undefined) {
      const prop = name.slice(owner.name.length + 1, -1);
      let props = deep.get(owner.name);
      if (!props) {
        props = new Map();
        deep.set(owner.name, props);
      }
      const list = props.get(prop);
      if (list) list.push(value);
      else props.set(prop, [value]);
      continue;
    }
    unknown.push(name);
  }
  for (const spec of group.params) {
    if (spec.style === 'deepObject') {
      const props = deep.get(spec.name);
      if (props === undefined) continue;
      const obj: Record<string, unknown> = {};
      for (const [prop, raw] of props) {
        if (raw.length > 1)
          problems.push({
            location: `/${spec.in}/${pointerSegment(spec.name)}/${pointerSegment(prop)}`,
            rule: 'duplicate',
          });
        Object.defineProperty(obj, prop, {
          value: coerce(
            raw[0]!,
            (spec.propertyTypes !== undefined && Object.hasOwn(spec.propertyTypes, prop)
              ? spec.propertyTypes[prop]
              : undefined) ?? [],
          ),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      values[spec.name] = obj;
      continue;
    }
    const raw = byName.get(spec.name);
    if (raw !== undefined) values[spec.name] = readParameter(spec, raw, problems);
  }
  return { values, problems, unknown };
}

/** Path or header parameters: one raw value each (or none). */
export function readSingles(group: ParameterGroup, get: (name: string) => string | undefined): ReadResult {
  const values: Record<string, unknown> = {};
  const problems: ProblemItem[] = [];
  for (const spec of group.params) {
    const raw = get(spec.name);
    if (raw !== undefined) values[spec.name] = readParameter(spec, [raw], problems);
  }
  return { values, problems, unknown: [] };
}

/**
 * A form body as an object: declared list fields become arrays, other
 * fields single values (repeated → a problem), each typed by its schema.
 * Properties are defined, never assigned, so a field named `__proto__`
 * is an ordinary key.
 */
export function readForm(
  pairs: Pairs,
  fields: Readonly<Record<string, FieldSpec>> | undefined,
): { value: Record<string, unknown>; problems: ProblemItem[] } {
  const grouped = new Map<string, string[]>();
  for (const [name, value] of pairs) {
    const list = grouped.get(name);
    if (list) list.push(value);
    else grouped.set(name, [value]);
  }
  const value: Record<string, unknown> = {};
  const problems: ProblemItem[] = [];
  for (const [name, raw] of grouped) {
    const spec = fields !== undefined && Object.hasOwn(fields, name) ? fields[name] : undefined;
    let typed: unknown;
    if (spec?.array) typed = raw.map((r) => coerce(r, spec.types));
    else {
      if (raw.length > 1) problems.push({ location: `/body/${pointerSegment(name)}`, rule: 'duplicate' });
      typed = coerce(raw[0]!, spec?.types ?? []);
    }
    Object.defineProperty(value, name, {
      value: typed,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return { value, problems };
}
