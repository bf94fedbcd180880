/**
 * A compiled operation: everything the validate and filter stages need for
 * one method on one path, built once at start-up from the API document (or
 * a route's inline schemas). Validators are closures, so the config loader
 * may freeze these objects.
 */
import type { Check } from './ajv.js';
import type { FieldCaller } from './field-rules.js';
import type { Projected } from './project.js';

/** A problem in an API document (or inline schema): the file, the JSON pointer in it, and what is wrong. */
export interface ApiDocumentIssue {
  readonly file: string;
  readonly pointer: string;
  readonly message: string;
}

export type ParamLocation = 'path' | 'query' | 'header' | 'cookie';

/** The JSON types a text value may be read as (for parameters and form fields). */
export type Scalar = 'string' | 'number' | 'integer' | 'boolean' | 'null';

export interface ParameterSpec {
  /** As declared; header names lower-cased. */
  readonly name: string;
  readonly in: ParamLocation;
  readonly required: boolean;
  readonly style: 'simple' | 'form' | 'spaceDelimited' | 'pipeDelimited' | 'deepObject';
  readonly explode: boolean;
  readonly shape: 'primitive' | 'array' | 'object';
  /** Types of the value, or of each item of an array, for reading it from text. */
  readonly types: readonly Scalar[];
  /** deepObject: types of each declared property. */
  readonly propertyTypes: Readonly<Record<string, readonly Scalar[]>> | undefined;
}

export interface ParameterGroup {
  readonly params: readonly ParameterSpec[];
  /** Validates the object of decoded, typed values by name; undefined when nothing is declared. */
  readonly check: Check | undefined;
}

export type MediaKind = 'json' | 'form' | 'multipart' | 'text' | 'other';

export interface FieldSpec {
  readonly array: boolean;
  readonly types: readonly Scalar[];
}

export interface RequestMedia {
  /** Lower-case media range as declared, without parameters: `application/json`, `image/*`. */
  readonly type: string;
  readonly kind: MediaKind;
  readonly check: Check | undefined;
  /** Form and multipart bodies: how each declared field is read from text. */
  readonly fields: Readonly<Record<string, FieldSpec>> | undefined;
}

export interface RequestBodySpec {
  readonly required: boolean;
  readonly media: readonly RequestMedia[];
}

export interface ResponseMedia {
  readonly type: string;
  readonly kind: 'json' | 'text' | 'other';
  /** Validates a parsed JSON body (block mode); writeOnly properties fail it. */
  readonly check: Check | undefined;
  /**
   * Removes, in place, undeclared and writeOnly properties and those whose
   * `x-portcullis-read` names none of the caller's roles or scopes (no
   * caller reads none of them); true when something was removed. `out`,
   * when given, tells the two apart (`removed`, `hidden`).
   */
  readonly project: ((value: unknown, caller?: FieldCaller, out?: Projected) => boolean) | undefined;
}

export interface ResponseSpec {
  /** `200`, `2XX` or `default`. */
  readonly status: string;
  /** Empty: the response has no body. */
  readonly media: readonly ResponseMedia[];
}

export interface SecurityScheme {
  readonly name: string;
  /** `apiKey`, `http`, `oauth2`, `openIdConnect` or `mutualTLS`. */
  readonly type: string;
  /** For `http`: `bearer`, `basic`… */
  readonly scheme: string | undefined;
  /** For `apiKey`: where the key is sent and under which name. */
  readonly in: string | undefined;
  readonly paramName: string | undefined;
}

/** One alternative of an operation's `security`: all its schemes together. */
export type SecurityRequirement = readonly {
  readonly scheme: SecurityScheme;
  readonly scopes: readonly string[];
}[];

export interface CompiledOperation {
  /** The operationId, or `METHOD /path` when the document gives none. */
  readonly id: string;
  /** Upper-case. */
  readonly method: string;
  /** The path template, `/users/{userId}`. */
  readonly path: string;
  /** Where it is described: the document and the JSON pointer of the operation. */
  readonly source: { readonly file: string; readonly pointer: string };
  /** The effective `security` (the operation's, or the document's); undefined when neither says. */
  readonly security: readonly SecurityRequirement[] | undefined;
  /** `x-portcullis-…` extensions (document, path item, operation; later wins), keyed in snake_case without the prefix. */
  readonly extensions: Readonly<Record<string, unknown>>;
  /** Where each of `extensions` was read: its JSON pointer in `source.file` (document root, path item or operation). */
  readonly extensionPointers: Readonly<Record<string, string>>;
  readonly parameters: Readonly<Record<ParamLocation, ParameterGroup>>;
  /** Undefined: the operation takes no body. */
  readonly body: RequestBodySpec | undefined;
  /** Undefined: responses are not described (an inline route without response schemas). */
  readonly responses: readonly ResponseSpec[] | undefined;
}
