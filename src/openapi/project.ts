/**
 * Projection of a JSON value onto a schema: every object property the
 * schema does not declare is removed, and so is every `writeOnly` one
 * (excessive data exposure, OWASP API3:2023), and every one whose
 * `x-portcullis-read` names none of the caller's roles or scopes (field
 * rules by role, `./field-rules.ts`).
 *
 * ajv's `removeAdditional` cannot do this: it only removes where a schema
 * says `additionalProperties: false`, and it removes while trying the
 * branches of `anyOf`/`oneOf`, so a failing branch deletes properties that a
 * later branch declares. Here the declared properties of all applicable
 * subschemas are gathered first (`allOf` together, of `anyOf`/`oneOf` only
 * the branches the value matches, checked with validators compiled at
 * start-up), then the value is pruned once.
 *
 * An object schema that declares properties but says nothing about others
 * is read as closed; `additionalProperties` true or a schema opens it; a
 * schema that declares no properties at all (`type: object`, `{}`) is a
 * free-form value and kept whole.
 */
import type { ValidateFunction } from 'ajv';
import { type FieldCaller, mayAccess, READ_RULE } from './field-rules.js';
import { getAt, isObject, type JsonObject, refPointer } from './walk.js';

export interface ProjectionContext {
  /** The document (or inline schema) `$ref`s resolve in. */
  readonly root: unknown;
  /** Validators of the `anyOf`/`oneOf` branches, by branch schema object. */
  readonly branches: WeakMap<object, ValidateFunction>;
  /** Compiled `patternProperties` keys, by the schema object that declares them. */
  readonly patterns: WeakMap<object, readonly { re: RegExp; schema: unknown }[]>;
}

/** Deepest nesting pruned; a deeper response is refused rather than passed unfiltered. */
export const MAX_PROJECTION_DEPTH = 256;

export class ProjectionError extends Error {}

interface Gathered {
  props: Map<string, unknown[]>;
  patterns: { re: RegExp; schema: unknown }[];
  /** Schemas that apply to undeclared properties; `true` when they are kept unchecked. */
  additional: unknown[] | true | undefined;
  closed: boolean;
  declares: boolean;
  writeOnly: Set<string>;
  /** Properties the caller may not read (x-portcullis-read). */
  hidden: Set<string>;
  items: unknown[];
  prefixItems: unknown[][];
}

/**
 * What a projection removed: `removed`, properties the schema does not
 * declare (or declares writeOnly), which a response in block mode must not
 * carry; `hidden`, declared properties the caller may not read.
 */
export interface Projected {
  removed: boolean;
  hidden: boolean;
}

/**
 * Mutates `value` to its projection on `schema` for `caller` (none: every
 * `x-portcullis-read` property goes); returns whether anything was removed,
 * and tells in `out` what.
 */
export function project(
  schema: unknown,
  value: unknown,
  ctx: ProjectionContext,
  caller?: FieldCaller | undefined,
  out: Projected = { removed: false, hidden: false },
): boolean {
  projectAll([schema], value, { ...ctx, caller, out }, 0);
  return out.removed || out.hidden;
}

interface Walk extends ProjectionContext {
  readonly caller: FieldCaller | undefined;
  readonly out: Projected;
}

function projectAll(schemas: unknown[], value: unknown, ctx: Walk, depth: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (depth > MAX_PROJECTION_DEPTH) throw new ProjectionError('response nested too deeply to filter');
  const g: Gathered = {
    props: new Map(),
    patterns: [],
    additional: undefined,
    closed: false,
    declares: false,
    writeOnly: new Set(),
    hidden: new Set(),
    items: [],
    prefixItems: [],
  };
  for (const s of schemas) gather(s, value, ctx, g, 0);
  let changed = false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const applicable = [...(g.prefixItems[i] ?? []), ...(i >= g.prefixItems.length ? g.items : [])];
      if (applicable.length > 0 && projectAll(applicable, value[i], ctx, depth + 1)) changed = true;
    }
    return changed;
  }
  const obj = value as Record<string, unknown>;
  const keepUndeclared = !g.declares ? !g.closed : g.additional !== undefined && !g.closed;
  for (const key of Object.keys(obj)) {
    if (g.writeOnly.has(key)) {
      delete obj[key];
      changed = true;
      ctx.out.removed = true;
      continue;
    }
    if (g.hidden.has(key)) {
      delete obj[key];
      changed = true;
      ctx.out.hidden = true;
      continue;
    }
    const declared = g.props.get(key);
    const matching = g.patterns.filter((p) => p.re.test(key)).map((p) => p.schema);
    if (declared !== undefined || matching.length > 0) {
      if (projectAll([...(declared ?? []), ...matching], obj[key], ctx, depth + 1)) changed = true;
      continue;
    }
    if (keepUndeclared) {
      if (Array.isArray(g.additional) && projectAll(g.additional, obj[key], ctx, depth + 1)) changed = true;
      continue;
    }
    delete obj[key];
    changed = true;
    ctx.out.removed = true;
  }
  return changed;
}

