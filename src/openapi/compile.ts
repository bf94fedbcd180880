/**
 * The parts of operation compilation shared by API documents and inline
 * route schemas: validators by JSON pointer into a registered root, how
 * parameters and form fields are read from text, media kinds, and the
 * start-up work response projection needs.
 */
import type { Ajv, ValidateFunction } from 'ajv';
import { type Check, toCheck } from './ajv.js';
import type { ProjectionContext } from './project.js';
import type { ApiDocumentIssue, FieldSpec, MediaKind, Scalar } from './types.js';
import { getAt, isObject, type JsonObject, refPointer, walkSchema } from './walk.js';

/** One registered root (document view or inline schema set) and where its problems are reported. */
export interface SchemaRoot {
  readonly ajv: Ajv;
  /** The id the root is registered under in `ajv`. */
  readonly id: string;
  readonly root: unknown;
  readonly file: string;
  readonly issues: ApiDocumentIssue[];
  /** Prefix of reported pointers (inline schemas: their place in the config). */
  readonly reportPrefix: string;
  /** Validators already compiled, by canonical schema (see `compileAt`). */
  readonly cache: Map<string, ValidateFunction | undefined>;
}

let nextRootId = 0;

/** Registers `root` in `ajv` under a fresh id; schemas inside are then compiled by pointer. */
export function registerRoot(
  ajv: Ajv,
  root: unknown,
  file: string,
  issues: ApiDocumentIssue[],
  reportPrefix = '',
): SchemaRoot {
  const id = `https://portcullis.invalid/schema/${++nextRootId}`;
  ajv.addSchema(root as JsonObject, id, undefined, false);
  return { ajv, id, root, file, issues, reportPrefix, cache: new Map() };
}

function encodePointer(ptr: string): string {
  return ptr.split('/').map(encodeURIComponent).join('/');
}

/** A `$ref` to the schema at `ptr` inside a registered root. */
export function refTo(root: SchemaRoot, ptr: string): { $ref: string } {
  return { $ref: `${root.id}#${encodePointer(ptr)}` };
}

export function report(root: SchemaRoot, ptr: string, message: string): void {
  root.issues.push({ file: root.file, pointer: root.reportPrefix + ptr, message });
}

/** Compiles `schema` (usually refs into the root); a failure is reported at `at` and yields undefined. */
export function compileIn(root: SchemaRoot, schema: object, at: string): ValidateFunction | undefined {
  try {
    return root.ajv.compile(schema);
  } catch (err) {
    report(root, at, `schema cannot be compiled: ${(err as Error).message}`);
    return undefined;
  }
}

export function compileCheck(
  root: SchemaRoot,
  schema: object,
  at: string,
  prefix: string,
): Check | undefined {
  const validate = compileIn(root, schema, at);
  return validate && toCheck(validate, prefix);
}

/** Where a chain of bare `{ $ref }` schemas from `ptr` ends: schemas there are the same schema. */
export function canonicalPointer(root: SchemaRoot, ptr: string): string {
  let at = ptr;
  for (let hops = 0; hops < 32; hops++) {
    const s = getAt(root.root, at);
    if (!isObject(s) || typeof s.$ref !== 'string' || Object.keys(s).length !== 1) return at;
    const next = refPointer(s.$ref);
    if (next === undefined) return at;
    at = next;
  }
  return at;
}

function hasLocalRef(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(hasLocalRef);
  if (!isObject(node)) return false;
  if (typeof node.$ref === 'string' || typeof node.$dynamicRef === 'string') return true;
  return Object.values(node).some(hasLocalRef);
}

/**
 * The validator of the schema at `ptr`, compiled once per distinct schema:
 * schemas reached through bare `$ref`s share their target's validator, and
 * schemas without references share one by content. A large document
 * repeats the same few schemas in many places; each is compiled once.
 */
export function compileAt(root: SchemaRoot, ptr: string): ValidateFunction | undefined {
  const at = canonicalPointer(root, ptr);
  const schema = getAt(root.root, at);
  const key = hasLocalRef(schema) ? `@${at}` : `=${JSON.stringify(schema)}`;
  if (root.cache.has(key)) return root.cache.get(key);
  const validate = compileIn(root, refTo(root, at), ptr);
  root.cache.set(key, validate);
  return validate;
}

/** `compileAt` as a check reporting under `prefix`. */
export function checkAt(root: SchemaRoot, ptr: string, prefix: string): Check | undefined {
  const validate = compileAt(root, ptr);
  return validate && toCheck(validate, prefix);
}

/** Compiles a wrapper schema (parameters of one location) once per distinct content. */
export function compileWrapper(
  root: SchemaRoot,
  schema: object,
  at: string,
  prefix: string,
): Check | undefined {
  const key = `#${JSON.stringify(schema)}`;
  let validate: ValidateFunction | undefined;
  if (root.cache.has(key)) validate = root.cache.get(key);
  else {
    validate = compileIn(root, schema, at);
    root.cache.set(key, validate);
  }
  return validate && toCheck(validate, prefix);
}

