/**
 * Authorization policies: compiled once from config, evaluated per request
 * as a pure function of the principal and the request's parsed values. The
 * same evaluation serves the authorize stage and `portcullis explain`, so
 * what explain prints is what the gateway does.
 */
import type { Static } from '@sinclair/typebox';
import type { Principal } from '../contracts/principal.js';
import type { HeaderView, QueryView, RequestBody } from '../contracts/request.js';
import type { RequestContext } from '../contracts/stage.js';
import { authorizeFromSecurity } from '../openapi/routes.js';
import type { SecurityRequirement } from '../openapi/types.js';
import { parseQuery } from '../request/query.js';
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
  /**
   * One object of the upstream's parsed JSON response (the body, or an item
   * of an array body), when rules decided on the response are evaluated;
   * undefined while the request is decided, and those rules then pass.
   */
  response?: { readonly value: unknown } | undefined;
}

/** The request values a policy reads: the context's one reading of the request. */
export function policyInput(ctx: RequestContext): PolicyInput {
  return {
    principal: ctx.principal,
    params: ctx.params,
    query: ctx.query,
    headers: ctx.headers,
    body: ctx.requestBody,
    clientIp: ctx.clientIp,
  };
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
  /** Set on a rule decided on the response: it passes while the request is decided. */
  onResponse?: boolean;
}

/** How a policy with rules decided on the response answers a response that does not belong to the caller. */
export interface ResponseRuleOptions {
  /** 404 (the object's existence is not revealed) or 403. */
  readonly status: 404 | 403;
  /** On an array response: remove the items that do not belong, or refuse the whole response. */
  readonly items: 'remove' | 'refuse';
  /** Pointer segments of the array of a wrapped collection (`/data`); undefined: an array body is the collection. */
  readonly collection: readonly string[] | undefined;
}

/**
 * What one request's response must satisfy: it (or an item of it) belongs to
 * the caller when every check of one of `sets` passes on it.
 */
export interface ResponsePlan {
  readonly sets: readonly (readonly Check[])[];
  /** The rules the plan checks, for the trail and the log. */
  readonly rules: readonly string[];
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
  /** Set when a rule is decided on the upstream's response (`owner: { response: … }`). */
  response: ResponseRuleOptions | undefined;
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
      if (body.kind === 'form' && segments.length === 1) {
        // A form body is a query string: bind every spelling an upstream may read
        // (`[name]=`, `x=a]=b`, `;`-split pairs, another case), as for the query.
        const view = parseQuery(body.bytes.toString('utf8'));
        if (view === undefined) throw new UnreadableBinding('inputInvalid', 'the form body is malformed');
        for (const value of view.values(path)) if (!out.includes(value)) out.push(value);
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

/**
 * The path segments of a response field: a JSON Pointer (`/user/id`, RFC
 * 6901 escapes) or a simple path (`$.user.id`, `user.id`).
 */
export function responseFieldSegments(field: string): string[] {
  if (field.startsWith('/')) {
    return field
      .slice(1)
      .split('/')
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  }
  return (field.startsWith('$.') ? field.slice(2) : field).split('.');
}

/** The value at `segments` of a parsed JSON value, own properties only; undefined when absent. */
export function valueAt(value: unknown, segments: readonly string[]): unknown {
  let cur = value;
  for (const seg of segments) {
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9]\d*)$/.test(seg)) return undefined;
      cur = cur[Number(seg)];
    } else if (cur !== null && typeof cur === 'object' && Object.hasOwn(cur, seg)) {
      cur = (cur as Record<string, unknown>)[seg];
    } else return undefined;
  }
  return cur;
}

/**
 * A rule decided on the response: the field of the upstream's answer must
 * equal the principal's value. While the request is decided it passes and
 * says so; on the response a missing field, or one that is not a single
 * string or number, does not belong to anyone.
 */
function responseCheck(
  rule: string,
  field: string,
  expected: (p: Principal) => unknown,
  whose: string,
): Check {
  const segments = responseFieldSegments(field);
  const matched = `the response's ${field} is the principal's ${whose}`;
  return {
    rule,
    onResponse: true,
    evaluate(input) {
      if (input.response === undefined) {
        return {
          pass: true,
          detail: `decided on the response: its ${field} must equal the principal's ${whose}`,
        };
      }
      const want = input.principal ? expected(input.principal) : undefined;
      if (want === undefined || want === null)
        return { pass: false, detail: 'the principal has no value to compare' };
      const found = valueAt(input.response.value, segments);
      if (typeof found !== 'string' && typeof found !== 'number') {
        return {
          pass: false,
          detail: `the response has ${found === undefined ? 'no' : 'no single value at'} ${field}`,
        };
      }
      const wanted = String(want);
      // Collections check every item: the detail is only built for a mismatch.
      if (String(found) === wanted) return { pass: true, detail: matched };
      return {
        pass: false,
        // Ids, not free text: quoted as they are, bounded (the upstream's value goes to the audit log).
        detail: `response has "${String(found).slice(0, 64)}" at ${field}; principal has "${wanted}"`,
      };
    },
  };
}

