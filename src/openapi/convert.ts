/**
 * Schema rewrites done once at start-up, on copies of the bundled document:
 * OpenAPI 3.0 Schema Objects into draft-07 JSON Schema, and the request and
 * response views of readOnly / writeOnly.
 */
import { forEachSchema, getAt, isObject, type JsonObject, refPointer } from './walk.js';

/**
 * OpenAPI 3.0 is a dialect of draft-04/05: `nullable` instead of a `null`
 * type, boolean `exclusiveMinimum`/`exclusiveMaximum`. Rewritten in place
 * into their draft-07 meaning, which ajv understands.
 */
export function convertOpenApi30(doc: JsonObject): void {
  forEachSchema(doc, (s) => {
    if (s.nullable === true) {
      if (typeof s.type === 'string') s.type = [s.type, 'null'];
      if (Array.isArray(s.enum) && !s.enum.includes(null)) s.enum = [...s.enum, null];
    }
    delete s.nullable;
    for (const [flag, bound] of [
      ['exclusiveMinimum', 'minimum'],
      ['exclusiveMaximum', 'maximum'],
    ] as const) {
      if (s[flag] === true && typeof s[bound] === 'number') {
        s[flag] = s[bound];
        delete s[bound];
      } else if (typeof s[flag] === 'boolean') {
        delete s[flag];
      }
    }
  });
}

/** Whether a property schema (or the schema its `$ref` names) carries `flag: true`. */
function marked(doc: JsonObject, schema: unknown, flag: 'readOnly' | 'writeOnly'): boolean {
  if (!isObject(schema)) return false;
  if (schema[flag] === true) return true;
  if (typeof schema.$ref === 'string') {
    const at = refPointer(schema.$ref);
    const target = at === undefined ? undefined : getAt(doc, at);
    return isObject(target) && target[flag] === true;
  }
  return false;
}

/**
 * The request view (`readOnly`) or response view (`writeOnly`) of the
 * document: properties marked so are dropped from `required`, as OpenAPI
 * says ("a readOnly property in required applies to the response only").
 * Rewrites `doc` in place; pass a copy.
 */
export function sideView(doc: JsonObject, flag: 'readOnly' | 'writeOnly'): JsonObject {
  forEachSchema(doc, (s) => {
    if (!Array.isArray(s.required) || !isObject(s.properties)) return;
    const props = s.properties;
    const kept = s.required.filter((name) => typeof name !== 'string' || !marked(doc, props[name], flag));
    if (kept.length !== s.required.length) s.required = kept;
  });
  return doc;
}
