/**
 * URL-valued inputs of an operation (OWASP API7:2023): the string fields a
 * client sends that look like URLs the upstream may fetch, and whether an
 * `x-portcullis-url` rule (src/openapi/url-rule.ts) constrains each.
 */
import { URL_RULE } from '../openapi/url-rule.js';
import { getAt, isObject, type JsonObject, refPointer } from '../openapi/walk.js';

export interface UrlInput {
  /** `body.callback`, `query.redirect_uri`, `body.hooks[].url`. */
  readonly where: string;
  /** Whether an `x-portcullis-url` rule (or an enum / const) constrains it. */
  readonly constrained: boolean;
}

const URL_FORMATS = new Set(['uri', 'url', 'iri', 'uri-reference', 'iri-reference', 'uri-template']);
/** Property names that usually hold a URL the server will fetch or follow. */
const URL_NAMES =
  /(^|[_-])(url|uri|href|link|callback|webhook|redirect|endpoint|origin|feed|avatar|image_src|target)$/i;
const URL_NAMES_CAMEL = /(Url|Uri|Href|Link|Callback|Webhook|Redirect|Endpoint)$/;

function isString(schema: JsonObject): boolean {
  const t = schema.type;
  return t === 'string' || (Array.isArray(t) && t.includes('string'));
}

function looksLikeUrl(schema: JsonObject, name: string | undefined): boolean {
  if (typeof schema.format === 'string' && URL_FORMATS.has(schema.format)) return true;
  return isString(schema) && name !== undefined && (URL_NAMES.test(name) || URL_NAMES_CAMEL.test(name));
}

/** Follows a local `$ref` (one hop at a time) in `root`. */
function deref(root: unknown, value: unknown, seen: Set<unknown>): unknown {
  let cur = value;
  for (let hops = 0; hops < 32 && isObject(cur) && typeof cur.$ref === 'string'; hops++) {
    const ptr = refPointer(cur.$ref);
    if (ptr === undefined) return cur;
    if (seen.has(cur)) return undefined;
    cur = getAt(root, ptr);
  }
  return cur;
}

/** Walks `schema` (following local `$ref`s once each) and collects URL-valued strings under `where`. */
export function urlInputsOfSchema(root: unknown, schema: unknown, where: string, name?: string): UrlInput[] {
  const out: UrlInput[] = [];
  const active = new Set<unknown>();
  const visit = (value: unknown, at: string, field: string | undefined): void => {
    if (active.size > 64) return;
    const raw = value;
    const s = deref(root, value, active);
    if (!isObject(s) || active.has(s)) return;
    active.add(s);
    // A rule beside a $ref (3.1) counts as well as one on the target.
    const here = isObject(raw) && raw !== s ? { ...s, ...raw } : s;
    if (looksLikeUrl(here, field)) {
      out.push({ where: at, constrained: here[URL_RULE] !== undefined || 'enum' in here || 'const' in here });
    }
    if (isObject(s.properties)) {
      for (const [k, v] of Object.entries(s.properties)) visit(v, `${at}.${k}`, k);
    }
    if (isObject(s.items)) visit(s.items, `${at}[]`, field);
    if (isObject(s.additionalProperties)) visit(s.additionalProperties, `${at}.*`, undefined);
    for (const key of ['allOf', 'anyOf', 'oneOf'] as const) {
      const list = s[key];
      if (Array.isArray(list)) for (const v of list) visit(v, at, field);
    }
    active.delete(s);
  };
  visit(schema, where, name);
  // The same field reached through several branches counts once; unconstrained if any branch is.
  const byWhere = new Map<string, UrlInput>();
  for (const i of out) {
    const prev = byWhere.get(i.where);
    byWhere.set(
      i.where,
      prev === undefined ? i : { where: i.where, constrained: prev.constrained && i.constrained },
    );
  }
  return [...byWhere.values()];
}

const IN: Record<string, string> = { query: 'query', path: 'path', header: 'header', cookie: 'cookie' };

/** The URL-valued inputs of the operation at `pointer` in a bundled API document. */
export function urlInputsOfOperation(doc: JsonObject, pointer: string): UrlInput[] {
  const op = getAt(doc, pointer);
  if (!isObject(op)) return [];
  const item = getAt(doc, pointer.slice(0, pointer.lastIndexOf('/')));
  const seen = new Set<unknown>();
  const params = [
    ...(isObject(item) && Array.isArray(item.parameters) ? item.parameters : []),
    ...(Array.isArray(op.parameters) ? op.parameters : []),
  ];
  const out: UrlInput[] = [];
  for (const p of params) {
    const param = deref(doc, p, seen);
    if (!isObject(param) || typeof param.name !== 'string' || typeof param.in !== 'string') continue;
    const where = `${IN[param.in] ?? param.in}.${param.name}`;
    if (param.schema !== undefined) out.push(...urlInputsOfSchema(doc, param.schema, where, param.name));
  }
  const body = deref(doc, op.requestBody, seen);
  if (isObject(body) && isObject(body.content)) {
    for (const media of Object.values(body.content)) {
      if (isObject(media) && media.schema !== undefined)
        out.push(...urlInputsOfSchema(doc, media.schema, 'body'));
    }
  }
  const byWhere = new Map<string, UrlInput>();
  for (const i of out) {
    const prev = byWhere.get(i.where);
    byWhere.set(
      i.where,
      prev === undefined ? i : { where: i.where, constrained: prev.constrained && i.constrained },
    );
  }
  return [...byWhere.values()];
}

/** The URL-valued inputs of a route's inline `validation.request_schema` (draft 2020-12, each part its own root). */
export function urlInputsOfInline(requestSchema: unknown): UrlInput[] {
  if (!isObject(requestSchema)) return [];
  const out: UrlInput[] = [];
  for (const [part, where] of [
    ['path', 'path'],
    ['query', 'query'],
    ['headers', 'header'],
    ['cookies', 'cookie'],
  ] as const) {
    const schema = requestSchema[part];
    if (isObject(schema) && isObject(schema.properties)) {
      for (const [k, v] of Object.entries(schema.properties))
        out.push(...urlInputsOfSchema(schema, v, `${where}.${k}`, k));
    }
  }
  if (requestSchema.body !== undefined)
    out.push(...urlInputsOfSchema(requestSchema.body, requestSchema.body, 'body'));
  return out;
}
