/**
 * Authorization policies: compiled once from config, evaluated per request
 * as a pure function of the principal and the request's parsed values. The
 * same evaluation serves the authorize stage and `portcullis explain`, so
 * what explain prints is what the gateway does.
 */
import type { Static } from '@sinclair/typebox';
import type { Principal } from '../contracts/principal.js';
import type { HeaderView, QueryView, RequestBody } from '../contracts/request.js';
import { authorizeFromSecurity } from '../openapi/routes.js';
import type { SecurityRequirement } from '../openapi/types.js';
import { createCidrMatcher } from '../util/ip.js';
import type { AuthorizeSchema, NetworkSchema } from './schema.js';

export type RawAuthorize = Static<typeof AuthorizeSchema>;
export type RawNetwork = Static<typeof NetworkSchema>;

export interface PolicyInput {
  principal: Principal | undefined;
  /** Route parameters as the router decoded them from the canonical path. */
  params: Readonly<Record<string, string | undefined>>;
  /** The query, parsed once: every spelling of a bound name is seen. */
  query: QueryView;
  headers: HeaderView;
  /** The request body as read once, when the policy binds to body fields. */
  body: RequestBody | undefined;
  clientIp: string;
}

export interface TrailEntry {
  rule: string;
  pass: boolean;
  /** What was compared. Never a credential. */
  detail: string;
}

export interface PolicyDecision {
  allowed: boolean;
  trail: TrailEntry[];
}

interface Check {
  rule: string;
  evaluate(input: PolicyInput): { pass: boolean; detail: string };
}

export interface CompiledPolicy {
  mode: 'enforce' | 'shadow';
  checks: readonly Check[];
  /** Alternatives: at least one must pass entirely. */
  any: readonly (readonly Check[])[] | undefined;
  /** Whether a rule reads the body (the stage then parses it first). */
  needsBody: boolean;
  /** Every request value the policy binds (`path.id`, `query.userId`, `body.owner.id`). */
  refs: readonly string[];
}

/**
 * Reads a dotted path (`realm_access.roles`) from token claims, own
 * properties only. A literal key with dots wins (namespaced claims such as
 * `https://example.com/roles` are common); claims are signed, so neither
 * spelling is the caller's choice. Request bodies are read by `bodyValues`.
 */
export function readPath(source: unknown, path: string): unknown {
  if (source !== null && typeof source === 'object' && Object.hasOwn(source, path)) {
    return (source as Record<string, unknown>)[path];
  }
  let cur: unknown = source;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, part)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function claimOf(principal: Principal, claim: string): unknown {
  const value = readPath(principal.claims, claim);
  // API keys and clients have no token claims: their id is their subject.
  if (value === undefined && claim === 'sub') return principal.id;
  return value;
}

/** A body-bound rule met a body it cannot read the way an upstream would: refused, never passed. */
export class UnreadableBinding extends Error {
  constructor(
    /** The answer: 415 for a body of a kind that cannot be bound, 400 for one its parser refused or an ambiguity. */
    readonly error: 'unsupportedMediaType' | 'inputInvalid' | 'ambiguousParameter',
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'UnreadableBinding';
  }
}

/** Every value a request carries for `ref` (`query.x` may repeat), as strings. */
export function requestValues(input: PolicyInput, ref: string): string[] {
  const dot = ref.indexOf('.');
  const source = ref.slice(0, dot);
  const name = ref.slice(dot + 1);
  switch (source) {
    case 'path':
      return strings(input.params[name]);
    case 'query':
      return input.query.values(name);
    case 'header':
      return [...input.headers.all(name.toLowerCase())];
    default:
      return bodyValues(input.body, name);
  }
}

function strings(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v.flatMap(strings);
  return typeof v === 'object' ? ['[object]'] : [String(v)];
}

/**
 * Every value a body carries at a dotted path, the way upstream binders may
 * read it: nested properties only, keys compared without case (ASP.NET,
 * Jackson with case-insensitive mapping), and through arrays (a batch of
 * objects binds each one). A body that also has the literal dotted key
 * (`{"account.owner": …}`) is refused: some binders read that instead.
 * Form and multipart fields bind by name path: `a.b`, `a[b]`, `a[0][b]`.
 */
export function bodyValues(body: RequestBody | undefined, path: string): string[] {
  if (body === undefined || body.kind === 'none') return [];
  const segments = path.toLowerCase().split('.');
  switch (body.kind) {
    case 'json': {
      const out: string[] = [];
      collectAt(body.value, segments, 0, out);
      return out;
    }
    case 'form':
    case 'multipart': {
      const out: string[] = [];
      for (const field of body.fields) {
        if (samePath(fieldPath(field.name), segments)) out.push(field.value);
      }
      return out;
    }
    case 'raw':
      if (body.problem !== undefined) {
        throw new UnreadableBinding(
          'inputInvalid',
          `the ${body.declared} body is malformed: ${body.problem.rule}`,
        );
      }
      throw new UnreadableBinding('unsupportedMediaType', `a ${body.declared} body cannot be bound`);
    default:
      throw new UnreadableBinding('unsupportedMediaType', `a ${body.kind} body cannot be bound`);
  }
}

