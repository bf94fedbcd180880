/**
 * Operations from inline JSON Schemas (draft 2020-12), for routes that no
 * API document describes. Each schema is its own root, so its `$ref`s
 * (`#/$defs/…`) resolve inside it as JSON Schema says.
 */
import { createAjv } from './ajv.js';
import {
  compileCheck,
  deref,
  essence,
  fieldSpecs,
  mediaKind,
  projectionContext,
  propertiesOf,
  registerRoot,
  type SchemaRoot,
  scalarTypes,
  shapeOf,
} from './compile.js';
import type { FieldCaller } from './field-rules.js';
import { type Projected, project } from './project.js';
import type { RawRequestSchema } from './schema.js';
import type {
  ApiDocumentIssue,
  CompiledOperation,
  ParameterGroup,
  ParameterSpec,
  ParamLocation,
  RequestBodySpec,
  ResponseSpec,
} from './types.js';
import { isObject } from './walk.js';

const LOCATIONS: { key: 'path' | 'query' | 'headers' | 'cookies'; in: ParamLocation }[] = [
  { key: 'path', in: 'path' },
  { key: 'query', in: 'query' },
  { key: 'headers', in: 'header' },
  { key: 'cookies', in: 'cookie' },
];

/**
 * Compiles the inline schemas of one method of a route. Problems are
 * returned with dotted config paths (`validation.request_schema.body`) as
 * their pointer.
 */
export function compileInlineOperation(
  template: string,
  method: string,
  request: RawRequestSchema | undefined,
  responses: Readonly<Record<string, Record<string, unknown>>> | undefined,
): { operation: CompiledOperation; issues: ApiDocumentIssue[] } {
  const issues: ApiDocumentIssue[] = [];
  const requestAjv = createAjv('2020-12', 'request');
  const responseAjv = createAjv('2020-12', 'response');
  const root = (ajv: typeof requestAjv, schema: unknown, at: string): SchemaRoot | undefined => {
    try {
      return registerRoot(ajv, structuredClone(schema), '', issues, at);
    } catch (err) {
      issues.push({ file: '', pointer: at, message: `not a usable schema: ${(err as Error).message}` });
      return undefined;
    }
  };
  const parameters = {} as Record<ParamLocation, ParameterGroup>;
  for (const { key, in: location } of LOCATIONS) {
    const schema = request?.[key];
    const at = `validation.request_schema.${key}`;
    const r = schema === undefined ? undefined : root(requestAjv, schema, at);
    if (r === undefined) {
      parameters[location] = { params: [], check: undefined };
      continue;
    }
    const required = new Set(
      isObject(schema) && Array.isArray(schema.required)
        ? schema.required.filter((n) => typeof n === 'string')
        : [],
    );
    const params: ParameterSpec[] = [];
    for (const [name, sub] of propertiesOf(r.root, r.root)) {
      const shape = shapeOf(r.root, sub);
      const resolved = deref(r.root, sub);
      const itemSchema = shape === 'array' && isObject(resolved) ? resolved.items : sub;
      const propertyTypes =
        shape === 'object'
          ? Object.fromEntries([...propertiesOf(r.root, sub)].map(([k, v]) => [k, scalarTypes(r.root, v)]))
          : undefined;
      if (shape === 'object' && location !== 'query') {
        issues.push({
          file: '',
          pointer: `${at}.properties.${name}`,
          message: 'object values are supported in the query (deepObject) only',
        });
        continue;
      }
      params.push({
        name: location === 'header' ? name.toLowerCase() : name,
        in: location,
        required: location === 'path' || required.has(name),
        style:
          location === 'path' || location === 'header'
            ? 'simple'
            : shape === 'object'
              ? 'deepObject'
              : 'form',
        explode: location === 'query' || (location === 'cookie' && shape !== 'array'),
        shape,
        types: scalarTypes(r.root, itemSchema),
        propertyTypes,
      });
    }
    parameters[location] = { params, check: compileCheck(r, { $ref: r.id }, at, `/${location}`) };
  }
  let body: RequestBodySpec | undefined;
  if (request?.body !== undefined) {
    const r = root(requestAjv, request.body, 'validation.request_schema.body');
    body = {
      required: request.body_required,
      media: request.content_types.flatMap((raw, i) => {
        const type = essence(raw);
        if (type === undefined) {
          issues.push({
            file: '',
            pointer: `validation.request_schema.content_types[${i}]`,
            message: `"${raw}" is not a media type`,
          });
          return [];
        }
        const kind = mediaKind(type);
        const validate = r !== undefined && kind !== 'other';
        return [
          {
            type,
            kind,
            check: validate
              ? compileCheck(r, { $ref: r.id }, 'validation.request_schema.body', '/body')
              : undefined,
            fields:
              r !== undefined && (kind === 'form' || kind === 'multipart')
                ? fieldSpecs(r.root, r.root)
                : undefined,
          },
        ];
      }),
    };
  }
  let compiledResponses: ResponseSpec[] | undefined;
  if (responses !== undefined) {
    compiledResponses = [];
    for (const [status, schema] of Object.entries(responses)) {
      const at = `responses.schemas.${status}`;
      const r = root(responseAjv, schema, at);
      if (r === undefined) continue;
      const projection = projectionContext(r, [{ schema: r.root, at: '' }]);
      const target = r.root;
      compiledResponses.push({
        status: status.toUpperCase(),
        media: [
          {
            type: 'application/json',
            kind: 'json',
            check: compileCheck(r, { $ref: r.id }, at, ''),
            project: (value: unknown, caller?: FieldCaller, out?: Projected) =>
              project(target, value, projection, caller, out),
          },
        ],
      });
    }
  }
  for (const name of [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!)) {
    if (request?.path !== undefined && !parameters.path.params.some((p) => p.name === name)) {
      issues.push({
        file: '',
        pointer: 'validation.request_schema.path',
        message: `path parameter {${name}} has no property`,
      });
    }
  }
  return {
    operation: {
      id: `${method} ${template}`,
      method,
      path: template,
      source: { file: '', pointer: '' },
      security: undefined,
      extensions: {},
      extensionPointers: {},
      parameters,
      body,
      responses: compiledResponses,
    },
    issues,
  };
}
