/**
 * `portcullis check --owasp`: what a loaded, validated config covers of the
 * OWASP API Security Top 10 (2023), route by route, and the gaps it leaves
 * open, as findings with a severity and a place in the config (or in the
 * API document a route comes from). It reads the compiled routes, so it
 * judges what the gateway will actually enforce, defaults and document
 * extensions included. It never contacts anything.
 */
import { relative } from 'node:path';
import { bundle } from '@readme/openapi-parser';
import type { GatewayConfig, RouteSettings } from '../config/types.js';
import { METHODS as DOC_METHODS, escapeSegment, isObject, type JsonObject } from '../openapi/walk.js';
import { type UrlInput, urlInputsOfInline, urlInputsOfOperation } from './inputs.js';
import { type Lines, pointerSegments, readLines, type Segment } from './locate.js';
import { OWASP_IDS, type OwaspId } from './rules.js';

export type Severity = 'low' | 'medium' | 'high';
export const SEVERITIES: readonly Severity[] = ['low', 'medium', 'high'];

export interface Finding {
  readonly rule: OwaspId;
  readonly severity: Severity;
  /** A hint (API6): reported, never counted by `--fail-on`. */
  readonly hint: boolean;
  readonly message: string;
  /** The route's name, when the finding is about one route. */
  readonly route: string | undefined;
  /** Where to look: the file (absolute), a dotted path in the config or a JSON pointer in the API document, and the line when found. */
  readonly file: string;
  readonly path: string;
  readonly line: number | undefined;
}

/** `covered`: the config has the control; `open`: a finding says what is missing; `n/a`: nothing to cover. */
export type Coverage = 'covered' | 'open' | 'n/a';

export interface RouteReport {
  readonly name: string;
  readonly path: string;
  readonly methods: readonly string[];
  readonly file: string;
  readonly line: number | undefined;
  readonly coverage: Readonly<Record<OwaspId, Coverage>>;
}

export interface OwaspReport {
  /** The config file (absolute). */
  readonly config: string;
  /** The API description, when there is one (absolute). */
  readonly document: string | undefined;
  readonly routes: readonly RouteReport[];
  readonly findings: readonly Finding[];
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);
/** Path segments of administrative functions (API5). */
const ADMIN_SEGMENT =
  /^(admin|admins|administration|administrator|internal|manage|management|staff|superuser|sudo|debug|ops|actuator|console|backoffice|back-office|system|_[a-z]+)([-_][a-z0-9-_]*)?$/i;
/** Path segments of business flows worth a limit of their own (API6). */
const FLOW_SEGMENT =
  /(checkout|purchase|buy|order|payment|pay|transfer|signup|sign-up|register|registration|invite|comment|review|vote|booking|reserve|reservation|coupon|redeem|referral|otp|password|reset|login|token)/i;

type Policy = RouteSettings['authorize'];
type RuleSet = Exclude<Policy, string | undefined>;

/** Whether some rule set the policy can pass through has `key` (an alternative counts). */
function mentions(policy: Policy, key: 'owner' | 'tenant'): boolean {
  if (policy === undefined || typeof policy === 'string') return false;
  return policy[key] !== undefined || (policy.any ?? []).some((alt) => alt[key] !== undefined);
}

/** Whether every way through the policy requires a role or a scope. */
function requiresPrivilege(policy: Policy): boolean {
  if (policy === undefined || typeof policy === 'string') return false;
  const has = (r: Partial<RuleSet>) => r.roles !== undefined || r.scopes !== undefined;
  if (has(policy)) return true;
  return policy.any !== undefined && policy.any.length > 0 && policy.any.every(has);
}

/** Whether every way through the policy requires a role (an admin function needs more than a scope). */
function requiresRole(policy: Policy): boolean {
  if (policy === undefined || typeof policy === 'string') return false;
  if (policy.roles !== undefined) return true;
  return policy.any !== undefined && policy.any.length > 0 && policy.any.every((r) => r.roles !== undefined);
}

const hasLimits = (r: RouteSettings) =>
  r.rateLimits !== undefined &&
  r.rateLimits.limits.length + r.rateLimits.quotas.length + r.rateLimits.concurrency.length > 0;