function compileRuleSet(raw: RuleSet): Check[] {
  const checks: Check[] = [];
  if (raw.network) checks.push(networkCheck('network', raw.network));
  if (raw.scopes) checks.push(allAny('scopes', raw.scopes, (p) => p.scopes));
  if (raw.roles) checks.push(allAny('roles', raw.roles, (p) => p.roles));
  for (const [claim, condition] of Object.entries(raw.claims ?? {})) {
    checks.push(claimCheck(claim, condition));
  }
  if (raw.owner) {
    const claim = raw.owner.claim ?? 'sub';
    if (raw.owner.param !== undefined) {
      const refs = [raw.owner.param].flat();
      checks.push(bindingCheck(`owner(${refs.join(', ')} == ${claim})`, refs, (p) => claimOf(p, claim)));
    }
    if (raw.owner.response !== undefined) {
      const field = raw.owner.response;
      checks.push(
        responseCheck(`owner(response ${field} == ${claim})`, field, (p) => claimOf(p, claim), claim),
      );
    }
  }
  if (raw.tenant) {
    if (raw.tenant.param !== undefined) {
      const refs = [raw.tenant.param].flat();
      checks.push(bindingCheck(`tenant(${refs.join(', ')} == tenant)`, refs, (p) => p.tenant));
    }
    if (raw.tenant.response !== undefined) {
      const field = raw.tenant.response;
      checks.push(responseCheck(`tenant(response ${field} == tenant)`, field, (p) => p.tenant, 'tenant'));
    }
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
  const sets = [rules, ...(any ?? [])];
  const refs = sets.flatMap((r) => [
    ...(r.owner?.param === undefined ? [] : [r.owner.param].flat()),
    ...(r.tenant?.param === undefined ? [] : [r.tenant.param].flat()),
  ]);
  const bindings = sets.flatMap((r) => [r.owner, r.tenant]).filter((b) => b?.response !== undefined);
  return {
    mode: mode ?? 'enforce',
    checks: compileRuleSet(rules),
    any: any?.map(compileRuleSet),
    needsBody: refs.some((r) => r.startsWith('body.')),
    refs,
    response:
      bindings.length === 0
        ? undefined
        : {
            // The stricter answer wins where rules differ.
            status: bindings.some((b) => b?.status === 403) ? 403 : 404,
            items: bindings.some((b) => b?.items === 'refuse') ? 'refuse' : 'remove',
            collection: ((at) => (at === undefined ? undefined : responseFieldSegments(at)))(
              bindings.find((b) => b?.collection !== undefined)?.collection,
            ),
          },
  };
}

/**
 * What the response must satisfy, given the request (once the request side
 * allowed it): the rules decided on the response of the rule set that
 * applies, together with the alternatives (`any`) that passed on the
 * request only through such rules. Undefined when nothing is left to check:
 * the policy has no such rules, or an alternative without them passed
 * (an admin). A plan with no sets refuses every response.
 */
export function planResponse(policy: CompiledPolicy, input: PolicyInput): ResponsePlan | undefined {
  if (policy.response === undefined) return undefined;
  const request: PolicyInput = { ...input, response: undefined };
  const top = policy.checks.filter((c) => c.onResponse);
  let alternatives: (readonly Check[])[] = [[]];
  if (policy.any) {
    const passed = policy.any.filter((set) =>
      set.every((c) => c.onResponse === true || c.evaluate(request).pass),
    );
    if (!passed.some((set) => !set.some((c) => c.onResponse))) {
      alternatives = passed.map((set) => set.filter((c) => c.onResponse));
    }
  }
  const sets = alternatives.map((a) => [...top, ...a]);
  if (sets.some((s) => s.length === 0)) return undefined;
  return { sets, rules: [...new Set(sets.flat().map((c) => c.rule))] };
}

/** Whether one object of a response belongs to the caller under `plan`; the detail says what was compared. */
export function ownsResponse(
  plan: ResponsePlan,
  input: PolicyInput,
  value: unknown,
): { pass: boolean; detail: string } {
  const at: PolicyInput = { ...input, response: { value } };
  const failed: string[] = [];
  for (const set of plan.sets) {
    let pass = true;
    for (const check of set) {
      const r = check.evaluate(at);
      if (!r.pass) {
        pass = false;
        failed.push(`${check.rule}: ${r.detail}`);
        break;
      }
    }
    if (pass) return { pass: true, detail: '' };
  }
  return { pass: false, detail: failed.length > 0 ? failed.join('; ') : 'no rule set passed on the request' };
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
