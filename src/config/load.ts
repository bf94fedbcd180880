/**
 * Loads the YAML config: parse (with line numbers), validate against the
 * schema, check what a schema cannot (references between sections), resolve
 * secret references, and compile units. Every problem is collected, so one
 * run lists them all; nothing starts unless the list is empty.
 */

import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { isMap, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { compileAlerts, compileAnomaly, compileBlocks } from '../anomaly/schema.js';
import { checkAudit, compileAudit } from '../audit/schema.js';
import {
  ApiDocumentError,
  type ApiRouteSettings,
  applyExtensions,
  compileRouteApi,
  type DocumentRoute,
  documentRoutes,
  extensionIssues,
  type LoadedApiDocument,
  loadApiDocument,
  matchOperations,
  RouteApiError,
} from '../openapi/index.js';
import { checkRateLimit, compileRateLimit, compileRouteRateLimits, parseRate } from '../ratelimit/compile.js';
import { normalizeHostPattern } from '../request/host.js';
import { compileSecretScanning } from '../secret-scanning/schema.js';
import { toRouterPath } from '../stages/route/index.js';
import { compileTelemetry } from '../telemetry/schema.js';
import { checkTlsFiles } from '../tls/check-files.js';
import { compileTls, type RawTlsInput } from '../tls/schema.js';
import { isPrivateOrLoopbackHost, parseCidr } from '../util/ip.js';
import { parseDuration, parseSize } from '../util/units.js';
import { ConfigSchema, type RawConfig, type RawCors, type RawRoute, RouteSchema } from './schema.js';
import { isSecretRef, resolveSecretRef } from './secrets.js';
import type {
  AuthMethod,
  AuthSettings,
  CorsSettings,
  GatewayConfig,
  RouteSettings,
  UpstreamSettings,
} from './types.js';

/** One problem in a config file, located by YAML path and line. */
export interface ConfigIssue {
  file: string;
  /** Dotted YAML path such as `routes[2].upstream`; empty for the whole file. */
  path: string;
  line?: number;
  column?: number;
  message: string;
}

export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? issue.file : `${issue.file}:${issue.line}:${issue.column ?? 1}`;
  return `${where}: ${issue.path === '' ? '' : `${issue.path}: `}${issue.message}`;
}

