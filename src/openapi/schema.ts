/**
 * The configuration of input validation, injection inspection and response
 * filtering, as TypeBox schemas in the conventions of `src/config/schema.ts`
 * (snake_case, closed objects, a description on every field).
 * `RouteApiProperties` is part of `RouteSchema`, and `api` of `ConfigSchema`.
 */
import { type Static, Type } from '@sinclair/typebox';
import { section, strict } from '../config/schema-kit.js';
import { DURATION_PATTERN, SIZE_PATTERN } from '../util/units.js';

/** A JSON Schema (draft 2020-12), written inline in the config. */
const JsonSchema = (description: string) =>
  Type.Record(Type.String(), Type.Unknown(), {
    description,
    expected: 'a JSON Schema (draft 2020-12) as a mapping',
  });

export const TRANSFORMS = ['nfc', 'trim', 'strip_control'] as const;
export const CATEGORIES = ['sqli', 'xss', 'cmdi', 'traversal', 'nosql', 'ssti'] as const;
export const BUILTIN_PATTERNS = ['card', 'ssn', 'jwt', 'iban', 'aws_key', 'private_key', 'bearer'] as const;

const Category = Type.Union(
  CATEGORIES.map((c) => Type.Literal(c)),
  {
    description:
      'An injection category: sqli, xss, cmdi (OS commands), traversal (paths), nosql (operators), ssti (templates and expression languages).',
  },
);

/** Where an input sits: `/body/description`, `/body/items/*\/note`, `/query/q` or the short `query.q`. */
const Location = Type.String({
  pattern: '^(/(body|query|path|header|cookie)(/.*)?|(query|path|header|cookie)\\.[^.]+)$',
  description:
    'An input location: a JSON pointer under /body, /query, /path, /header or /cookie ("*" matches any key or index), or the short form query.NAME.',
  expected: 'a location such as /body/description, /body/items/*/note or query.q',
});

export const RequestSchemaSchema = strict(
  {
    path: Type.Optional(JsonSchema('Object schema of the path parameters (one property per parameter).')),
    query: Type.Optional(JsonSchema('Object schema of the query parameters (one property per parameter).')),
    headers: Type.Optional(
      JsonSchema('Object schema of the request headers that are checked (lower-case property names).'),
    ),
    cookies: Type.Optional(JsonSchema('Object schema of the cookies that are checked.')),
    body: Type.Optional(JsonSchema('Schema of the body (JSON, or form fields for form media types).')),
    content_types: Type.Array(Type.String({ minLength: 3 }), {
      default: ['application/json'],
      description: 'Media types accepted for the body when `body` is given.',
    }),
    body_required: Type.Boolean({
      default: true,
      description: 'Whether a body must be sent when `body` is given.',
    }),
  },
  'Inline JSON Schemas for a route that no API document describes.',
);

export const JsonLimitsSchema = section(
  {
    max_depth: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 32,
      description: 'Deepest nesting of objects and arrays in a JSON body.',
    }),
    max_keys: Type.Integer({
      minimum: 1,
      default: 1000,
      description: 'Most object keys in a JSON body, counted over the whole document.',
    }),
    max_string: Type.Integer({
      minimum: 1,
      default: 65536,
      description: 'Longest string (or key) in a JSON body, in characters.',
    }),
  },
  'Structural limits on JSON bodies, checked before the body is parsed into objects.',
);

export const ValidationSchema = section(
  {
    mode: Type.Union([Type.Literal('enforce'), Type.Literal('shadow'), Type.Literal('off')], {
      default: 'enforce',
      description:
        'enforce rejects requests that do not match the description (400, or 415 for a media type); shadow lets them through and logs and counts what would have been rejected; off skips validation.',
    }),
    unknown_query: Type.Union([Type.Literal('reject'), Type.Literal('allow')], {
      default: 'reject',
      description: 'Whether query parameters the description does not declare are rejected.',
    }),
    request_schema: Type.Optional(RequestSchemaSchema),
    transforms: Type.Array(
      Type.Union(
        TRANSFORMS.map((t) => Type.Literal(t)),
        {
          description:
            'nfc (Unicode NFC normalisation), trim, or strip_control (control and bidi characters).',
        },
      ),
      {
        default: [],
        uniqueItems: true,
        description:
          'Changes applied to the string values of a valid JSON or form body, in this order; the upstream then receives the changed body.',
      },
    ),
    json_limits: Type.Optional(JsonLimitsSchema),
  },
  'Request validation against the API description (or inline schemas).',
);

