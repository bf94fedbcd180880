/**
 * The compiled per-route settings of validation, inspection and response
 * filtering, and `compileRouteApi`, which builds them from a route's raw
 * config (defaults applied here too, so it can be called on any raw route).
 */
import { Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { parseDuration, parseSize } from '../util/units.js';
import { compileInlineOperation } from './inline.js';
import {
  type Category,
  InspectionSchema,
  type RawInspection,
  type RawResponses,
  type RawRouteApi,
  type RawValidation,
  ResponsesSchema,
  type Transform,
  ValidationSchema,
} from './schema.js';
import type { CompiledOperation } from './types.js';

export interface JsonLimits {
  readonly maxDepth: number;
  readonly maxKeys: number;
  readonly maxString: number;
}

export interface ValidationSettings {
  readonly mode: 'enforce' | 'shadow' | 'off';
  readonly unknownQuery: 'reject' | 'allow';
  readonly transforms: readonly Transform[];
  readonly jsonLimits: JsonLimits;
}

/** An input location not inspected, as pointer segments (`*` matches any one segment; none: everywhere). */
export interface Exclusion {
  readonly segments: readonly string[];
  /** Undefined: every category (unless rules or tags narrow it). */
  readonly categories: readonly Category[] | undefined;
  /** Rule ids excluded (CRS or Portcullis); present only when configured. */
  readonly rules?: readonly string[];
  /** CRS tags whose rules are excluded; present only when configured. */
  readonly tags?: readonly string[];
}

export interface InspectionSettings {
  readonly mode: 'block' | 'monitor' | 'off';
  readonly categories: readonly Category[];
  readonly exclusions: readonly Exclusion[];
  /** The detection engine's CPU-time budget per request and per further 4,096 characters of text (`budgetFor`), in microseconds. */
  readonly timeoutMicros: number;
  /** OWASP CRS paranoia level, 1-4. */
  readonly paranoiaLevel: number;
  /** Inbound anomaly score at which a request is rejected. */
  readonly anomalyThreshold: number;
}

export interface ResponseSettings {
  readonly mode: 'filter' | 'block' | 'off';
  /** Lower-cased property names whose values are redacted. */
  readonly redactKeys: readonly string[];
  /** Replaces sensitive patterns in a string; undefined when none are configured. */
  readonly redactText: ((text: string) => string) | undefined;
  readonly passThroughLarge: boolean;
  /** Lower-cased response media types (`type/*` allowed) sent unfiltered, declared or not. */
  readonly passThroughMediaTypes: readonly string[];
  readonly maxBytes: number;
  /** Lower-cased response header names removed beyond the built-in list. */
  readonly stripHeaders: readonly string[];
}

/** The API-description part of a route's settings (`RouteSettings` extends it). */
export interface ApiRouteSettings {
  /** The described operation of each method (HEAD shares GET's); empty when nothing describes the route. */
  readonly operations: Readonly<Record<string, CompiledOperation>>;
  readonly validation: ValidationSettings;
  readonly inspection: InspectionSettings;
  readonly responses: ResponseSettings;
}

/** A problem in a route's settings, at a dotted path relative to the route (`validation.request_schema.body`). */
export interface RouteApiIssue {
  readonly path: string;
  readonly message: string;
}

export class RouteApiError extends Error {
  readonly issues: readonly RouteApiIssue[];
  constructor(issues: RouteApiIssue[]) {
    super(`invalid route settings:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`);
    this.name = 'RouteApiError';
    this.issues = issues;
  }
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, verbose: true });
ajv.addKeyword({ keyword: 'expected', schemaType: 'string' });
// Each section is wrapped in an object, so its root `default: {}` applies as it does in the config.
const sections = {
  validation: ajv.compile(Type.Object({ validation: ValidationSchema })),
  inspection: ajv.compile(Type.Object({ inspection: InspectionSchema })),
  responses: ajv.compile(Type.Object({ responses: ResponsesSchema })),
};