/** Thrown when a config cannot be used; `issues` lists every problem. */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(`invalid configuration:\n${issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export interface LoadedConfig {
  config: GatewayConfig;
  /**
   * Where the config overrides a policy extension (`x-portcullis-…`) of the
   * API document with another value: the config wins; `check` lists each.
   */
  overrides: ConfigIssue[];
  /**
   * Policy extensions of operations no route of the config matches: they
   * apply nowhere. Also among `warnings`; `check` fails on them (a route
   * meant to match such an operation is served without its policy).
   */
  unroutedExtensions: ConfigIssue[];
  /** Security warnings: the config is valid, but something deserves a look. */
  warnings: ConfigIssue[];
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Changes applied to the parsed document before validation (the demo points the upstream at its port). */
  patch?: (raw: Record<string, unknown>) => void;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: true });
ajv.addKeyword({ keyword: 'expected', schemaType: 'string' });
ajv.addKeyword({ keyword: 'secret', schemaType: 'boolean' });
const validateSchema = ajv.compile<RawConfig>(ConfigSchema);
/** Routes made from an API document are checked (and given defaults) like routes of the config. */
const validateRoute = ajv.compile<RawRoute>(RouteSchema);
/** The route options an API document may set with `x-portcullis-…` extensions. */
const EXTENSION_KEYS: ReadonlySet<string> = new Set(
  Object.keys(RouteSchema.properties).filter((k) => k !== 'name' && k !== 'path' && k !== 'methods'),
);

type Segment = string | number;

/** `['routes', 2, 'upstream']` → `routes[2].upstream`. */
export function formatPath(segments: readonly Segment[]): string {
  let out = '';
  for (const s of segments) out += typeof s === 'number' ? `[${s}]` : out === '' ? s : `.${s}`;
  return out;
}

function pointerToSegments(pointer: string, data: unknown): Segment[] {
  if (pointer === '') return [];
  const segments: Segment[] = [];
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const seg: Segment = Array.isArray(cur) ? Number(key) : key;
    segments.push(seg);
    cur = cur === null || typeof cur !== 'object' ? undefined : (cur as Record<string, unknown>)[key];
  }
  return segments;
}

/** Helper that turns a YAML path into a line and column in the source. */
class Locator {
  constructor(
    private readonly doc: ReturnType<typeof parseDocument>,
    private readonly lines: LineCounter,
  ) {}

  locate(segments: readonly Segment[], key?: string): { line?: number; column?: number } {
    let node: unknown = this.doc.contents;
    let last: unknown = node;
    for (const seg of segments) {
      if (isMap(node)) {
        const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === seg);
        node = pair?.value;
      } else if (isSeq(node)) {
        node = node.items[seg as number];
      } else break;
      if (node) last = node;
    }
    let target = last as Node | undefined;
    if (key !== undefined && isMap(last)) {
      const pair = last.items.find((p) => (p.key as { value?: unknown } | null)?.value === key);
      if (pair?.key) target = pair.key as Node;
    }
    const offset = target?.range?.[0];
    if (offset === undefined) return {};
    const pos = this.lines.linePos(offset);
    return { line: pos.line, column: pos.col };
  }
}

function describeValue(value: unknown, secret: boolean): string {
  if (secret) return 'a literal value (not shown)';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string')
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return String(value);
}

function schemaExpected(schema: Record<string, unknown> | undefined): string | undefined {
  if (!schema) return undefined;
  if (typeof schema.expected === 'string') return schema.expected;
  const branches = schema.anyOf as Record<string, unknown>[] | undefined;
  if (branches?.every((b) => 'const' in b))
    return `one of ${branches.map((b) => JSON.stringify(b.const)).join(', ')}`;
  return undefined;
}

/** One readable sentence per schema error; anyOf branch noise folded into the anyOf. */
function schemaIssues(errors: ErrorObject[], data: unknown, file: string, locator: Locator): ConfigIssue[] {
  const anyOfPaths = errors.filter((e) => e.keyword === 'anyOf').map((e) => e.schemaPath);
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (
      anyOfPaths.some((p) => e.schemaPath !== p && e.schemaPath.startsWith(p.replace(/anyOf$/, 'anyOf/')))
    ) {
      continue;
    }
    const segments = pointerToSegments(e.instancePath, data);
    const parent = e.parentSchema as Record<string, unknown> | undefined;
    const secret = parent?.secret === true;
    let message: string;
    let key: string | undefined;
    switch (e.keyword) {
      case 'additionalProperties': {
        key = String((e.params as { additionalProperty: string }).additionalProperty);
        const allowed = Object.keys((parent?.properties as object | undefined) ?? {});
        message =
          allowed.length > 0
            ? `unknown key "${key}"; expected one of: ${allowed.join(', ')}`
            : `unknown key "${key}"`;
        segments.push(key);
        break;
      }
      case 'required': {
        const missing = (e.params as { missingProperty: string }).missingProperty;
        message = `missing required key "${missing}"`;
        break;
      }
      case 'type':
        message = `expected ${schemaExpected(parent) ?? (e.params as { type: string }).type}, got ${describeValue(e.data, false)}`;
        break;
      case 'pattern':
      case 'format':
      case 'anyOf':
      case 'const':
      case 'enum':
        message = `expected ${schemaExpected(parent) ?? `a value that ${e.message ?? 'is valid'}`}, got ${describeValue(e.data, secret)}`;
        break;
      default:
        message = `expected a value that ${e.message ?? 'is valid'}`;
    }
    const dedupe = `${e.instancePath}|${message}`;
    if (seen.has(dedupe)) continue;
    seen.add(dedupe);
    const at = locator.locate(key === undefined ? segments : segments.slice(0, -1), key);
    issues.push({ file, path: formatPath(segments), ...at, message });
  }
  return issues;
}

function compileCors(raw: RawCors, methods: string[]): CorsSettings {
  const wildcard = raw.origins.includes('*');
  return {
    anyOrigin: wildcard,
    origins: new Set(raw.origins.filter((o) => o !== '*')),
    allowMethods: (raw.methods ?? methods).join(', '),
    allowHeaders: raw.headers.map((h) => h.toLowerCase()),
    exposeHeaders: raw.expose_headers.join(', '),
    credentials: raw.credentials,
    maxAgeSeconds: Math.floor(parseDuration(raw.max_age) / 1000),
  };
}

/** Walks every string value; references are replaced in place by what they point at. */
function resolveReferences(
  node: unknown,
  segments: Segment[],
  visit: (ref: string, segments: Segment[]) => string | undefined,
): void {
  if (Array.isArray(node)) {
    node.forEach((v, i) => {
      if (typeof v === 'string') {
        const out = isSecretRef(v) ? visit(v, [...segments, i]) : undefined;
        if (out !== undefined) node[i] = out;
      } else resolveReferences(v, [...segments, i], visit);
    });
  } else if (node !== null && typeof node === 'object') {
    const obj = node as Record<string, unknown>;
    for (const [k, v] of Object.entries(obj)) {
      if (typeof v === 'string') {
        const out = isSecretRef(v) ? visit(v, [...segments, k]) : undefined;
        if (out !== undefined) obj[k] = out;
      } else resolveReferences(v, [...segments, k], visit);
    }
  }
}

/**
 * Reads, validates and compiles a config file. Throws ConfigError listing
 * every problem found.
 */
export async function loadConfig(file: string, options: LoadOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? process.env;
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([
      { file, path: '', message: `cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})` },
    ]);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return {
          file,
          path: '',
          ...(pos ? { line: pos.line, column: pos.col } : {}),
          message: `not valid YAML: ${e.message.split('\n')[0]}`,
        };
      }),
    );
  }
  const raw = doc.toJS() as unknown;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError([{ file, path: '', message: 'expected a mapping at the top of the file' }]);
  }
  options.patch?.(raw as Record<string, unknown>);
  const locator = new Locator(doc, lines);
  const issue = (segments: Segment[], message: string, key?: string): ConfigIssue => ({
    file,
    path: formatPath(key === undefined ? segments : [...segments, key]),
    ...locator.locate(segments, key),
    message,
  });

  // Secrets are resolved on a copy after validation, so the schema sees the
  // references (a secret field must hold a reference) and never a secret.
  // The routes as written, before schema defaults: what the config itself sets wins over the document.
  const writtenRoutes = (raw as { routes?: unknown }).routes;
  const written = Array.isArray(writtenRoutes) ? (structuredClone(writtenRoutes) as unknown[]) : [];
  if (!validateSchema(raw)) {
    throw new ConfigError(schemaIssues(validateSchema.errors ?? [], raw, file, locator));
  }
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const cfg = raw;

  // References between sections and rules a schema cannot state.
  const rawAuth = cfg.auth!;
  const configuredMethods: AuthMethod[] = [];
  if (rawAuth.jwt || rawAuth.issuer) configuredMethods.push('jwt');
  if (rawAuth.introspection) configuredMethods.push('introspection');
  if (rawAuth.api_keys) configuredMethods.push('api_key');
  const rawTls = cfg.listen!.tls;
  if (rawTls && rawTls.enabled !== false && (rawTls.client_auth?.mode ?? 'off') !== 'off') {
    configuredMethods.push('mtls');
  }
  rawAuth.jwt?.providers.forEach((p, i) => {
    const at: Segment[] = ['auth', 'jwt', 'providers', i];
    const hmac = p.algorithms.filter((a) => a.startsWith('HS'));
    if (hmac.length > 0 && p.hmac_secret === undefined) {
      issues.push(
        issue(
          [...at, 'algorithms'],
          `expected hmac_secret to be set: ${hmac.join(', ')} needs a shared secret`,
        ),
      );
    }
    if (hmac.length === 0 && p.hmac_secret !== undefined) {
      issues.push(
        issue([...at, 'hmac_secret'], 'expected an HS* algorithm in algorithms, or no hmac_secret'),
      );
    }
    if (hmac.length > 0 && hmac.length < p.algorithms.length) {
      issues.push(
        issue(
          [...at, 'algorithms'],
          'expected either only HS* or only asymmetric algorithms: one provider, one key type',
        ),
      );
    }
    const jwks = p.jwks_uri ?? p.issuer;
    if (jwks.startsWith('http://') && !isPrivateOrLoopbackHost(new URL(jwks).hostname, true)) {
      warnings.push(
        issue(
          [...at, p.jwks_uri ? 'jwks_uri' : 'issuer'],
          'signing keys fetched over plain HTTP can be replaced in transit',
        ),
      );
    }
  });
  if (cfg.mode === 'production') {
    if (rawAuth.api_keys && rawAuth.api_keys.pepper === undefined) {
      issues.push(
        issue(
          ['auth', 'api_keys'],
          'expected pepper: production needs it by reference, not a generated file',
          'pepper',
        ),
      );
    }
    if (rawAuth.issuer && rawAuth.issuer.master_key === undefined) {
      issues.push(
        issue(
          ['auth', 'issuer'],
          'expected master_key: production needs it by reference, not a generated file',
        ),
      );
    }
  }
  // The API document: its operations describe the routes, or become them.
  let document: LoadedApiDocument | undefined;
  if (cfg.api) {
    try {
      document = await loadApiDocument(resolve(dirname(path), cfg.api.document));
    } catch (err) {
      if (!(err instanceof ApiDocumentError)) throw err;
      throw new ConfigError(
        err.issues.map((i) => ({
          file: i.file,
          path: i.pointer === '' ? '' : `#${i.pointer}`,
          message: i.message,
        })),
      );
    }
  } else if (cfg.routes === undefined) {
    throw new ConfigError([
      {
        file,
        path: 'routes',
        message: 'expected routes, or api.document whose operations become the routes',
      },
    ]);
  }
  const generated: (DocumentRoute | undefined)[] = [];
  let rawRoutes: RawRoute[] = cfg.routes ?? [];
  const overrides: ConfigIssue[] = [];
  const unroutedExtensions: ConfigIssue[] = [];
  const docIssue = (i: { file: string; pointer: string; message: string }): ConfigIssue => ({
    file: i.file,
    path: `#${i.pointer}`,
    message: i.message,
  });
  if (document && cfg.routes !== undefined) {
    // The document's policy extensions apply to the config's routes that its operations describe.
    const routed = new Set<unknown>();
    rawRoutes = rawRoutes.map((r, i) => {
      const methods = [...r.methods];
      if (methods.includes('GET') && !methods.includes('HEAD')) methods.push('HEAD');
      const operations = matchOperations(document!, r.path, methods, cfg.api!.base_path);
      for (const op of Object.values(operations)) routed.add(op);
      const ext = applyExtensions((written[i] ?? {}) as Record<string, unknown>, operations, EXTENSION_KEYS);
      for (const x of ext.issues) issues.push(docIssue(x));
      for (const o of ext.overrides) {
        const segments: Segment[] = ['routes', i, ...o.key.split('.')];
        overrides.push({
          ...issue(
            segments,
            `overrides x-portcullis-${o.key.split('.')[0]!.replace(/_/g, '-')}${o.key.includes('.') ? ` (${o.key.slice(o.key.indexOf('.') + 1)})` : ''} of ${o.operation} (${o.file}#${o.pointer}): the config's value applies`,
          ),
        });
      }
      if (Object.keys(ext.applied).length === 0) return r;
      if (!validateRoute(ext.raw)) {
        for (const e of validateRoute.errors ?? []) {
          const parts = e.instancePath.split('/').slice(1);
          const from = ext.applied[parts.slice(0, 2).join('.')] ?? ext.applied[parts[0] ?? ''];
          issues.push(
            from === undefined
              ? issue(['routes', i, ...parts], `expected a value that ${e.message ?? 'is valid'}`)
              : {
                  file: from.file,
                  path: `#${from.pointer}`,
                  message: `expected a value that ${e.message ?? 'is valid'}`,
                },
          );
        }
        return r;
      }
      // In the config too, so whatever later walks `cfg` (secret references) sees the route as compiled.
      cfg.routes![i] = ext.raw as RawRoute;
      return ext.raw as RawRoute;
    });
    // The same mistake the other way round: options for generated routes, with no generated routes.
    for (const id of Object.keys(cfg.api!.operations ?? {})) {
      issues.push(
        issue(
          ['api', 'operations'],
          `ignored: api.operations.${id} applies to routes made from the document, and the config lists its own routes; set it on the route`,
          id,
        ),
      );
    }
    const unrouted = document.operations.filter((op) => !routed.has(op));
    const ignored = extensionIssues(document, EXTENSION_KEYS, unrouted);
    for (const x of ignored.unknown) issues.push(docIssue(x));
    // A config may expose only part of an API: the others are not served, so this fails `check`, not start.
    for (const x of ignored.unrouted) {
      unroutedExtensions.push(docIssue(x));
      warnings.push(docIssue(x));
    }
  }
  if (document && cfg.routes === undefined) {
    for (const x of extensionIssues(document, EXTENSION_KEYS, []).unknown) issues.push(docIssue(x));
    const made = documentRoutes(document, cfg.api!, {
      authMethods: configuredMethods,
      extensionKeys: EXTENSION_KEYS,
    });
    for (const o of made.overrides) {
      overrides.push(
        issue(
          ['api', 'operations', o.operation, o.key],
          `overrides x-portcullis-${o.key.replace(/_/g, '-')} of ${o.operation} (${o.file}#${o.pointer}): the config's value applies`,
        ),
      );
    }
    for (const i of made.issues) {
      issues.push(
        i.file === ''
          ? issue(i.pointer.split('.'), i.message)
          : { file: i.file, path: `#${i.pointer}`, message: i.message },
      );
    }
    rawRoutes = [];
    for (const d of made.routes) {
      if (!validateRoute(d.raw)) {
        for (const e of validateRoute.errors ?? []) {
          const key = e.instancePath.split('/')[1] ?? '';
          const origin = d.origins[key];
          issues.push(
            origin?.kind === 'config'
              ? issue(
                  ['api', 'operations', String(d.raw.name), ...e.instancePath.split('/').slice(1)],
                  e.message ?? 'invalid',
                )
              : {
                  file: document.file,
                  path: `#${d.operation.source.pointer}/x-portcullis-${key.replace(/_/g, '-')}`,
                  message: `expected a value that ${e.message}`,
                },
          );
        }
        continue;
      }
      rawRoutes.push(d.raw as RawRoute);
      generated.push(d);
    }
  }
  const rawRateLimit = cfg.rate_limit!;
  checkRateLimit(rawRateLimit, (segs, msg) => issues.push(issue(['rate_limit', ...segs], msg)));
  const upstreamNames = Object.keys(cfg.upstreams);
  const seenRoutes = new Map<string, number>();
  const routes: RouteSettings[] = [];
  const defaults = cfg.listen!.limits!;
  rawRoutes.forEach((r: RawRoute, i) => {
    const fromDocument = generated[i];
    const at: Segment[] = fromDocument ? ['api', 'operations', String(r.name)] : ['routes', i];
    if (!upstreamNames.includes(r.upstream)) {
      issues.push(
        issue(
          [...at, 'upstream'],
          `expected one of the upstreams (${upstreamNames.join(', ')}), got "${r.upstream}"`,
        ),
      );
    }
    const compiled = toRouterPath(r.path);
    if ('error' in compiled)
      issues.push(issue([...at, 'path'], `expected a valid path template: ${compiled.error}`));
    const methods = [...r.methods];
    if (methods.includes('GET') && !methods.includes('HEAD')) methods.push('HEAD');
    for (const m of methods) {
      const key = `${m} ${'path' in compiled ? compiled.path.replace(/:[A-Za-z0-9_]+/g, ':') : r.path}`;
      const prev = seenRoutes.get(key);
      if (prev !== undefined && !(m === 'HEAD' && !r.methods.includes('HEAD'))) {
        issues.push(issue([...at, 'path'], `${m} ${r.path} is already routed by routes[${prev}]`));
      }
      seenRoutes.set(key, i);
    }
    if (r.cors?.credentials && r.cors.origins.includes('*')) {
      issues.push(
        issue(
          [...at, 'cors', 'origins'],
          'expected an explicit list of origins: "*" together with credentials: true lets any site act as the user',
        ),
      );
    }
    let auth: 'none' | AuthMethod[];
    if (r.auth === 'none') auth = 'none';
    else if (r.auth === undefined) {
      auth = configuredMethods;
      if (auth.length === 0) {
        issues.push(
          issue(
            at,
            'expected auth: every route requires authentication unless it says auth: none, and no method is configured under auth',
          ),
        );
      }
    } else {
      auth = r.auth as AuthMethod[];
      for (const m of auth) {
        if (!configuredMethods.includes(m)) {
          issues.push(issue([...at, 'auth'], `expected a configured method: ${m} is not set up under auth`));
        }
      }
    }
    if (auth !== 'none' && r.authorize === undefined) {
      issues.push(
        issue(
          at,
          'expected authorize: a route that authenticates must say who may call it (scopes, roles, owner, …) or authorize: any-authenticated',
        ),
      );
    }
    if (auth === 'none' && r.authorize !== undefined) {
      const a = r.authorize;
      if (a === 'any-authenticated' || Object.keys(a).some((k) => k !== 'network' && k !== 'mode')) {
        issues.push(
          issue(
            [...at, 'authorize'],
            'expected only network rules on a public route (auth: none has no principal)',
          ),
        );
      }
    }
    if (r.authorize !== undefined && r.authorize !== 'any-authenticated') {
      const sets = [r.authorize, ...(r.authorize.any ?? [])];
      sets.forEach((set, j) => {
        const base: Segment[] = j === 0 ? [...at, 'authorize'] : [...at, 'authorize', 'any', j - 1];
        for (const [list, cidrs] of Object.entries(set.network ?? {})) {
          (cidrs as string[]).forEach((c, k) => {
            if (!parseCidr(c))
              issues.push(
                issue([...base, 'network', list, k], `expected an IP address or CIDR block, got "${c}"`),
              );
          });
        }
        for (const [claim, cond] of Object.entries(set.claims ?? {})) {
          const m =
            cond !== null && typeof cond === 'object' ? (cond as { matches?: string }).matches : undefined;
          if (m !== undefined) {
            try {
              new RegExp(m, 'u');
            } catch {
              issues.push(
                issue([...base, 'claims', claim, 'matches'], 'expected a valid regular expression'),
              );
            }
          }
        }
        for (const kind of ['owner', 'tenant'] as const) {
          const b = set[kind];
          if (b === undefined) continue;
          if (b.param === undefined && b.response === undefined) {
            issues.push(
              issue(
                [...base, kind],
                'expected param (a request value) or response (a field of the response)',
              ),
            );
          } else if (
            b.response === undefined &&
            (b.status !== undefined || b.items !== undefined || b.collection !== undefined)
          ) {
            issues.push(
              issue(
                [...base, kind],
                'expected response: status, items and collection apply to rules decided on the response',
              ),
            );
          }
        }
        for (const p of [set.owner?.param, set.tenant?.param].flat()) {
          if (p === undefined || !p.startsWith('path.')) continue;
          const name = p.slice(5);
          if ('params' in compiled && !compiled.params.includes(name)) {
            issues.push(issue([...base], `expected ${p} to name a parameter of ${r.path}`));
          }
        }
      });
    }
    for (const [j, name] of (r.providers ?? []).entries()) {
      const known =
        rawAuth.jwt?.providers.some((p) => p.name === name) ||
        rawAuth.introspection?.providers.some((p) => p.name === name) ||
        (name === 'portcullis-issuer' && rawAuth.issuer !== undefined);
      if (!known) {
        issues.push(
          issue([...at, 'providers', j], 'expected the name of a configured JWT or introspection provider'),
        );
      }
    }
    const tokenProviders =
      (rawAuth.jwt?.providers.length ?? 0) +
      (rawAuth.introspection?.providers.length ?? 0) +
      (rawAuth.issuer ? 1 : 0);
    const binds = (set: unknown): boolean =>
      typeof set === 'object' && set !== null && ('owner' in set || 'tenant' in set);
    const a = r.authorize;
    if (
      r.providers === undefined &&
      tokenProviders > 1 &&
      auth !== 'none' &&
      typeof a === 'object' &&
      (binds(a) || (a.any ?? []).some(binds))
    ) {
      warnings.push(
        issue(
          [...at, 'providers'],
          'owner or tenant rules compare ids that only mean something within one provider, and several token providers are configured: list the ones this route accepts in providers',
        ),
      );
    }
    if (r.api_key_in_query && (auth === 'none' || !auth.includes('api_key'))) {
      issues.push(issue([...at, 'api_key_in_query'], "expected api_key among the route's auth methods"));
    }
    if (r.body_limit === 'none') {
      warnings.push(issue([...at, 'body_limit'], 'no body limit: any client can stream an unbounded body'));
    }
    const operations = fromDocument
      ? { [fromDocument.operation.method]: fromDocument.operation }
      : document
        ? matchOperations(document, r.path, methods, cfg.api!.base_path)
        : {};
    if (document && !fromDocument && Object.keys(operations).length === 0) {
      warnings.push(
        issue([...at, 'path'], 'not described by the API document: its requests are not validated'),
      );
    }
    let api: ApiRouteSettings;
    try {
      api = compileRouteApi(r, { template: r.path, methods }, operations);
    } catch (err) {
      if (!(err instanceof RouteApiError)) throw err;
      for (const x of err.issues) issues.push(issue([...at, ...x.path.split('.')], x.message));
      api = compileRouteApi({}, { template: r.path, methods }, {});
    }
    routes.push({
      ...api,
      index: i,
      name: r.name ?? `${r.methods.join(',')} ${r.path}`,
      template: r.path,
      routerPath: 'path' in compiled ? compiled.path : r.path,
      params: 'path' in compiled ? compiled.params : [],
      methods,
      upstream: r.upstream,
      auth,
      apiKeyInQuery: r.api_key_in_query,
      providers: r.providers,
      authorize: r.authorize,
      rateLimits: compileRouteRateLimits(
        r,
        rawRateLimit,
        r.name ?? `${r.methods.join(',')} ${r.path}`,
        (segs, msg) => issues.push(issue([...at, ...segs], msg)),
      ),
      bodyLimit:
        r.body_limit === 'none' ? Number.POSITIVE_INFINITY : parseSize(r.body_limit ?? defaults.body_limit),
      cacheControl: r.cache_control,
      cors: r.cors ? compileCors(r.cors, methods) : undefined,
    });
  });

  for (const [list, cidrs] of Object.entries(cfg.authorization?.network ?? {})) {
    (cidrs as string[]).forEach((c, k) => {
      if (!parseCidr(c))
        issues.push(
          issue(['authorization', 'network', list, k], `expected an IP address or CIDR block, got "${c}"`),
        );
    });
  }
  if (parseDuration(defaults.write_timeout) < 100) {
    issues.push(issue(['listen', 'limits', 'write_timeout'], 'expected at least 100ms'));
  }
  if (parseDuration(defaults.contended_write_timeout) < 100) {
    issues.push(issue(['listen', 'limits', 'contended_write_timeout'], 'expected at least 100ms'));
  }
  if (parseSize(defaults.write_buffer) < 16 * 1024) {
    issues.push(issue(['listen', 'limits', 'write_buffer'], 'expected at least 16kb'));
  }
  const trusted = cfg.listen!.trusted_proxies;
  trusted.forEach((c, i) => {
    if (!parseCidr(c))
      issues.push(
        issue(['listen', 'trusted_proxies', i], `expected an IP address or CIDR block, got "${c}"`),
      );
  });
  const allowedHosts = cfg.listen!.hosts?.map((h, i) => {
    const pattern = normalizeHostPattern(h);
    if (pattern === undefined) {
      issues.push(
        issue(
          ['listen', 'hosts', i],
          `expected a host name, IP address or *.domain without a port, got ${JSON.stringify(h)}`,
        ),
      );
    }
    return pattern ?? h;
  });

  const upstreams: Record<string, UpstreamSettings> = {};
  for (const [name, u] of Object.entries(cfg.upstreams)) {
    const url = new URL(u.url);
    if (url.username || url.password) {
      issues.push(
        issue(['upstreams', name, 'url'], 'expected a URL without credentials; they would be logged'),
      );
    }
    if (url.protocol === 'http:' && !isPrivateOrLoopbackHost(url.hostname)) {
      warnings.push(
        issue(
          ['upstreams', name, 'url'],
          `plain HTTP to ${url.hostname} crosses a network unencrypted; use https://`,
        ),
      );
    }
    upstreams[name] = {
      name,
      origin: url.origin,
      basePath: url.pathname === '/' ? '' : url.pathname.replace(/\/$/, ''),
      connections: u.connections,
      connectTimeoutMs: parseDuration(u.connect_timeout),
      headersTimeoutMs: parseDuration(u.headers_timeout),
      bodyTimeoutMs: parseDuration(u.body_timeout),
      keepAliveTimeoutMs: parseDuration(u.keep_alive_timeout),
      maxConnectionsPerClient: u.max_connections_per_client,
      clientIpv6Prefix: cfg.listen!.ipv6_prefix,
    };
  }

  const storeUrl = cfg.store!.url;
  if (
    storeUrl !== undefined &&
    !isSecretRef(storeUrl) &&
    /^postgres(ql)?:\/\/[^/@]*:[^/@]*@/.test(storeUrl)
  ) {
    issues.push(
      issue(
        ['store', 'url'],
        'expected the password by reference: write the whole URL as ${env:NAME} or ${file:PATH}',
      ),
    );
  }
  const admin = cfg.admin!;
  if (admin.enabled && !isPrivateOrLoopbackHost(admin.host, true)) {
    if (cfg.mode === 'production' && admin.tls === undefined) {
      // The admin API carries admin tokens: off this machine, only over TLS.
      issues.push(
        issue(
          ['admin'],
          `expected tls: the admin listener on ${admin.host} is reachable from other machines; production needs admin.tls (cert and key), or a loopback host`,
          'tls',
        ),
      );
    } else {
      warnings.push(
        issue(['admin', 'host'], `the admin listener on ${admin.host} is reachable from other machines`),
      );
    }
    if (admin.auth?.jwt !== undefined && admin.tls === undefined) {
      // As for admin tokens: a bearer JWT sent over plain HTTP can be read and replayed.
      warnings.push(
        issue(
          ['admin', 'auth', 'jwt'],
          `JWT admins on ${admin.host} without admin.tls: their tokens cross the network in clear`,
        ),
      );
    }
  }
  admin.auth?.jwt?.providers.forEach((name, i) => {
    if (!cfg.auth?.jwt?.providers.some((p) => p.name === name)) {
      issues.push(
        issue(
          ['admin', 'auth', 'jwt', 'providers', i],
          'expected the name of a provider in auth.jwt.providers',
        ),
      );
    }
  });
  if (admin.auth?.mtls !== undefined && admin.tls?.client_ca === undefined) {
    issues.push(
      issue(
        ['admin', 'auth', 'mtls'],
        'expected admin.tls.client_ca: certificate admins need the admin listener to ask for client certificates',
      ),
    );
  }

  resolveReferences(cfg, [], (ref, segments) => {
    try {
      const secret = resolveSecretRef(ref, dirname(path), env);
      if (secret.warning) warnings.push(issue(segments, secret.warning));
      return secret.value;
    } catch (err) {
      issues.push(issue(segments, `cannot resolve ${ref}: ${(err as Error).message}`));
      return undefined;
    }
  });

  const listen = cfg.listen!;
  const port = env.PORTCULLIS_PORT === undefined ? listen.port : Number(env.PORTCULLIS_PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError([{ file: 'PORTCULLIS_PORT', path: '', message: 'expected a port number 0-65535' }]);
  }
  // After secret resolution: key passphrases are references.
  // The routes as compiled: those made from the document too, and with the document's extensions.
  const tls = compileTls({ ...cfg, routes: rawRoutes, listen: { ...listen, port } } as RawTlsInput, {
    baseDir: dirname(path),
  });
  for (const i of tls.issues) issues.push(issue(i.path, i.message));
  for (const w of tls.warnings) warnings.push(issue(w.path, w.message));
  // The admin listener's files, relative to the config file (checked below, then kept in the config).
  const adminTls = admin.tls && {
    cert: resolve(dirname(path), admin.tls.cert),
    key: resolve(dirname(path), admin.tls.key),
    clientCa: admin.tls.client_ca === undefined ? undefined : resolve(dirname(path), admin.tls.client_ca),
  };
  if (tls.issues.length === 0) {
    const files = checkTlsFiles({
      tls: tls.settings,
      listenerCaFiles: (listen.tls?.client_auth?.ca ?? []).map((f) => resolve(dirname(path), f)),
      admin: adminTls,
    });
    for (const i of files.issues) issues.push(issue(i.path, i.message));
    for (const w of files.warnings) warnings.push(issue(w.path, w.message));
  }
  const audit = checkAudit(cfg.audit, { mode: cfg.mode, routeNames: routes.map((r) => r.name) });
  for (const i of audit.issues) {
    issues.push(issue(['audit', ...i.path.slice(0, -1)], i.message, String(i.path.at(-1))));
  }
  for (const w of audit.warnings) warnings.push(issue(['audit', ...w.path], w.message));
  const alerts = compileAlerts(cfg.alerts!);
  for (const i of alerts.issues) {
    issues.push(issue(['alerts', ...i.path.slice(0, -1)], i.message, String(i.path.at(-1))));
  }
  const secretScanning = compileSecretScanning(cfg.secret_scanning!, {
    apiKeys: rawAuth.api_keys !== undefined,
  });
  for (const i of secretScanning.issues) {
    issues.push(issue(['secret_scanning', ...i.path.slice(0, -1)], i.message, String(i.path.at(-1))));
  }
  const telemetry = compileTelemetry(cfg.telemetry);
  for (const i of telemetry.issues) {
    issues.push(issue(['telemetry', ...i.path.slice(0, -1)], i.message, String(i.path.at(-1))));
  }
  for (const w of telemetry.warnings) warnings.push(issue(['telemetry', ...w.path], w.message));

  const workers = listen.workers === 'auto' ? availableParallelism() : listen.workers;
  if (workers > 1) {
    if (cfg.store?.url?.endsWith(':memory:')) {
      issues.push(
        issue(
          ['listen', 'workers'],
          `expected a store file or PostgreSQL with ${workers} workers: an in-memory SQLite store would be a different, empty store in each worker`,
        ),
      );
    }
  }

  if (issues.length > 0) throw new ConfigError(issues);

  const log = cfg.log!;
  const config: GatewayConfig = {
    file: path,
    mode: cfg.mode,
    listen: {
      host: listen.host,
      port,
      workers,
      trustedProxies: trusted,
      ipv6Prefix: listen.ipv6_prefix,
      hosts: allowedHosts === undefined ? undefined : [...new Set(allowedHosts)],
      maxHeaderBytes: parseSize(defaults.max_header_bytes),
      maxHeaders: defaults.max_headers,
      headersTimeoutMs: parseDuration(defaults.headers_timeout),
      requestTimeoutMs: parseDuration(defaults.request_timeout),
      keepAliveTimeoutMs: parseDuration(defaults.keep_alive_timeout),
      drainTimeoutMs: parseDuration(defaults.drain_timeout),
      writeTimeoutMs: parseDuration(defaults.write_timeout),
      writeBufferBytes: parseSize(defaults.write_buffer),
      contendedWriteTimeoutMs: parseDuration(defaults.contended_write_timeout),
    },
    admin: {
      enabled: admin.enabled,
      host: admin.host,
      port: admin.port,
      api: { enabled: admin.api?.enabled ?? true, maxBodyBytes: parseSize(admin.api?.max_body ?? '64kb') },
      tls: adminTls,
      auth:
        admin.auth === undefined
          ? undefined
          : {
              jwt: admin.auth.jwt && {
                providers: admin.auth.jwt.providers,
                roleClaim: admin.auth.jwt.role_claim,
                roles: admin.auth.jwt.roles,
              },
              mtls: admin.auth.mtls && { principal: admin.auth.mtls.principal, roles: admin.auth.mtls.roles },
            },
    },
    store: { url: cfg.store!.url, dataDir: resolve(env.PORTCULLIS_DATA ?? 'data') },
    log: {
      level: log.level,
      access: log.access,
      redact: log.redact.map((h) => h.toLowerCase()),
      upstreamErrorBodies: log.upstream_error_bodies,
    },
    upstreams,
    routes,
    auth: compileAuth(rawAuth, configuredMethods),
    authorization: { network: cfg.authorization?.network },
    tls: tls.settings,
    rateLimit: compileRateLimit(rawRateLimit, cfg.listen!.ipv6_prefix),
    audit: compileAudit(cfg.audit),
    api: document && { file: document.file, title: document.title, operations: document.operations.length },
    anomaly: compileAnomaly(cfg.anomaly!),
    alerts: alerts.settings,
    blocks: compileBlocks(cfg.blocks!),
    secretScanning: secretScanning.settings,
    telemetry: telemetry.settings,
  };
  return { config: deepFreeze(config), overrides, unroutedExtensions, warnings };
}

