/**
 * From a loaded document to routes: each operation becomes one route entry
 * in config form (the allow-list), with its options taken from the
 * document's `x-portcullis-…` extensions and then from `api.operations`
 * in the config; and, for configs that list their own routes, the
 * operations that describe each of them.
 */
import type { AuthMethod } from '../config/types.js';
import type { LoadedApiDocument } from './document.js';
import type { RawApi } from './schema.js';
import type { ApiDocumentIssue, CompiledOperation, SecurityRequirement } from './types.js';

/** Where a key of a generated route came from, for error messages. */
export type RouteKeyOrigin =
  | { readonly kind: 'document'; readonly file: string; readonly pointer: string }
  | { readonly kind: 'config'; readonly path: string };

export interface DocumentRoute {
  /**
   * The route in config form, before schema defaults: `name` (the
   * operationId), `path`, `methods`, `upstream`, `auth` when the document
   * says, and every option from extensions and `api.operations`. Validate it
   * like a route of the config (RouteSchema, with defaults).
   */
  readonly raw: Record<string, unknown>;
  readonly operation: CompiledOperation;
  /** Origin of each key of `raw`. */
  readonly origins: Readonly<Record<string, RouteKeyOrigin>>;
}

export interface DocumentRoutesOptions {
  /** The authentication methods configured under `auth`. */
  readonly authMethods: readonly AuthMethod[];
}

/**
 * The operations of `doc` as route entries, in document order. Precedence:
 * `api.operations.<operationId>` over `x-portcullis-<option>` extensions
 * (operation over path item over document) over what `security` implies.
 * Issues: operations named in the config that the document lacks, security
 * schemes the gateway cannot enforce, operations without an upstream.
 */
export function documentRoutes(
  doc: LoadedApiDocument,
  api: RawApi,
  options: DocumentRoutesOptions,
): { routes: DocumentRoute[]; issues: ApiDocumentIssue[] } {
  const issues: ApiDocumentIssue[] = [];
  const routes: DocumentRoute[] = [];
  const ids = new Set(doc.operations.map((o) => o.id));
  for (const id of Object.keys(api.operations ?? {})) {
    if (!ids.has(id)) {
      issues.push({
        file: '',
        pointer: `api.operations.${id}`,
        message: `no operation "${id}" in ${doc.file}`,
      });
    }
  }
  for (const op of doc.operations) {
    const raw: Record<string, unknown> = {};
    const origins: Record<string, RouteKeyOrigin> = {};
    const fromDocument: RouteKeyOrigin = { kind: 'document', file: doc.file, pointer: op.source.pointer };
    const set = (key: string, value: unknown, origin: RouteKeyOrigin) => {
      raw[key] = value;
      origins[key] = origin;
    };
    set('name', op.id, fromDocument);
    set('path', (api.base_path ?? '') + op.path, fromDocument);
    set('methods', [op.method], fromDocument);
    if (api.upstream !== undefined) set('upstream', api.upstream, { kind: 'config', path: 'api.upstream' });
    const implied = authFromSecurity(op.security, options.authMethods);
    if ('error' in implied) {
      issues.push({ file: doc.file, pointer: `${op.source.pointer}/security`, message: implied.error });
    } else {
      if (implied.auth !== undefined) set('auth', implied.auth, fromDocument);
      if (implied.apiKeyInQuery) set('api_key_in_query', true, fromDocument);
    }
    for (const [key, value] of Object.entries(op.extensions)) set(key, value, fromDocument);
    const overrides = api.operations?.[op.id] ?? {};
    for (const [key, value] of Object.entries(overrides)) {
      set(key, value, { kind: 'config', path: `api.operations.${op.id}.${key}` });
    }
    // An authenticated route must say who may call it; unless told, the document's scopes say.
    if (
      raw.authorize === undefined &&
      raw.auth !== 'none' &&
      op.security !== undefined &&
      op.security.length > 0
    ) {
      set('authorize', authorizeFromSecurity(op.security), fromDocument);
    }
    if (raw.upstream === undefined) {
      issues.push({
        file: doc.file,
        pointer: op.source.pointer,
        message: `operation "${op.id}" has no upstream: set api.upstream, x-portcullis-upstream or api.operations.${op.id}.upstream`,
      });
    }
    for (const key of ['path', 'methods']) {
      if (origins[key]?.kind === 'config') {
        issues.push({
          file: '',
          pointer: `api.operations.${op.id}.${key}`,
          message: `${key} comes from the document and cannot be overridden`,
        });
      }
    }
    routes.push({ raw, operation: op, origins });
  }
  return { routes, issues };
}