/** Applies defaults to (a copy of) one section and reports schema errors under `name`. */
function section<T>(name: keyof typeof sections, raw: unknown, issues: RouteApiIssue[]): T {
  const holder: Record<string, unknown> = { [name]: structuredClone(raw ?? {}) };
  const check = sections[name];
  if (!check(holder)) {
    const errors = check.errors ?? [];
    const anyOfs = errors
      .filter((e) => e.keyword === 'anyOf')
      .map((e) => e.schemaPath.replace(/anyOf$/, 'anyOf/'));
    for (const e of errors) {
      // Branch failures of an anyOf are summarised by the anyOf's own error.
      if (e.keyword !== 'anyOf' && anyOfs.some((p) => e.schemaPath.startsWith(p))) continue;
      const parent = e.parentSchema as { expected?: string; anyOf?: { const?: unknown }[] } | undefined;
      const consts = parent?.anyOf?.every((b) => 'const' in b)
        ? parent.anyOf.map((b) => JSON.stringify(b.const))
        : undefined;
      const expected =
        parent?.expected ??
        (consts ? `one of ${consts.join(', ')}` : `a value that ${e.message ?? 'is valid'}`);
      issues.push({ path: e.instancePath.slice(1).replace(/\//g, '.'), message: `expected ${expected}` });
    }
  }
  return holder[name] as T;
}

export function compileValidation(raw: RawValidation): ValidationSettings {
  const limits = raw.json_limits ?? { max_depth: 32, max_keys: 1000, max_string: 65536 };
  return {
    mode: raw.mode,
    unknownQuery: raw.unknown_query,
    transforms: raw.transforms,
    jsonLimits: { maxDepth: limits.max_depth, maxKeys: limits.max_keys, maxString: limits.max_string },
  };
}

/** `query.q` and `/query/q` → `['query', 'q']`; header names lower-cased. */
export function locationSegments(location: string): string[] {
  const segments = location.startsWith('/')
    ? location
        .slice(1)
        .split('/')
        .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    : [location.slice(0, location.indexOf('.')), location.slice(location.indexOf('.') + 1)];
  if (segments[0] === 'header' && segments[1] !== undefined) segments[1] = segments[1].toLowerCase();
  return segments;
}

export function compileInspection(raw: RawInspection): InspectionSettings {
  return {
    mode: raw.mode,
    categories: raw.categories,
    exclusions: raw.exclude.map((e) =>
      typeof e === 'string'
        ? { segments: locationSegments(e), categories: undefined }
        : {
            segments: e.location === undefined ? [] : locationSegments(e.location),
            categories: e.categories,
            ...(e.rules === undefined ? {} : { rules: e.rules }),
            ...(e.tags === undefined ? {} : { tags: e.tags }),
          },
    ),
    // The engine refuses a zero budget; 0ms means the least it accepts.
    timeoutMicros: Math.max(1, parseDuration(raw.timeout) * 1000),
    paranoiaLevel: raw.paranoia_level,
    anomalyThreshold: raw.anomaly_threshold,
  };
}

/** Built-in sensitive patterns; `check` confirms a match (checksums) so ordinary numbers survive. */
const PATTERNS: Record<string, { source: string; flags?: string; check?: (match: string) => boolean }> = {
  card: { source: '\\b(?:\\d[ -]?){12,18}\\d\\b', check: luhn },
  ssn: { source: '\\b(?!000|666|9\\d\\d)\\d{3}-(?!00)\\d{2}-(?!0000)\\d{4}\\b' },
  jwt: { source: '\\beyJ[A-Za-z0-9_-]{4,}\\.eyJ[A-Za-z0-9_-]{4,}\\.[A-Za-z0-9_-]*' },
  iban: { source: '\\b[A-Z]{2}\\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\\b', check: ibanValid },
  aws_key: { source: '\\b(?:AKIA|ASIA)[A-Z0-9]{16}\\b' },
  private_key: { source: '-----BEGIN [A-Z ]*PRIVATE KEY-----[\\s\\S]*?-----END [A-Z ]*PRIVATE KEY-----' },
  bearer: { source: '\\bBearer\\s+[A-Za-z0-9._~+/-]+=*', flags: 'i' },
};

export const REDACTED = '[redacted]';

function luhn(match: string): boolean {
  const digits = match.replace(/\D/g, '');
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

function ibanValid(match: string): boolean {
  const compact = match.replace(/ /g, '');
  const rearranged = compact.slice(4) + compact.slice(0, 4);
  let remainder = 0;
  for (const ch of rearranged) {
    const code = ch.charCodeAt(0);
    const value = code >= 65 ? String(code - 55) : ch;
    for (const digit of value) remainder = (remainder * 10 + Number(digit)) % 97;
  }
  return remainder === 1;
}

export function compileResponses(raw: RawResponses, issues: RouteApiIssue[] = []): ResponseSettings {
  const matchers: { re: RegExp; check: ((m: string) => boolean) | undefined }[] = [];
  raw.redact_patterns.forEach((p, i) => {
    if (typeof p === 'string') {
      const builtin = PATTERNS[p]!;
      matchers.push({ re: new RegExp(builtin.source, `g${builtin.flags ?? ''}`), check: builtin.check });
      return;
    }
    try {
      matchers.push({ re: new RegExp(p.regex, 'gu'), check: undefined });
    } catch (err) {
      issues.push({
        path: `responses.redact_patterns[${i}].regex`,
        message: `not a valid regular expression: ${(err as Error).message}`,
      });
    }
  });
  // The regular expressions live in this closure, out of reach of the loader's deep freeze
  // (a frozen global RegExp cannot have its lastIndex reset).
  const redactText =
    matchers.length === 0
      ? undefined
      : (text: string): string => {
          let out = text;
          for (const { re, check } of matchers) {
            out = out.replace(re, (m) => (check === undefined || check(m) ? REDACTED : m));
          }
          return out;
        };
  return {
    mode: raw.mode,
    redactKeys: raw.redact.map((k) => k.toLowerCase()),
    redactText,
    passThroughLarge: raw.pass_through_large,
    passThroughMediaTypes: raw.pass_through_media_types.map((t) => t.toLowerCase()),
    maxBytes: parseSize(raw.max_bytes),
    stripHeaders: raw.strip_headers.map((h) => h.toLowerCase()),
  };
}

/**
 * Compiles a route's `validation`, `inspection` and `responses` (defaults
 * applied) together with the operations that describe it: those of an API
 * document (by method), or, for a route without one, its inline schemas.
 * Throws RouteApiError listing every problem.
 */
export function compileRouteApi(
  raw: RawRouteApi,
  route: { template: string; methods: readonly string[] },
  operations: Readonly<Record<string, CompiledOperation>> = {},
): ApiRouteSettings {
  const issues: RouteApiIssue[] = [];
  const validation = section<RawValidation>('validation', raw.validation, issues);
  const inspection = section<RawInspection>('inspection', raw.inspection, issues);
  const responses = section<RawResponses>('responses', raw.responses, issues);
  if (issues.length > 0) throw new RouteApiError(issues);
  const byMethod: Record<string, CompiledOperation> = { ...operations };
  const inline = validation.request_schema !== undefined || responses.schemas !== undefined;
  if (inline) {
    if (Object.keys(operations).length > 0) {
      issues.push({
        path: validation.request_schema ? 'validation.request_schema' : 'responses.schemas',
        message: 'inline schemas are for routes the API document does not describe; this one it does',
      });
    }
    for (const method of route.methods) {
      if (method === 'HEAD' && route.methods.includes('GET')) continue;
      const compiled = compileInlineOperation(
        route.template,
        method,
        validation.request_schema,
        responses.schemas,
      );
      for (const i of compiled.issues) issues.push({ path: i.pointer, message: i.message });
      byMethod[method] = compiled.operation;
    }
  }
  if (byMethod.GET !== undefined && byMethod.HEAD === undefined && route.methods.includes('HEAD'))
    byMethod.HEAD = byMethod.GET;
  const compiledResponses = compileResponses(responses, issues);
  if (issues.length > 0) throw new RouteApiError(issues);
  return {
    operations: byMethod,
    validation: compileValidation(validation),
    inspection: compileInspection(inspection),
    responses: compiledResponses,
  };
}