function compileAuth(raw: NonNullable<RawConfig['auth']>, methods: AuthMethod[]): AuthSettings {
  const ih = raw.identity_headers!;
  const bf = raw.brute_force!;
  return {
    jwt: raw.jwt && {
      cacheSize: raw.jwt.cache_size,
      providers: raw.jwt.providers.map((p) => ({
        name: p.name,
        issuer: p.issuer,
        audience: p.audience,
        jwksUri: p.jwks_uri,
        algorithms: p.algorithms,
        hmacSecret: p.hmac_secret,
        clockSkewSeconds: Math.floor(parseDuration(p.clock_skew) / 1000),
        requireTyp: p.require_typ,
        maxTokenBytes: parseSize(p.max_token_size),
        scopesClaim: p.scopes_claim,
        rolesClaim: p.roles_claim,
        tenantClaim: p.tenant_claim,
        jwksCacheMs: parseDuration(p.jwks_cache),
        jwksCooldownMs: parseDuration(p.jwks_cooldown),
        jwksTimeoutMs: parseDuration(p.jwks_timeout),
      })),
    },
    introspection: raw.introspection && {
      providers: raw.introspection.providers.map((p) => ({
        name: p.name,
        endpoint: p.endpoint,
        issuer: p.issuer,
        audience: p.audience,
        clientId: p.client_id,
        clientSecret: p.client_secret,
        cacheTtlMs: parseDuration(p.cache_ttl),
        inactiveCacheTtlMs: parseDuration(p.inactive_cache_ttl),
        timeoutMs: parseDuration(p.timeout),
        onFailure: p.on_failure,
      })),
    },
    apiKeys: raw.api_keys && {
      header: raw.api_keys.header.toLowerCase(),
      queryParam: raw.api_keys.query_param,
      pepper: raw.api_keys.pepper,
      cacheSize: raw.api_keys.cache_size,
      cacheTtlMs: parseDuration(raw.api_keys.cache_ttl),
      importedKeys: raw.api_keys.imported_keys,
    },
    issuer: raw.issuer && {
      issuer: raw.issuer.issuer.replace(/\/$/, ''),
      audience: raw.issuer.audience,
      tokenTtlMs: parseDuration(raw.issuer.token_ttl),
      masterKey: raw.issuer.master_key,
      keyRotationMs: parseDuration(raw.issuer.key_rotation),
      rateLimit: parseRate(raw.issuer.rate_limit),
    },
    identityHeaders: {
      subject: ih.subject.toLowerCase(),
      kind: ih.kind.toLowerCase(),
      scopes: ih.scopes.toLowerCase(),
      roles: ih.roles.toLowerCase(),
      tenant: ih.tenant.toLowerCase(),
    },
    revocations: {
      pollMs: parseDuration(raw.revocations!.poll),
      retainMs: parseDuration(raw.revocations!.retain),
    },
    bruteForce: {
      enabled: bf.enabled,
      maxFailures: bf.max_failures,
      maxFailuresPerIp: bf.max_failures_per_ip,
      maxFailuresPerCredential: bf.max_failures_per_credential,
      throttleRate: bf.throttle_rate,
      windowMs: parseDuration(bf.window),
      lockoutMs: parseDuration(bf.lockout),
      maxLockoutMs: parseDuration(bf.max_lockout),
    },
    methods,
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value) && !(value instanceof Set)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
