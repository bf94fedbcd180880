/**
 * The ajv instances request and response schemas are compiled with: one
 * dialect per OpenAPI version (draft-07 for converted 3.0 schemas, 2020-12
 * for 3.1), the ajv-formats formats plus OpenAPI's own, and `readOnly` /
 * `writeOnly` turned from annotations into assertions on the side where the
 * property must not appear.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { type ProblemItem, pointerSegment } from './errors.js';
import { type FieldCaller, mayAccess, WRITE_RULE } from './field-rules.js';
import { compileUrlRule, URL_RULE } from './url-rule.js';

// ajv-formats is CommonJS with `export default`; under NodeNext the default import is the module object.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
  addFormatsModule) as typeof addFormatsModule.default;

export type Dialect = 'draft-07' | '2020-12';

/**
 * `request`: a property marked readOnly must not be sent (mass assignment,
 * OWASP API3:2023). `response`: a writeOnly property must not be returned.
 * `plain`: both stay annotations.
 */
export type Side = 'request' | 'response' | 'plain';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function createAjv(dialect: Dialect, side: Side): Ajv {
  const options = {
    allErrors: true,
    strict: false,
    logger: false as const,
    messages: false,
    validateFormats: true,
    // A check is called with the caller as `this` (see `toCheck`), for `x-portcullis-write`.
    passContext: true,
    // ajv's optimiser halves nothing measurable at run time and doubles compile time;
    // a 1,000-operation document compiles thousands of validators at start-up.
    code: { optimize: false },
  };
  const ajv = dialect === '2020-12' ? new Ajv2020(options) : new Ajv(options);
  addFormats(ajv);
  ajv.addFormat('int32', {
    type: 'number',
    validate: (n: number) => Number.isInteger(n) && n >= -2147483648 && n <= 2147483647,
  });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
  ajv.addFormat('float', { type: 'number', validate: () => true });
  ajv.addFormat('double', { type: 'number', validate: () => true });
  ajv.addFormat('byte', BASE64);
  ajv.addFormat('binary', true);
  ajv.addFormat('password', true);
  const forbidden = side === 'request' ? 'readOnly' : side === 'response' ? 'writeOnly' : undefined;
  if (forbidden !== undefined) {
    ajv.removeKeyword(forbidden);
    // The keyword is evaluated only where the data has a value, so "true" means: present is invalid.
    ajv.addKeyword({ keyword: forbidden, schemaType: 'boolean', validate: (marked: boolean) => !marked });
  }
  if (side === 'request') {
    // Field rules by role (./field-rules.ts): evaluated, like readOnly, only where the data has a
    // value; a caller with none of the listed roles or scopes (or no caller) may not send it.
    ajv.addKeyword({
      keyword: WRITE_RULE,
      schemaType: 'array',
      validate(this: FieldCaller | undefined, allowed: string[]) {
        return mayAccess(this, allowed);
      },
    });
    // URL-valued inputs (./url-rule.ts, OWASP API7:2023 SSRF): a string the rule refuses is invalid.
    // Other types are left to `type`. A malformed rule fails compilation (inline schemas report it).
    ajv.addKeyword({
      keyword: URL_RULE,
      schemaType: 'object',
      compile(rule: unknown) {
        const check = compileUrlRule(rule);
        return (data: unknown) => typeof data !== 'string' || check(data) === undefined;
      },
    });
  }
  // Elsewhere (responses, plain) the rule is an annotation: ajv (strict: false) ignores it.
  return ajv;
}

/**
 * A compiled check that returns the failing locations (prefixed by `prefix`)
 * or an empty list. `caller` is who sends the data, for `x-portcullis-write`
 * rules; without one, no such rule lets a value through.
 */
export type Check = (data: unknown, caller?: FieldCaller) => ProblemItem[];

/** Wraps an ajv validator: errors become problem items under `prefix` (`/body`, `/query`). */
export function toCheck(validate: ValidateFunction, prefix: string): Check {
  return (data, caller) => {
    // passContext: `this` of the validator reaches the keyword functions (ajv passes it through $refs).
    if (validate.call(caller, data)) return [];
    return problemItems(validate.errors ?? [], prefix);
  };
}

/** ajv errors as locations and rules, without values; composition noise folded away. */
export function problemItems(errors: readonly ErrorObject[], prefix: string): ProblemItem[] {
  const out: ProblemItem[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    let location = prefix + boundedPath(e.instancePath);
    if (e.keyword === 'required') {
      location += `/${pointerSegment((e.params as { missingProperty: string }).missingProperty)}`;
    } else if (e.keyword === 'additionalProperties' || e.keyword === 'unevaluatedProperties') {
      const name =
        (e.params as { additionalProperty?: string; unevaluatedProperty?: string }).additionalProperty ??
        (e.params as { unevaluatedProperty?: string }).unevaluatedProperty ??
        '';
      location += `/${pointerSegment(name)}`;
    }
    const key = `${location} ${e.keyword}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ location, rule: e.keyword });
  }
  return out;
}

/** Re-encodes an instance path with every segment bounded: keys come from clients. */
function boundedPath(path: string): string {
  if (path === '') return '';
  let out = '';
  for (const raw of path.slice(1).split('/')) {
    out += `/${pointerSegment(raw.replace(/~1/g, '/').replace(/~0/g, '~'))}`;
  }
  return out;
}