const Exclusion = Type.Union(
  [
    Location,
    Type.Object(
      {
        location: Type.Optional(Location),
        categories: Type.Optional(
          Type.Array(Category, {
            minItems: 1,
            uniqueItems: true,
            description: 'Categories not checked at this location; the others still are.',
          }),
        ),
        rules: Type.Optional(
          Type.Array(Type.String({ minLength: 1 }), {
            minItems: 1,
            uniqueItems: true,
            description:
              'Rule ids not applied at this location (CRS ids such as 942100, or Portcullis ids such as pc-sqli-110); everywhere when location is absent.',
          }),
        ),
        tags: Type.Optional(
          Type.Array(Type.String({ minLength: 1 }), {
            minItems: 1,
            uniqueItems: true,
            description:
              'Rules with any of these CRS tags (attack-sqli, platform-windows, language-php, ...) not applied at this location; everywhere when location is absent.',
          }),
        ),
      },
      {
        additionalProperties: false,
        minProperties: 1,
        description:
          'An input location excluded from some categories, rules or tags only, or rules or tags excluded everywhere (like a CRS exclusion rule).',
      },
    ),
  ],
  {
    description: 'An input location not inspected (a known false positive, such as a rich-text field).',
    expected:
      'a location such as /body/description, or { location, categories, rules, tags } with at least one of them',
  },
);

export const InspectionSchema = section(
  {
    mode: Type.Union([Type.Literal('block'), Type.Literal('monitor'), Type.Literal('off')], {
      default: 'block',
      description:
        'block answers 403 input.rejected; monitor lets the request through and logs what was detected; off skips inspection.',
    }),
    categories: Type.Array(Category, {
      default: [...CATEGORIES],
      uniqueItems: true,
      description: 'Injection categories looked for.',
    }),
    exclude: Type.Array(Exclusion, { default: [], description: 'Input locations not inspected.' }),
    timeout: Type.String({
      pattern: DURATION_PATTERN,
      default: '10ms',
      description:
        'CPU-time budget of the detection engine per request of up to 4,096 characters of text, and as much again per further 4,096 (CPU time, so a busy machine does not turn ordinary requests into rejections; in proportion to the text, so a large body is not refused for its size). A request whose inspection needs more is rejected in block mode (fail closed) and let through with a log line in monitor mode.',
      expected: 'a duration such as 5ms or 20ms',
    }),
    paranoia_level: Type.Integer({
      minimum: 1,
      maximum: 4,
      default: 1,
      description:
        'OWASP CRS paranoia level, 1 to 4: each level adds stricter rules (more detection, more false positives) to those of the levels below.',
      expected: 'an integer from 1 to 4',
    }),
    anomaly_threshold: Type.Integer({
      minimum: 1,
      default: 5,
      description:
        'Inbound anomaly score at which a request is rejected, as in the CRS: each rule that matches adds its severity (critical 5, error 4, warning 3, notice 2). 5 rejects on any critical match; notices and warnings alone need company.',
      expected: 'a positive integer',
    }),
  },
  'Injection detection on every input: path, query, headers, cookies and body values and keys.',
);

const CustomPattern = strict(
  {
    name: Type.String({ pattern: '^[a-z][a-z0-9_]*$', description: 'A name for logs.' }),
    regex: Type.String({
      minLength: 1,
      description: 'A JavaScript regular expression matched in string values.',
    }),
  },
  'A custom sensitive pattern.',
);

