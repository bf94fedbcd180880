/**
 * Authorization policies: compiled once from config, evaluated per request
 * as a pure function of the principal and the request's parsed values. The
 * same evaluation serves the authorize stage and `portcullis explain`, so
 * what explain prints is what the gateway does.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Static } from '@sinclair/typebox';
import { authorizeFromSecurity } from '../openapi/routes.js';
import type { SecurityRequirement } from '../openapi/types.js';
import type { Principal } from '../pipeline/context.js';
import { createCidrMatcher } from '../util/ip.js';
import type { AuthorizeSchema, NetworkSchema } from './schema.js';

export type RawAuthorize = Static<typeof AuthorizeSchema>;
export type RawNetwork = Static<typeof NetworkSchema>;

export interface PolicyInput {
  principal: Principal | undefined;
  /** Route parameters as the router decoded them from the canonical path. */
  params: Readonly<Record<string, string | undefined>>;
  /** The raw query string. */
  query: string;
  headers: IncomingHttpHeaders;
  /** The parsed request body, when the policy binds to body fields. */
  body: unknown;
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
}

/** Reads a dotted path (`realm_access.roles`) from an object, own properties only. */
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

/** Every value a request carries for `ref` (`query.x` may repeat), as strings. */
export function requestValues(input: PolicyInput, ref: string): string[] {
  const dot = ref.indexOf('.');
  const source = ref.slice(0, dot);
  const name = ref.slice(dot + 1);
  const str = (v: unknown): string[] =>
    v === undefined || v === null
      ? []
      : Array.isArray(v)
        ? v.flatMap(str)
        : typeof v === 'object'
          ? ['[object]']
          : [String(v)];
  switch (source) {
    case 'path':
      return str(input.params[name]);
    case 'query':
      return input.query === '' ? [] : new URLSearchParams(input.query).getAll(name);
    case 'header':
      return str(input.headers[name.toLowerCase()]);
    default:
      return str(readPath(input.body, name));
  }
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
      const values = refs.flatMap((r) => requestValues(input, r));
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