const isLoopback = (origin: string) => {
  const host = new URL(origin).hostname;
  return host === 'localhost' || host === '[::1]' || host.startsWith('127.');
};

/** The report for a config loaded by `loadConfig`. */
export async function owaspReport(config: GatewayConfig): Promise<OwaspReport> {
  const configLines = readLines(config.file);
  const docFile = config.api?.file;
  const docLines = docFile === undefined ? undefined : readLines(docFile);
  let doc: JsonObject | undefined;
  if (docFile !== undefined) {
    try {
      doc = (await bundle(docFile, {
        resolve: { external: true, file: true, http: { canRead: false } as never },
      })) as unknown as JsonObject;
    } catch {
      doc = undefined; // It loaded a moment ago; without it, API7 and API9 look at less.
    }
  }
  const findings: Finding[] = [];
  const writtenRoutes = configLines.value(['routes']);
  const routesInConfig = Array.isArray(writtenRoutes);

  const at = (segments: Segment[], file = config.file, lines: Lines = configLines) => ({
    file,
    path: formatSegments(segments),
    line: lines.line(segments),
  });
  const global = (rule: OwaspId, severity: Severity, message: string, segments: Segment[]) =>
    findings.push({ rule, severity, hint: false, message, route: undefined, ...at(segments) });

  // Settings for every route.
  const tlsOff = config.tls.listener === undefined;
  if (tlsOff) {
    global(
      'API8',
      config.mode === 'production' ? 'high' : 'medium',
      'the public listener serves plain HTTP: credentials and data cross the network in clear (set listen.tls)',
      ['listen'],
    );
  }
  const bruteForceOff = !config.auth.bruteForce.enabled;
  if (bruteForceOff) {
    global('API2', 'high', 'brute-force protection is off: credentials can be guessed without lockout', [
      'auth',
      'brute_force',
      'enabled',
    ]);
  }
  const upstreamGaps = new Map<string, string[]>();
  for (const [name, u] of Object.entries(config.upstreams)) {
    const gaps: string[] = [];
    if (u.origin.startsWith('http:')) {
      const loopback = isLoopback(u.origin);
      global(
        'API10',
        loopback ? 'low' : 'medium',
        `upstream ${name} is reached over plain HTTP${loopback ? ' (loopback)' : ''}: its answers can be read and changed on the way`,
        ['upstreams', name, 'url'],
      );
      gaps.push('plain HTTP');
    }
    if (config.tls.upstreams[name]?.verify === false) {
      global(
        'API10',
        'high',
        `upstream ${name}: TLS certificate verification is off, anyone on the path can impersonate it`,
        ['upstreams', name, 'tls', 'verify'],
      );
      gaps.push('TLS verification off');
    }
    upstreamGaps.set(name, gaps);
  }
  if (config.api === undefined) {
    global(
      'API9',
      'low',
      'no API description (api.document): the routes cannot be checked against an inventory',
      ['routes'],
    );
  }

  const routes: RouteReport[] = [];
  const served = new Set<string>();
  for (const route of config.routes) {
    const methods = route.methods.filter((m) => m !== 'HEAD' || !route.methods.includes('GET'));
    const firstOp = Object.values(route.operations)[0];
    const fromConfig = routesInConfig && route.index < (writtenRoutes as unknown[]).length;
    const place =
      fromConfig || firstOp === undefined || docLines === undefined
        ? at(['routes', route.index])
        : {
            ...at(pointerSegments(firstOp.source.pointer), firstOp.source.file, docLines),
            path: firstOp.source.pointer,
          };
    const coverage = Object.fromEntries(OWASP_IDS.map((id) => [id, 'n/a'])) as Record<OwaspId, Coverage>;
    const open = (rule: OwaspId, severity: Severity, message: string, hint = false) => {
      coverage[rule] = 'open';
      findings.push({
        rule,
        severity,
        hint,
        message: `${route.name}: ${message}`,
        route: route.name,
        ...place,
      });
    };
    const cover = (rule: OwaspId) => {
      if (coverage[rule] !== 'open') coverage[rule] = 'covered';
    };
    const isPublic = route.auth === 'none';
    const writes = methods.some((m) => WRITE_METHODS.has(m));
    const segments = route.template.split('/').filter((s) => s !== '');

    // API1: an object id in the path, and nothing ties the object to the caller.
    if (route.params.length > 0 && !isPublic) {
      if (
        mentions(route.authorize, 'owner') ||
        mentions(route.authorize, 'tenant') ||
        requiresRole(route.authorize)
      ) {
        cover('API1');
      } else {
        open(
          'API1',
          'high',
          `path parameter ${route.params.map((p) => `{${p}}`).join(', ')} and no ownership rule (authorize.owner or authorize.tenant): any caller can reach any object`,
        );
      }
    }

    // API2: who the caller is, and guessing.
    if (isPublic) {
      open(
        'API2',
        writes ? 'high' : 'low',
        writes
          ? `public route (auth: none) that changes data (${methods.filter((m) => WRITE_METHODS.has(m)).join(', ')})`
          : 'public route (auth: none): make sure it serves only public data',
      );
    } else {
      if (bruteForceOff) coverage.API2 = 'open';
      else cover('API2');
      if (route.apiKeyInQuery) {
        open(
          'API2',
          'medium',
          'API keys accepted in the query string (api_key_in_query): they end up in logs and histories',
        );
      }
    }

    // API3: what leaves the gateway.
    const returnsObjects = Object.values(route.operations).some((op) =>
      (op.responses ?? []).some((r) => r.media.some((m) => m.kind === 'json')),
    );
    const redacts = route.responses.redactKeys.length > 0 || route.responses.redactText !== undefined;
    if (route.responses.mode === 'off') {
      if (redacts) cover('API3');
      else open('API3', 'medium', 'response filtering is off (responses.mode: off) and nothing is redacted');
    } else if (!Object.values(route.operations).some((op) => op.responses !== undefined)) {
      if (redacts) cover('API3');
      else
        open(
          'API3',
          'low',
          'no response schema (the API description does not describe it) and no redaction: any property the upstream returns goes out',
        );
    } else if (returnsObjects) {
      const unschemed = Object.values(route.operations).some((op) =>
        (op.responses ?? []).some((r) => r.media.some((m) => m.kind === 'json' && m.project === undefined)),
      );
      if (unschemed && !redacts) {
        open(
          'API3',
          'medium',
          'a JSON response without a schema and no redaction: its properties go out unfiltered',
        );
      } else cover('API3');
    } else if (redacts) cover('API3');

    // API4: limits.
    if (hasLimits(route)) cover('API4');
    else open('API4', 'medium', 'no rate limit, quota or concurrency limit (rate_limits)');
    if (methods.some((m) => BODY_METHODS.has(m))) {
      if (route.bodyLimit === Number.POSITIVE_INFINITY)
        open('API4', 'high', 'no body limit (body_limit: none)');
      else cover('API4');
    }

    // API5: administrative functions.
    if (segments.some((s) => ADMIN_SEGMENT.test(s))) {
      if (isPublic) open('API5', 'high', 'administrative path served without authentication');
      else if (requiresPrivilege(route.authorize)) cover('API5');
      else open('API5', 'high', 'administrative path without a role rule (authorize.roles)');
    }

    // API6: business flows (a hint: the gateway cannot know which flows are sensitive).
    if (
      methods.some((m) => BODY_METHODS.has(m)) &&
      segments.some((s) => !s.startsWith('{') && FLOW_SEGMENT.test(s))
    ) {
      if (hasLimits(route)) cover('API6');
      else
        open(
          'API6',
          'low',
          'looks like a business flow (purchase, sign-up, comment, …) with no limit: automated abuse is unbounded; consider a per-principal rate limit or quota',
          true,
        );
    }

    // API7: URL-valued inputs.
    const inputs: UrlInput[] = [];
    if (doc !== undefined) {
      for (const op of new Set(Object.values(route.operations))) {
        if (op.source.file === config.api?.file) inputs.push(...urlInputsOfOperation(doc, op.source.pointer));
      }
    }
    if (fromConfig) {
      inputs.push(
        ...urlInputsOfInline(configLines.value(['routes', route.index, 'validation', 'request_schema'])),
      );
    }
    if (inputs.length > 0) {
      const loose = [...new Set(inputs.filter((i) => !i.constrained).map((i) => i.where))];
      if (loose.length > 0 || route.validation.mode !== 'enforce') {
        open(
          'API7',
          'high',
          loose.length > 0
            ? `URL-valued input${loose.length > 1 ? 's' : ''} ${loose.join(', ')} without x-portcullis-url: the upstream can be made to fetch internal addresses (SSRF)`
            : `URL-valued inputs are constrained, but validation is ${route.validation.mode}: nothing refuses a bad URL`,
        );
      } else cover('API7');
    }

    // API8: configuration of the route's path through the gateway.
    if (tlsOff) coverage.API8 = 'open';
    if (route.cors?.anyOrigin && route.cors.credentials) {
      open('API8', 'high', 'CORS allows any origin ("*") together with credentials');
    } else if (route.cors?.anyOrigin && !isPublic) {
      open('API8', 'low', 'CORS allows any origin ("*") on an authenticated route');
    }
    if (route.inspection.mode === 'off')
      open('API8', 'medium', 'injection inspection is off (inspection.mode: off)');
    else if (route.inspection.mode === 'monitor')
      open('API8', 'low', 'injection inspection only monitors (inspection.mode: monitor)');
    if (Object.keys(route.operations).length > 0 || fromConfig) {
      if (route.validation.mode === 'off')
        open('API8', 'medium', 'request validation is off (validation.mode: off)');
      else if (route.validation.mode === 'shadow')
        open('API8', 'low', 'request validation only logs (validation.mode: shadow)');
    }
    cover('API8');

    // API9: inventory.
    if (config.api !== undefined) {
      const undescribed = methods.filter((m) => route.operations[m] === undefined);
      for (const op of Object.values(route.operations)) served.add(`${op.source.file}#${op.source.pointer}`);
      if (undescribed.length > 0) {
        open(
          'API9',
          'medium',
          `${undescribed.join(', ')} ${route.template} is not in the API description: an undocumented endpoint`,
        );
      } else cover('API9');
    }

    // API10: the upstream.
    const gaps = upstreamGaps.get(route.upstream) ?? [];
    if (gaps.length > 0) coverage.API10 = 'open';
    else cover('API10');

    routes.push({
      name: route.name,
      path: route.template,
      methods,
      file: place.file,
      line: place.line,
      coverage,
    });
  }

  // API9, the reverse: operations described but served by no route.
  if (doc !== undefined && docFile !== undefined && docLines !== undefined && isObject(doc.paths)) {
    for (const [path, item] of Object.entries(doc.paths)) {
      if (!isObject(item)) continue;
      for (const m of DOC_METHODS) {
        if (!isObject(item[m])) continue;
        const pointer = `/paths/${escapeSegment(path)}/${m}`;
        if (served.has(`${docFile}#${pointer}`)) continue;
        findings.push({
          rule: 'API9',
          severity: 'low',
          hint: false,
          message: `${m.toUpperCase()} ${path} is in the API description but no route serves it: a stale or forgotten endpoint`,
          route: undefined,
          file: docFile,
          path: pointer,
          line: docLines.line(pointerSegments(pointer)),
        });
      }
    }
  }

  const rank = (s: Severity) => SEVERITIES.indexOf(s);
  findings.sort(
    (a, b) => rank(b.severity) - rank(a.severity) || OWASP_IDS.indexOf(a.rule) - OWASP_IDS.indexOf(b.rule),
  );
  return { config: config.file, document: docFile, routes, findings };
}

/** `['routes', 2, 'auth']` → `routes[2].auth`. */
function formatSegments(segments: readonly Segment[]): string {
  let out = '';
  for (const s of segments) out += typeof s === 'number' ? `[${s}]` : out === '' ? s : `.${s}`;
  return out;
}

/** Whether a finding counts against `--fail-on` (hints never do). */
export function failsAt(finding: Finding, threshold: Severity): boolean {
  return !finding.hint && SEVERITIES.indexOf(finding.severity) >= SEVERITIES.indexOf(threshold);
}

/** A path for people: relative to `cwd` when inside it. */
export function displayPath(file: string, cwd = process.cwd()): string {
  const rel = relative(cwd, file);
  return rel !== '' && !rel.startsWith('..') ? rel : file;
}
