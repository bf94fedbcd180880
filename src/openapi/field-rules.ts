/**
 * Field rules by role (OWASP API3:2023, broken object property level
 * authorization): a Schema Object may say who may read and who may write a
 * property, beside the readOnly / writeOnly that hold for everyone.
 *
 *   x-portcullis-read:  [admin, "users:read-internal"]
 *   x-portcullis-write: [admin]
 *
 * Each entry is a role or a scope; a caller may when its principal has ANY
 * of them (one list of alternatives, as an OAuth scope list reads: a field
 * open to `admin` or to `support` says `[admin, support]`; a rule needing
 * several at once belongs to the route's `authorize`). A request without a
 * principal (a public route) may not. The response filter removes the
 * properties the caller may not read (`./project.ts`); request validation
 * refuses the ones it may not write (the `x-portcullis-write` keyword of
 * the request-side ajv, `./ajv.ts`).
 */
import { URL_RULE, urlRuleIssue } from './url-rule.js';
import { escapeSegment, forEachSchema, type JsonObject } from './walk.js';

export const READ_RULE = 'x-portcullis-read';
export const WRITE_RULE = 'x-portcullis-write';
/** The schema options: field rules by role here, and URL rules (`./url-rule.ts`, SSRF). */
const SCHEMA_EXTENSIONS = [READ_RULE, WRITE_RULE, URL_RULE];

/** An `ApiDocumentIssue` (./types.ts imports this file: not imported back, so no cycle). */
interface DocumentIssue {
  readonly file: string;
  readonly pointer: string;
  readonly message: string;
}

/** What field rules look at: the roles and scopes of the caller (a Principal). */
export interface FieldCaller {
  readonly roles: readonly string[];
  readonly scopes: readonly string[];
}

/** Whether `caller` has any of `allowed` as a role or a scope; no caller never may. */
export function mayAccess(caller: FieldCaller | null | undefined, allowed: readonly string[]): boolean {
  if (caller === undefined || caller === null || !Array.isArray(caller.roles)) return false;
  return allowed.some((name) => caller.roles.includes(name) || caller.scopes.includes(name));
}

/** A well-formed rule value: a non-empty list of non-empty strings. */
export function isRuleList(value: unknown): value is string[] {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((v) => typeof v === 'string' && v.trim() !== '' && v === v.trim())
  );
}

/**
 * Problems with the `x-portcullis-…` extensions of the document's Schema
 * Objects: a field rule that is not a list of names, or an extension no
 * schema understands (a misspelt rule must not leave a field open).
 */
export function fieldRuleIssues(file: string, doc: JsonObject): DocumentIssue[] {
  const issues: DocumentIssue[] = [];
  forEachSchema(doc, (schema, at) => {
    for (const [key, value] of Object.entries(schema)) {
      if (!key.startsWith('x-portcullis-')) continue;
      const pointer = `${at}/${escapeSegment(key)}`;
      if (!SCHEMA_EXTENSIONS.includes(key)) {
        issues.push({
          file,
          pointer,
          message: `unknown extension: ${key} is no schema option (${SCHEMA_EXTENSIONS.join(', ')})`,
        });
      } else if (key === URL_RULE) {
        const issue = urlRuleIssue(value) ?? urlRuleTypeIssue(schema);
        if (issue !== undefined) issues.push({ file, pointer, message: issue });
      } else if (!isRuleList(value)) {
        issues.push({
          file,
          pointer,
          message: `expected a non-empty list of role or scope names (non-empty strings), e.g. [admin]${
            Array.isArray(value) && value.length === 0
              ? '; to let no caller at all, use readOnly / writeOnly'
              : ''
          }`,
        });
      }
    }
  });
  return issues;
}

/** A URL rule belongs on a string schema: on anything else it would check nothing. */
function urlRuleTypeIssue(schema: JsonObject): string | undefined {
  const type = schema.type;
  if (type === undefined || type === 'string' || (Array.isArray(type) && type.includes('string'))) {
    return undefined;
  }
  return `${URL_RULE} applies to strings: expected type: string (with format: uri)`;
}