function collectAt(value: unknown, segments: readonly string[], at: number, out: string[]): void {
  if (Array.isArray(value)) {
    for (const item of value) collectAt(item, segments, at, out);
    return;
  }
  if (at === segments.length) {
    out.push(...strings(value));
    return;
  }
  if (value === null || typeof value !== 'object') return;
  const rest = segments.slice(at).join('.');
  for (const key of Object.keys(value)) {
    const folded = key.toLowerCase();
    if (folded === segments[at]) collectAt((value as Record<string, unknown>)[key], segments, at + 1, out);
    else if (
      at < segments.length - 1 &&
      folded.includes('.') &&
      (rest === folded || rest.startsWith(`${folded}.`))
    ) {
      throw new UnreadableBinding(
        'ambiguousParameter',
        `literal dotted key ${JSON.stringify(key.slice(0, 64))}`,
      );
    }
  }
}

/** The name path of a form field: `a.b`, `a[b]`, `a[0][b]` and `a[]` → `a`, `b`; lower case. */
function fieldPath(name: string): string[] {
  return name
    .toLowerCase()
    .split(/[.[\]]+/)
    .filter((s) => s !== '' && !/^\d+$/.test(s));
}

function samePath(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}

function show(values: readonly unknown[]): string {
  return values.map((v) => JSON.stringify(v)).join(', ');
}

function allAny(
  rule: string,
  need: string[] | { all?: string[]; any?: string[] },
  have: (p: Principal) => readonly string[],
): Check {
  const all = Array.isArray(need) ? need : (need.all ?? []);
  const any = Array.isArray(need) ? [] : (need.any ?? []);
  return {
    rule,
    evaluate({ principal }) {
      const held = principal ? have(principal) : [];
      const missing = all.filter((s) => !held.includes(s));
      const anyOk = any.length === 0 || any.some((s) => held.includes(s));
      const pass = principal !== undefined && missing.length === 0 && anyOk;
      const parts = [];
      if (all.length > 0) parts.push(`all of [${all.join(' ')}]`);
      if (any.length > 0) parts.push(`any of [${any.join(' ')}]`);
      return { pass, detail: `needs ${parts.join(' and ')}; has [${held.join(' ')}]` };
    },
  };
}

type RuleSet = Omit<Exclude<RawAuthorize, string>, 'mode' | 'any'>;

function compileRuleSet(raw: RuleSet): Check[] {
  const checks: Check[] = [];
  if (raw.network) checks.push(networkCheck('network', raw.network));
  if (raw.scopes) checks.push(allAny('scopes', raw.scopes, (p) => p.scopes));
  if (raw.roles) checks.push(allAny('roles', raw.roles, (p) => p.roles));
  for (const [claim, condition] of Object.entries(raw.claims ?? {})) {
    checks.push(claimCheck(claim, condition));
  }
  if (raw.owner) {
    const refs = Array.isArray(raw.owner.param) ? raw.owner.param : [raw.owner.param];
    const claim = raw.owner.claim ?? 'sub';
    checks.push(bindingCheck(`owner(${refs.join(', ')} == ${claim})`, refs, (p) => claimOf(p, claim)));
  }
  if (raw.tenant) {
    const refs = Array.isArray(raw.tenant.param) ? raw.tenant.param : [raw.tenant.param];
    checks.push(bindingCheck(`tenant(${refs.join(', ')} == tenant)`, refs, (p) => p.tenant));
  }
  return checks;
}

/** The request values at `refs` must all be present-or-absent-consistently and equal the principal's value. */
function bindingCheck(rule: string, refs: readonly string[], expected: (p: Principal) => unknown): Check {
  return {
    rule,
    evaluate(input) {
      const values: string[] = [];
      for (const ref of refs) {
        const found = requestValues(input, ref);
        // A body that does not carry a field the rule names may still bind it some other way: deny.
        if (
          found.length === 0 &&
          ref.startsWith('body.') &&
          input.body !== undefined &&
          input.body.kind !== 'none'
        ) {
          return { pass: false, detail: `the body carries no ${ref.slice(5)}` };
        }
        values.push(...found);
      }
      const want = input.principal ? expected(input.principal) : undefined;
      if (want === undefined || want === null)
        return { pass: false, detail: 'the principal has no value to compare' };
      if (values.length === 0) return { pass: false, detail: 'the request carries no value to compare' };
      const wanted = String(want);
      // Every occurrence must match: a second, different value (parameter
      // pollution, path and body disagreeing) is what an upstream might use.
      const pass = values.every((v) => v === wanted);
      return { pass, detail: `request has ${show(values)}; principal has ${JSON.stringify(wanted)}` };
    },
  };
}