/** Follows `$ref`s from `schema` to the schema that says something. */
export function deref(root: unknown, schema: unknown): unknown {
  let cur = schema;
  for (let hops = 0; hops < 32 && isObject(cur) && typeof cur.$ref === 'string'; hops++) {
    // OpenAPI 3.1 allows keywords beside $ref; a type there wins over the target's.
    if (cur.type !== undefined) return cur;
    const at = refPointer(cur.$ref);
    if (at === undefined) return cur;
    cur = getAt(root, at);
  }
  return cur;
}

const SCALARS = new Set<string>(['string', 'number', 'integer', 'boolean', 'null']);

/** The scalar types a schema admits, looking through refs and composition; empty when unknown. */
export function scalarTypes(root: unknown, schema: unknown, depth = 0): Scalar[] {
  const s = deref(root, schema);
  if (!isObject(s) || depth > 8) return [];
  const out = new Set<Scalar>();
  const add = (t: unknown) => {
    if (typeof t === 'string' && SCALARS.has(t)) out.add(t as Scalar);
  };
  if (typeof s.type === 'string') add(s.type);
  else if (Array.isArray(s.type)) s.type.forEach(add);
  else {
    const values = Array.isArray(s.enum) ? s.enum : 'const' in s ? [s.const] : [];
    for (const v of values) {
      if (v === null) out.add('null');
      else if (typeof v === 'number') out.add(Number.isInteger(v) ? 'integer' : 'number');
      else if (typeof v === 'boolean') out.add('boolean');
      else if (typeof v === 'string') out.add('string');
    }
    for (const key of ['allOf', 'anyOf', 'oneOf'] as const) {
      const list = s[key];
      if (Array.isArray(list))
        for (const sub of list) for (const t of scalarTypes(root, sub, depth + 1)) out.add(t);
    }
  }
  return [...out];
}

/** `array`, `object` or `primitive`, from the schema's type. */
export function shapeOf(root: unknown, schema: unknown): 'primitive' | 'array' | 'object' {
  const s = deref(root, schema);
  if (!isObject(s)) return 'primitive';
  const types = typeof s.type === 'string' ? [s.type] : Array.isArray(s.type) ? s.type : [];
  if (types.includes('array')) return 'array';
  if (types.includes('object')) return 'object';
  if (s.items !== undefined || s.prefixItems !== undefined) return 'array';
  if (s.properties !== undefined) return 'object';
  return 'primitive';
}

/** The declared properties of an object schema (through refs and allOf), by name. */
export function propertiesOf(root: unknown, schema: unknown, depth = 0): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const s = deref(root, schema);
  if (!isObject(s) || depth > 8) return out;
  if (isObject(s.properties)) for (const [k, v] of Object.entries(s.properties)) out.set(k, v);
  if (Array.isArray(s.allOf)) {
    for (const sub of s.allOf)
      for (const [k, v] of propertiesOf(root, sub, depth + 1)) if (!out.has(k)) out.set(k, v);
  }
  return out;
}

/** How each declared field of a form body is read from text. */
export function fieldSpecs(root: unknown, schema: unknown): Record<string, FieldSpec> {
  const out: Record<string, FieldSpec> = Object.create(null);
  for (const [name, sub] of propertiesOf(root, schema)) {
    const array = shapeOf(root, sub) === 'array';
    const itemSchema = array ? (deref(root, sub) as JsonObject).items : sub;
    out[name] = { array, types: scalarTypes(root, itemSchema) };
  }
  return out;
}

/** Lower-case media type without parameters, or undefined when malformed. */
export function essence(contentType: string): string | undefined {
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+*-]+$/.test(type) || type === '*/*' ? type : undefined;
}

export function mediaKind(type: string): MediaKind {
  if (type === 'application/json' || type.endsWith('+json')) return 'json';
  if (type === 'application/x-www-form-urlencoded') return 'form';
  if (type === 'multipart/form-data') return 'multipart';
  if (type.startsWith('text/')) return 'text';
  return 'other';
}

/**
 * Start-up work for projecting responses inside `root`: a validator for
 * every `anyOf`/`oneOf` branch and the compiled `patternProperties` keys.
 * `schemas` lists the top-level schemas with their pointers.
 */
export function projectionContext(
  root: SchemaRoot,
  schemas: { schema: unknown; at: string }[],
): ProjectionContext {
  const ctx: ProjectionContext = { root: root.root, branches: new WeakMap(), patterns: new WeakMap() };
  const visit = (s: JsonObject, at: string) => {
    for (const key of ['anyOf', 'oneOf'] as const) {
      const list = s[key];
      if (!Array.isArray(list)) continue;
      list.forEach((branch, i) => {
        if (!isObject(branch) || ctx.branches.has(branch)) return;
        const validate = compileAt(root, `${at}/${key}/${i}`);
        if (validate) ctx.branches.set(branch, validate);
      });
    }
    if (isObject(s.patternProperties) && !ctx.patterns.has(s)) {
      const compiled: { re: RegExp; schema: unknown }[] = [];
      for (const [source, schema] of Object.entries(s.patternProperties)) {
        try {
          compiled.push({ re: new RegExp(source, 'u'), schema });
        } catch {
          report(root, `${at}/patternProperties`, `invalid pattern ${JSON.stringify(source)}`);
        }
      }
      ctx.patterns.set(s, compiled);
    }
  };
  for (const { schema, at } of schemas) walkSchema(schema, at, visit);
  return ctx;
}
