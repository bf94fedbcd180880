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
  /**
   * The route keys an extension may set. When given, other extensions are
   * left out of the routes (`extensionIssues` reports them).
   */
  readonly extensionKeys?: ReadonlySet<string>;
}

/** A document extension the config overrides with a different value: `check` lists each one. */
export interface ExtensionOverride {
  /** The operation whose extension is overridden. */
  readonly operation: string;
  /** The route key, dotted inside a settings section: `authorize`, `responses.redact`. */
  readonly key: string;
  /** Where the document sets it: file and JSON pointer. */
  readonly file: string;
  readonly pointer: string;
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
): { routes: DocumentRoute[]; issues: ApiDocumentIssue[]; overrides: ExtensionOverride[] } {
  const issues: ApiDocumentIssue[] = [];
  const routes: DocumentRoute[] = [];
  const overrides: ExtensionOverride[] = [];
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
    for (const [key, value] of Object.entries(op.extensions)) {
      if (options.extensionKeys === undefined || options.extensionKeys.has(key))
        set(key, value, fromDocument);
    }
    for (const [key, value] of Object.entries(api.operations?.[op.id] ?? {})) {
      const before = origins[key];
      if (before?.kind === 'document' && Object.hasOwn(op.extensions, key) && !sameValue(raw[key], value)) {
        overrides.push({
          operation: op.id,
          key,
          file: doc.file,
          pointer: op.extensionPointers[key] ?? op.source.pointer,
        });
      }
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
  return { routes, issues, overrides };
}

/** Settings sections merged key by key: the config's keys win, the document fills in the rest. */
const SECTIONS: ReadonlySet<string> = new Set(['validation', 'inspection', 'responses']);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Deep equality of JSON values (key order ignored). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => sameValue(v, b[i]))
    );
  }
  if (!isPlainObject(a) || !isPlainObject(b)) return false;
  const keys = Object.keys(a);
  return (
    keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && sameValue(a[k], b[k]))
  );
}

/** What the document's extensions make of one route listed in the config. */
export interface ConfigRouteExtensions {
  /** The route as written, with every extension it does not set itself merged in. */
  readonly raw: Record<string, unknown>;
  /** Dotted keys taken from the document, with where each was read (for error messages). */
  readonly applied: Readonly<Record<string, { readonly file: string; readonly pointer: string }>>;
  readonly overrides: readonly ExtensionOverride[];
  /** Extensions the route cannot take: its operations disagree on them. */
  readonly issues: readonly ApiDocumentIssue[];
}

/**
 * Applies the `x-portcullis-…` extensions of the operations that describe a
 * route of the config's `routes` (`matchOperations`) to that route, as
 * `documentRoutes` does for the routes it makes. `written` is the route as
 * the config file has it, before schema defaults: a key the config writes
 * wins over the document's, and each such key whose value differs is an
 * override. `validation`, `inspection` and `responses` merge key by key;
 * every other key is taken whole. A route that covers several operations
 * (GET and POST) takes an extension only when they all set it alike: one
 * route has one policy, so a difference is an issue (split the route by
 * method, or move the extension to the path item).
 */