function claimCheck(claim: string, condition: unknown): Check {
  const c =
    condition !== null && typeof condition === 'object'
      ? (condition as Record<string, unknown>)
      : { equals: condition };
  const regex = typeof c.matches === 'string' ? new RegExp(c.matches, 'u') : undefined;
  return {
    rule: `claim ${claim}`,
    evaluate({ principal }) {
      const value = principal ? claimOf(principal, claim) : undefined;
      let pass: boolean;
      let want: string;
      if ('equals' in c) {
        pass = value === c.equals;
        want = `== ${JSON.stringify(c.equals)}`;
      } else if (Array.isArray(c.in)) {
        pass = (c.in as unknown[]).includes(value);
        want = `in ${JSON.stringify(c.in)}`;
      } else if (regex) {
        pass = typeof value === 'string' && regex.test(value);
        want = `matches /${c.matches}/`;
      } else {
        pass = (value !== undefined) === c.exists;
        want = c.exists ? 'exists' : 'absent';
      }
      return { pass, detail: `${want}; is ${value === undefined ? 'absent' : JSON.stringify(value)}` };
    },
  };
}

export function networkCheck(rule: string, raw: RawNetwork): Check {
  const allow = raw.allow && raw.allow.length > 0 ? createCidrMatcher(raw.allow) : undefined;
  const deny = createCidrMatcher(raw.deny ?? []);
  return {
    rule,
    evaluate({ clientIp }) {
      if (deny(clientIp)) return { pass: false, detail: `${clientIp} is in the deny list` };
      if (allow && !allow(clientIp)) return { pass: false, detail: `${clientIp} is not in the allow list` };
      return { pass: true, detail: `${clientIp} allowed` };
    },
  };
}

/** Compiles a route's `authorize` value; `undefined` for `any-authenticated`. */
export function compilePolicy(raw: RawAuthorize): CompiledPolicy | undefined {
  if (raw === 'any-authenticated') return undefined;
  const { mode, any, ...rules } = raw;
  const refs = [
    ...(rules.owner ? [rules.owner.param].flat() : []),
    ...(rules.tenant ? [rules.tenant.param].flat() : []),
    ...(any ?? []).flatMap((r) => [
      ...(r.owner ? [r.owner.param].flat() : []),
      ...(r.tenant ? [r.tenant.param].flat() : []),
    ]),
  ];
  return {
    mode: mode ?? 'enforce',
    checks: compileRuleSet(rules),
    any: any?.map(compileRuleSet),
    needsBody: refs.some((r) => r.startsWith('body.')),
    refs,
  };
}

/** Evaluates every rule (for a complete trail) and decides. */
export function evaluatePolicy(policy: CompiledPolicy, input: PolicyInput): PolicyDecision {
  const trail: TrailEntry[] = [];
  let allowed = true;
  for (const check of policy.checks) {
    const r = check.evaluate(input);
    trail.push({ rule: check.rule, ...r });
    if (!r.pass) allowed = false;
  }
  if (policy.any) {
    let anyPassed = false;
    policy.any.forEach((set, i) => {
      let setPassed = true;
      for (const check of set) {
        const r = check.evaluate(input);
        trail.push({ rule: `any[${i}].${check.rule}`, ...r });
        if (!r.pass) setPassed = false;
      }
      if (setPassed) anyPassed = true;
    });
    if (!anyPassed) allowed = false;
  }
  return { allowed, trail };
}

/**
 * The policies an API document states for a route, by method: each
 * operation's `security` as written (OAuth scopes, role names), enforced in
 * addition to the route's own `authorize` — least privilege needs no
 * duplicate config. Operations that let any authenticated caller in (or
 * state nothing) add nothing.
 */
export function documentPolicies(
  operations: Readonly<Record<string, { security: readonly SecurityRequirement[] | undefined }>>,
): Map<string, CompiledPolicy> {
  const out = new Map<string, CompiledPolicy>();
  for (const [method, op] of Object.entries(operations)) {
    if (op.security === undefined || op.security.length === 0) continue;
    const raw = authorizeFromSecurity(op.security);
    if (raw === 'any-authenticated') continue;
    const policy = compilePolicy(raw as RawAuthorize);
    if (policy) out.set(method, policy);
  }
  return out;
}