function resolve(ref: string, ctx: ProjectionContext): unknown {
  const at = refPointer(ref);
  return at === undefined ? undefined : getAt(ctx.root, at);
}

/** Collects what `schema` (and the subschemas that apply to `value`) declare. */
function gather(schema: unknown, value: unknown, ctx: Walk, g: Gathered, hops: number): void {
  if (schema === false) {
    g.closed = true;
    g.declares = true;
    return;
  }
  if (!isObject(schema) || hops > 64) return;
  if (typeof schema.$ref === 'string') gather(resolve(schema.$ref, ctx), value, ctx, g, hops + 1);
  const s: JsonObject = schema;
  if (isObject(s.properties)) {
    g.declares = true;
    for (const [name, sub] of Object.entries(s.properties)) {
      const list = g.props.get(name);
      if (list) list.push(sub);
      else g.props.set(name, [sub]);
      if (isWriteOnly(sub, ctx)) g.writeOnly.add(name);
      // Declared in several applicable subschemas (allOf): any rule that shuts the caller out wins.
      const readers = readRule(sub, ctx);
      if (readers !== undefined && !mayAccess(ctx.caller, readers)) g.hidden.add(name);
    }
  }
  if (isObject(s.patternProperties)) {
    g.declares = true;
    for (const p of ctx.patterns.get(s) ?? []) g.patterns.push(p);
  }
  for (const key of ['additionalProperties', 'unevaluatedProperties'] as const) {
    const extra = s[key];
    if (extra === false) g.closed = true;
    else if (extra === true) g.additional = g.additional ?? true;
    else if (isObject(extra)) g.additional = Array.isArray(g.additional) ? [...g.additional, extra] : [extra];
  }
  if (Array.isArray(s.prefixItems)) for (const [i, sub] of s.prefixItems.entries()) addItem(g, i, sub);
  if (Array.isArray(s.items)) for (const [i, sub] of s.items.entries()) addItem(g, i, sub);
  else if (s.items !== undefined) g.items.push(s.items);
  if (Array.isArray(s.allOf)) for (const sub of s.allOf) gather(sub, value, ctx, g, hops + 1);
  for (const key of ['anyOf', 'oneOf'] as const) {
    const branches = s[key];
    if (!Array.isArray(branches)) continue;
    const matching = branches.filter((b) => {
      const check = isObject(b) ? ctx.branches.get(b) : undefined;
      return check === undefined || check(value) === true;
    });
    // No branch matches: the response is invalid anyway; keep only what every branch could declare.
    for (const sub of matching.length > 0 ? matching : branches) gather(sub, value, ctx, g, hops + 1);
  }
  if (s.if !== undefined) {
    gather(s.then, value, ctx, g, hops + 1);
    gather(s.else, value, ctx, g, hops + 1);
  }
  if (isObject(s.dependentSchemas) && isObject(value)) {
    for (const [name, sub] of Object.entries(s.dependentSchemas)) {
      if (Object.hasOwn(value, name)) gather(sub, value, ctx, g, hops + 1);
    }
  }
}

function addItem(g: Gathered, index: number, schema: unknown): void {
  const list = g.prefixItems[index];
  if (list) list.push(schema);
  else g.prefixItems[index] = [schema];
}

function isWriteOnly(schema: unknown, ctx: ProjectionContext): boolean {
  if (!isObject(schema)) return false;
  if (schema.writeOnly === true) return true;
  if (typeof schema.$ref !== 'string') return false;
  const target = resolve(schema.$ref, ctx);
  return isObject(target) && target.writeOnly === true;
}

/** The `x-portcullis-read` list of a property schema, or of the schemas its `$ref`s name. */
function readRule(schema: unknown, ctx: ProjectionContext): readonly string[] | undefined {
  let cur = schema;
  for (let hops = 0; hops < 32 && isObject(cur); hops++) {
    const rule = cur[READ_RULE];
    // Validated when the document loads; anything else here shuts everyone out.
    if (rule !== undefined) return Array.isArray(rule) ? rule.filter((r) => typeof r === 'string') : [];
    if (typeof cur.$ref !== 'string') return undefined;
    cur = resolve(cur.$ref, ctx);
  }
  return undefined;
}
