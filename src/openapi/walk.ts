/** JSON pointers and the positions of Schema Objects in an OpenAPI document. */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** RFC 6901 encoding of one segment. */
export function escapeSegment(segment: string | number): string {
  return String(segment).replace(/~/g, '~0').replace(/\//g, '~1');
}

export function pointer(...segments: (string | number)[]): string {
  return segments.map((s) => `/${escapeSegment(s)}`).join('');
}

/** The value at the JSON pointer `ptr` (`/a/b`), or undefined. */
export function getAt(root: unknown, ptr: string): unknown {
  if (ptr === '') return root;
  let cur: unknown = root;
  for (const raw of ptr.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) cur = cur[Number(key)];
    else if (isObject(cur)) cur = Object.hasOwn(cur, key) ? cur[key] : undefined;
    else return undefined;
  }
  return cur;
}

/**
 * Follows a chain of internal `$ref`s (`#/components/…`) from the object at
 * `ptr`, as OpenAPI does for Parameter, Request Body and Response objects.
 * Returns the target and its pointer, or an error message.
 */
export function follow(
  doc: unknown,
  value: unknown,
  ptr: string,
): { value: unknown; pointer: string } | { error: string } {
  let cur = value;
  let at = ptr;
  for (let hops = 0; hops < 32; hops++) {
    if (!isObject(cur) || typeof cur.$ref !== 'string') return { value: cur, pointer: at };
    const ref = cur.$ref;
    if (!ref.startsWith('#')) return { error: `unresolved external reference ${ref}` };
    const target = refPointer(ref);
    if (target === undefined) return { error: `reference ${ref} is not a JSON pointer` };
    at = target;
    cur = getAt(doc, at);
    if (cur === undefined) return { error: `reference ${ref} points at nothing` };
  }
  return { error: 'reference chain too long or circular' };
}

/** The JSON pointer of an internal reference (`#/a/b%20c` → `/a/b c`), or undefined. */
export function refPointer(ref: string): string | undefined {
  if (!ref.startsWith('#')) return undefined;
  try {
    const ptr = decodeURIComponent(ref.slice(1));
    return ptr === '' || ptr.startsWith('/') ? ptr : undefined;
  } catch {
    return undefined;
  }
}

const SCHEMA_MAPS = ['properties', 'patternProperties', 'dependentSchemas', '$defs', 'definitions'] as const;
const SCHEMA_LISTS = ['allOf', 'anyOf', 'oneOf', 'prefixItems'] as const;
const SCHEMA_SINGLES = [
  'additionalProperties',
  'unevaluatedProperties',
  'unevaluatedItems',
  'not',
  'if',
  'then',
  'else',
  'contains',
  'propertyNames',
  'contentSchema',
  'additionalItems',
] as const;

/** Calls `visit` on `schema` and every subschema inside it, with their pointers. */
export function walkSchema(
  schema: unknown,
  at: string,
  visit: (schema: JsonObject, at: string) => void,
): void {
  if (!isObject(schema)) return;
  visit(schema, at);
  for (const key of SCHEMA_MAPS) {
    const map = schema[key];
    if (isObject(map))
      for (const [k, v] of Object.entries(map)) walkSchema(v, `${at}/${key}/${escapeSegment(k)}`, visit);
  }
  for (const key of SCHEMA_LISTS) {
    const list = schema[key];
    if (Array.isArray(list)) for (const [i, v] of list.entries()) walkSchema(v, `${at}/${key}/${i}`, visit);
  }
  for (const key of SCHEMA_SINGLES) walkSchema(schema[key], `${at}/${key}`, visit);
  const items = schema.items;
  if (Array.isArray(items)) for (const [i, v] of items.entries()) walkSchema(v, `${at}/items/${i}`, visit);
  else walkSchema(items, `${at}/items`, visit);
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** The top-level Schema Objects of a document (those not inside another schema), with pointers. */
export function rootSchemas(doc: JsonObject): { schema: unknown; at: string }[] {
  const out: { schema: unknown; at: string }[] = [];
  const components = isObject(doc.components) ? doc.components : {};
  const each = (map: unknown, at: string, fn: (v: JsonObject, at: string) => void) => {
    if (isObject(map))
      for (const [k, v] of Object.entries(map)) if (isObject(v)) fn(v, `${at}/${escapeSegment(k)}`);
  };
  const media = (content: unknown, at: string) =>
    each(content, at, (m, mAt) => {
      out.push({ schema: m.schema, at: `${mAt}/schema` });
      each(m.encoding, `${mAt}/encoding`, (e, eAt) => each(e.headers, `${eAt}/headers`, header));
    });
  const header = (h: JsonObject, at: string) => {
    out.push({ schema: h.schema, at: `${at}/schema` });
    media(h.content, `${at}/content`);
  };
  const parameter = header;
  const response = (r: JsonObject, at: string) => {
    media(r.content, `${at}/content`);
    each(r.headers, `${at}/headers`, header);
  };
  each(components.schemas, '/components/schemas', (s, at) => out.push({ schema: s, at }));
  each(components.parameters, '/components/parameters', parameter);
  each(components.headers, '/components/headers', header);
  each(components.requestBodies, '/components/requestBodies', (b, at) => media(b.content, `${at}/content`));
  each(components.responses, '/components/responses', response);
  each(doc.paths, '/paths', (item, itemAt) => {
    if (Array.isArray(item.parameters)) {
      for (const [i, p] of item.parameters.entries())
        if (isObject(p)) parameter(p, `${itemAt}/parameters/${i}`);
    }
    for (const m of METHODS) {
      const op = item[m];
      if (!isObject(op)) continue;
      const opAt = `${itemAt}/${m}`;
      if (Array.isArray(op.parameters)) {
        for (const [i, p] of op.parameters.entries())
          if (isObject(p)) parameter(p, `${opAt}/parameters/${i}`);
      }
      if (isObject(op.requestBody)) media(op.requestBody.content, `${opAt}/requestBody/content`);
      each(op.responses, `${opAt}/responses`, response);
    }
  });
  return out.filter((s) => s.schema !== undefined);
}

/** Every Schema Object of the document, each once by position. */
export function forEachSchema(doc: JsonObject, visit: (schema: JsonObject, at: string) => void): void {
  for (const { schema, at } of rootSchemas(doc)) walkSchema(schema, at, visit);
}

export { METHODS };