/**
 * The route `auth` implied by an operation's `security`: undefined when the
 * document says nothing, `none` when anonymous access is one alternative,
 * otherwise the gateway methods that enforce its schemes (bearer tokens →
 * jwt and/or introspection, whichever are configured; apiKey → api_key;
 * mutualTLS → mtls).
 */
export function authFromSecurity(
  security: readonly SecurityRequirement[] | undefined,
  configured: readonly AuthMethod[],
): { auth: 'none' | AuthMethod[] | undefined; apiKeyInQuery: boolean } | { error: string } {
  if (security === undefined) return { auth: undefined, apiKeyInQuery: false };
  if (security.length === 0 || security.some((alternative) => alternative.length === 0)) {
    return { auth: 'none', apiKeyInQuery: false };
  }
  const methods = new Set<AuthMethod>();
  let apiKeyInQuery = false;
  for (const alternative of security) {
    for (const { scheme } of alternative) {
      switch (scheme.type) {
        case 'oauth2':
        case 'openIdConnect':
        case 'http': {
          if (scheme.type === 'http' && scheme.scheme !== 'bearer') {
            return {
              error: `security scheme "${scheme.name}" (http ${scheme.scheme ?? ''}) cannot be enforced: the gateway accepts bearer tokens, API keys and mutual TLS`,
            };
          }
          const bearer = configured.filter((m) => m === 'jwt' || m === 'introspection');
          for (const m of bearer.length > 0 ? bearer : (['jwt'] as const)) methods.add(m);
          break;
        }
        case 'apiKey':
          if (scheme.in === 'cookie') {
            return {
              error: `security scheme "${scheme.name}" sends the API key in a cookie, which the gateway does not read`,
            };
          }
          methods.add('api_key');
          if (scheme.in === 'query') apiKeyInQuery = true;
          break;
        case 'mutualTLS':
          methods.add('mtls');
          break;
        default:
          return { error: `security scheme "${scheme.name}" has an unknown type ${scheme.type}` };
      }
    }
  }
  return { auth: [...methods], apiKeyInQuery };
}

/**
 * The `authorize` policy implied by `security`: one rule set per
 * alternative, OAuth 2.0 / OpenID Connect scopes as `scopes` and the
 * "role names" OpenAPI 3.1 allows on other schemes as `roles`; any
 * alternative may pass. An alternative that lists nothing lets every
 * authenticated caller in.
 */
export function authorizeFromSecurity(security: readonly SecurityRequirement[]): unknown {
  const sets: { scopes?: string[]; roles?: string[] }[] = [];
  const seen = new Set<string>();
  for (const alternative of security) {
    const scopes = new Set<string>();
    const roles = new Set<string>();
    for (const { scheme, scopes: listed } of alternative) {
      const target = scheme.type === 'oauth2' || scheme.type === 'openIdConnect' ? scopes : roles;
      for (const s of listed) target.add(s);
    }
    if (scopes.size === 0 && roles.size === 0) return 'any-authenticated';
    const set = {
      ...(scopes.size > 0 ? { scopes: [...scopes].sort() } : {}),
      ...(roles.size > 0 ? { roles: [...roles].sort() } : {}),
    };
    const key = JSON.stringify(set);
    if (!seen.has(key)) {
      seen.add(key);
      sets.push(set);
    }
  }
  return sets.length === 1 ? sets[0] : { any: sets };
}

/**
 * The operations of `doc` that describe a route listed in the config, by
 * method: the route's template must equal the operation's path after
 * `base_path`, parameter names included. Prefix routes match nothing.
 */
export function matchOperations(
  doc: LoadedApiDocument,
  template: string,
  methods: readonly string[],
  basePath = '',
): Record<string, CompiledOperation> {
  const out: Record<string, CompiledOperation> = {};
  for (const op of doc.operations) {
    if (basePath + op.path === template && methods.includes(op.method)) out[op.method] = op;
  }
  return out;
}