export const ResponsesSchema = section(
  {
    mode: Type.Union([Type.Literal('filter'), Type.Literal('block'), Type.Literal('off')], {
      default: 'filter',
      description:
        "filter removes what the description does not declare from JSON responses, redacts every response it can read and answers 502 for one it cannot; block answers 502 for a response that does not match instead; off passes responses unchanged (upstream 5xx bodies are then not masked either). Requests' Accept is narrowed to the declared response media types (406 when none is acceptable).",
    }),
    redact: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description:
        'Property names (case-insensitive) whose values are replaced by "[redacted]" wherever they appear in a JSON response, and the text of elements and values of attributes of these local names in an XML response.',
    }),
    redact_patterns: Type.Array(
      Type.Union([
        Type.Union(
          BUILTIN_PATTERNS.map((p) => Type.Literal(p)),
          {
            description:
              'A built-in pattern: card (Luhn-valid card numbers), ssn (US social security numbers), jwt, iban, aws_key, private_key (PEM blocks), bearer (Authorization values).',
          },
        ),
        CustomPattern,
      ]),
      {
        default: [],
        description:
          'Patterns replaced by "[redacted]" inside every string of a JSON response, and anywhere in an XML or text (text/*) response.',
      },
    ),
    schemas: Type.Optional(
      Type.Record(
        Type.String({ pattern: '^([1-5][0-9X]{2}|default)$' }),
        JsonSchema('Schema of the JSON body.'),
        {
          description:
            'Inline response schemas by status (200, 2XX, default) for a route no API document describes.',
        },
      ),
    ),
    pass_through_large: Type.Boolean({
      default: false,
      description:
        'Stream responses that cannot be filtered (longer than max_bytes, or a streaming media type) instead of answering 502, when their media type is declared for their status (or listed in pass_through_media_types).',
    }),
    pass_through_media_types: Type.Array(
      Type.String({
        pattern: '^[A-Za-z0-9!#$&^_.+-]+/(\\*|[A-Za-z0-9!#$&^_.+-]+)$',
        expected: 'a media type such as image/png or image/*',
      }),
      {
        default: [],
        description:
          'Response media types (such as image/png, or image/*) sent to the client unfiltered and unredacted, declared or not. Any other response whose media type the route does not declare, or that Portcullis cannot filter (it reads JSON, XML and text/*), is answered with 502.',
      },
    ),
    max_bytes: Type.String({
      pattern: SIZE_PATTERN,
      default: '8mb',
      description: 'Largest response body collected for filtering.',
      expected: 'a size such as 1mb or 8mb',
    }),
    strip_headers: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description:
        'Extra upstream response headers removed, beyond the built-in list of headers that reveal internals.',
    }),
  },
  'Response filtering to the API description, redaction, and masking of upstream errors.',
);

/** The per-route keys of validation, inspection and response filtering (part of `RouteSchema`). */
export const RouteApiProperties = {
  validation: Type.Optional(ValidationSchema),
  inspection: Type.Optional(InspectionSchema),
  responses: Type.Optional(ResponsesSchema),
};

/**
 * The top-level `api` section. Each entry of `operations` is only checked
 * to be a mapping here: it is merged over the document's `x-portcullis-…`
 * extensions first and then validated as a route (see `documentRoutes`), so
 * that route defaults never override what the document says.
 */
export const ApiSchema = strict(
  {
    document: Type.String({
      minLength: 1,
      description: 'Path of the OpenAPI 3.0 or 3.1 document (YAML or JSON), relative to this file.',
    }),
    upstream: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Upstream of the operations that name none (x-portcullis-upstream).',
      }),
    ),
    base_path: Type.String({
      pattern: '^(/[^\\s?#]*[^/\\s?#])?$',
      default: '',
      description: "Prefix of every operation's path at the gateway, e.g. /v1; empty for none.",
      expected: 'empty, or a path such as /v1 without a trailing slash',
    }),
    operations: Type.Record(
      Type.String({ minLength: 1 }),
      Type.Record(Type.String(), Type.Unknown(), {
        description: 'Route options (any route key except path and methods).',
        expected: 'a mapping of route options such as upstream, auth, body_limit, validation',
      }),
      {
        default: {},
        description:
          'Route options by operationId; they override the x-portcullis-… extensions of the document.',
      },
    ),
  },
  'The API description: its operations become the allow-list of routes unless `routes` are given.',
);

export type RawApi = Static<typeof ApiSchema>;
export type RawValidation = Static<typeof ValidationSchema>;
export type RawInspection = Static<typeof InspectionSchema>;
export type RawResponses = Static<typeof ResponsesSchema>;
export type RawRequestSchema = Static<typeof RequestSchemaSchema>;
export type Category = (typeof CATEGORIES)[number];
export type Transform = (typeof TRANSFORMS)[number];

/** The raw per-route keys of this feature, after schema defaults. */
export interface RawRouteApi {
  validation?: RawValidation;
  inspection?: RawInspection;
  responses?: RawResponses;
}