export function applyExtensions(
  written: Readonly<Record<string, unknown>>,
  operations: Readonly<Record<string, CompiledOperation>>,
  keys: ReadonlySet<string>,
): ConfigRouteExtensions {
  const raw: Record<string, unknown> = structuredClone(written) as Record<string, unknown>;
  const applied: Record<string, { file: string; pointer: string }> = {};
  const overrides: ExtensionOverride[] = [];
  const issues: ApiDocumentIssue[] = [];
  const ops = [...new Set(Object.values(operations))];
  if (ops.length === 0) return { raw, applied, overrides, issues };
  // Every (dotted) key any operation sets, with each operation's value.
  const wanted = new Map<string, { op: CompiledOperation; value: unknown; pointer: string }[]>();
  for (const op of ops) {
    for (const [key, value] of Object.entries(op.extensions)) {
      if (!keys.has(key)) continue;
      const pointer = op.extensionPointers[key] ?? op.source.pointer;
      const entries: [string, unknown, string][] =
        SECTIONS.has(key) && isPlainObject(value)
          ? Object.entries(value).map(([k, v]) => [`${key}.${k}`, v, `${pointer}/${k}`])
          : [[key, value, pointer]];
      for (const [dotted, v, at] of entries) {
        const list = wanted.get(dotted) ?? [];
        list.push({ op, value: v, pointer: at });
        wanted.set(dotted, list);
      }
    }
  }
  for (const [dotted, list] of wanted) {
    const first = list[0]!;
    const differs = list.find((e) => !sameValue(e.value, first.value));
    if (list.length < ops.length || differs !== undefined) {
      const other = differs?.op ?? ops.find((o) => !list.some((e) => e.op === o))!;
      issues.push({
        file: first.op.source.file,
        pointer: first.pointer,
        message: `the route for ${ops.map((o) => o.id).join(' and ')} would apply x-portcullis-${dotted.split('.')[0]!.replace(/_/g, '-')}${dotted.includes('.') ? ` (${dotted.slice(dotted.indexOf('.') + 1)})` : ''} to ${other.id} too, which ${differs ? 'sets it differently' : 'does not set it'}: split the route by method, or set it alike on every operation`,
      });
      continue;
    }
    const [key, sub] = dotted.includes('.')
      ? [dotted.slice(0, dotted.indexOf('.')), dotted.slice(dotted.indexOf('.') + 1)]
      : [dotted, undefined];
    const holder = sub === undefined ? raw : raw[key];
    const name = sub ?? key;
    if (isPlainObject(holder) && Object.hasOwn(holder, name)) {
      if (!sameValue(holder[name], first.value)) {
        overrides.push({
          operation: first.op.id,
          key: dotted,
          file: first.op.source.file,
          pointer: first.pointer,
        });
      }
      continue;
    }
    if (sub === undefined) raw[key] = structuredClone(first.value);
    else if (holder === undefined) raw[key] = { [sub]: structuredClone(first.value) };
    else if (isPlainObject(holder)) holder[sub] = structuredClone(first.value);
    else continue; // the config's section is not a mapping: its own schema error says so
    applied[dotted] = { file: first.op.source.file, pointer: first.pointer };
  }
  return { raw, applied, overrides, issues };
}

/**
 * Extensions that would be ignored: `unknown`, names that are no route
 * option; `unrouted`, when the config lists its own routes, the policy set
 * on an operation (or its path item) that no route matches (a route whose
 * path was meant to match it and does not is served without that policy).
 * Extensions on the document root are defaults for whichever operations are
 * routed, and `x-portcullis-upstream` is wiring, not policy: neither is
 * reported as unrouted.
 */
export function extensionIssues(
  doc: LoadedApiDocument,
  keys: ReadonlySet<string>,
  unrouted: readonly CompiledOperation[],
): { unknown: ApiDocumentIssue[]; unrouted: ApiDocumentIssue[] } {
  const issues: ApiDocumentIssue[] = [];
  const ignored: ApiDocumentIssue[] = [];
  const seen = new Set<string>();
  for (const op of doc.operations) {
    for (const key of Object.keys(op.extensions)) {
      const pointer = op.extensionPointers[key] ?? op.source.pointer;
      if (keys.has(key) || seen.has(pointer)) continue;
      seen.add(pointer);
      issues.push({
        file: doc.file,
        pointer,
        message: `unknown extension: x-portcullis-${key.replace(/_/g, '-')} is no route option (${[...keys].map((k) => k.replace(/_/g, '-')).join(', ')})`,
      });
    }
  }
  for (const op of unrouted) {
    const own = Object.entries(op.extensionPointers).filter(
      ([k, p]) => p.startsWith('/paths/') && keys.has(k) && k !== 'upstream',
    );
    for (const [key, pointer] of own) {
      if (seen.has(`${pointer} ${op.id}`)) continue;
      seen.add(`${pointer} ${op.id}`);
      ignored.push({
        file: doc.file,
        pointer,
        message: `ignored: no route in the config matches ${op.method} ${op.path} (${op.id}), so its x-portcullis-${key.replace(/_/g, '-')} applies nowhere; route the operation or remove the extension`,
      });
    }
  }
  return { unknown: issues, unrouted: ignored };
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
