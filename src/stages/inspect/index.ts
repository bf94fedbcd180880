/**
 * Inspect: injection detection on everything the request carries, read
 * from its one parsed view (never parsed again here): the canonical path
 * and its parameters, the raw request target, query names and values,
 * header names and values, cookies, and the body — JSON values and keys,
 * form and multipart fields, multipart file names, XML text and
 * attribute values (not element or attribute names), and the text of bodies the gateway does not parse — decoded
 * of any Content-Encoding. Rules: the OWASP CRS (compiled, see
 * `engine.ts`) at the route's paranoia level, and Portcullis's own.
 *
 * Each input goes to the CRS targets it is to ModSecurity (`engine.ts`
 * TARGETS): path parameters, query values and body values are ARGS; keys
 * and field names ARGS_NAMES; multipart file names FILES; XML text and
 * attributes are ARGS too (what the CRS reads as XML:/*); the raw text of
 * a form, text or unparsed body is also REQUEST_BODY.
 *
 * Scoring, as the CRS does it: each rule that matches adds its severity
 * (critical 5, error 4, warning 3, notice 2) once; a request whose score
 * reaches the route's `anomaly_threshold` (default 5, as the CRS ships) is
 * rejected. With 5, any critical match rejects and warnings need company.
 * Portcullis's own rules are critical.
 *
 * Modes per route: `block` answers 403 `input.rejected` (with the
 * locations and categories, never the values); `monitor` lets the request
 * through, logs and records it in `shadowDenials`. Exclusions per route,
 * like CRS exclusion rules: a location for all rules, or for some
 * categories, rule ids or CRS tags; or rule ids and tags everywhere.
 *
 * Time budget, in CPU time (see `engine.ts`): a request that could not be
 * inspected within it is rejected in block mode (fail closed:
 * otherwise an attacker who can make inspection slow, with a large body,
 * would get past it) and let through with a warning in monitor mode.
 * The route's `timeout` is the budget of a request of up to BUDGET_TEXT
 * characters of text, and of each further BUDGET_TEXT (`budgetFor`).
 */

import type { BodyProblem, RequestBody } from '../../contracts/request.js';
import type { RequestContext } from '../../contracts/stage.js';
import type { Logger } from '../../log.js';
import { INPUT_ERRORS, InputError, type ProblemItem } from '../../openapi/errors.js';
import type { Exclusion, InspectionSettings } from '../../openapi/settings.js';
import type { StageFactory } from '../../pipeline/types.js';
import { hasBody, readRequestBody } from '../../request/body.js';
import { cookieReadings, parseCookies, percentDecoded } from '../../request/cookies.js';
import { type Detection, emptyInputs, type Inputs, inspect, ruleInfo, TARGETS, warmUp } from './engine.js';

/** Headers never inspected: credentials (checked by authentication), framing, and what the gateway sets. */
const SKIPPED_HEADERS = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'content-length',
  'transfer-encoding',
  'connection',
  'host',
  'x-request-id',
  'traceparent',
  'tracestate',
]);

/** Deepest body nesting walked; deeper input cannot be inspected and is treated as such. */
const MAX_WALK_DEPTH = 64;

class TooDeep extends Error {}

/** Adds the keys (ARGS_NAMES) and string leaves (ARGS) of a JSON value to `inputs`. */
export function collectJson(value: unknown, location: string[], inputs: Inputs, depth = 0): void {
  if (typeof value === 'string') {
    inputs.args.push({ location, text: value });
    return;
  }
  if (value === null || typeof value !== 'object') return;
  if (depth > MAX_WALK_DEPTH) throw new TooDeep();
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      collectJson(v, [...location, String(i)], inputs, depth + 1);
    });
    return;
  }
  for (const key of Object.keys(value)) {
    const at = [...location, key];
    inputs.args_names.push({ location: at, text: key });
    collectJson((value as Record<string, unknown>)[key], at, inputs, depth + 1);
  }
}

/** Whether `exclusion` covers `location` (a prefix, `*` matching any one segment). */
function covers(exclusion: Exclusion, location: readonly string[]): boolean {
  if (exclusion.segments.length > location.length) return false;
  return exclusion.segments.every((s, i) => s === '*' || s === location[i]);
}

/** Whether an exclusion excludes every rule (a location alone) or only some. */
function excludesAll(e: Exclusion): boolean {
  return e.categories === undefined && e.rules === undefined && e.tags === undefined;
}

/** Whether `exclusion` (already known to cover the location) excludes the rule that made `d`. */
function excludes(e: Exclusion, d: Detection): boolean {
  if (excludesAll(e)) return true;
  if (e.categories?.includes(d.category)) return true;
  if (e.rules?.includes(d.rule)) return true;
  if (e.tags !== undefined) {
    const tags = ruleInfo(d.rule)?.tags ?? [];
    if (e.tags.some((t) => tags.includes(t))) return true;
  }
  return false;
}

/**
 * Splits the inputs by the partial exclusions that cover each leaf: one
 * group per distinct set. Leaves a location-only exclusion covers are
 * dropped. (libddwaf reports a rule's first match only, so a match at an
 * excluded location must not hide one elsewhere: each group runs alone.)
 */
function groupByExclusion(
  inputs: Inputs,
  located: readonly Exclusion[],
): { inputs: Inputs; skip: readonly Exclusion[] }[] {
  if (located.length === 0) return [{ inputs, skip: [] }];
  const groups = new Map<string, { inputs: Inputs; skip: Exclusion[] }>();
  for (const target of TARGETS) {
    for (const leaf of inputs[target]) {
      const skip: Exclusion[] = [];
      let all = false;
      for (const e of located) {
        if (!covers(e, leaf.location)) continue;
        if (excludesAll(e)) all = true;
        else skip.push(e);
      }
      if (all) continue;
      const key = skip.map((e) => located.indexOf(e)).join(',');
      let group = groups.get(key);
      if (!group) {
        group = { inputs: emptyInputs(), skip };
        groups.set(key, group);
      }
      group.inputs[target].push(leaf);
    }
  }
  return [...groups.values()];
}

export interface Verdict {
  /** The detections that count (enabled categories, not excluded). */
  detections: Detection[];
  /** The inbound anomaly score: each rule that matched, once. */
  score: number;
  /** Whether the score reached the route's threshold. */
  reject: boolean;
  /** The CPU-time budget ran out before everything was inspected. */
  timedOut: boolean;
}

/** What `detect` derives from a route's settings: made once per settings object, not per request. */
interface RouteView {
  readonly enabled: ReadonlySet<string>;
  /** Exclusions without a location (rule ids, tags or categories everywhere). */
  readonly everywhere: readonly Exclusion[];
  /** Exclusions with a location. */
  readonly located: readonly Exclusion[];
}

const views = new WeakMap<InspectionSettings, RouteView>();

function viewOf(settings: InspectionSettings): RouteView {
  let view = views.get(settings);
  if (view === undefined) {
    view = {
      enabled: new Set(settings.categories),
      everywhere: settings.exclusions.filter((e) => e.segments.length === 0),
      located: settings.exclusions.filter((e) => e.segments.length > 0),
    };
    views.set(settings, view);
  }
  return view;
}

/**
 * The text one `timeout` of budget covers. Inspecting new text costs about 0.5 µs a character of
 * prose and 1 µs of markdown or code at PL1 (`bench/inspect/long-values.ts`; each character of a
 * value longer than 4 KB is read in two windows), so a budget per request alone refused every
 * body of more than some 10 KB of markdown or 20 KB of prose at the default 10 ms: benign
 * requests, refused for their size. A budget in proportion to the text (the default 10 ms per
 * 4,096 characters: 2.4 µs a character, twice what markdown costs) lets them through and still
 * bounds what a request costs per character it carries, which is what sets what a flood of large
 * requests costs; a request whose inspection needs more than that is still refused.
 */
export const BUDGET_TEXT = 4096;

/** The CPU budget for inspecting `inputs`, in µs: `timeoutMicros` per BUDGET_TEXT characters of their text, at least once. */
export function budgetFor(inputs: Inputs, timeoutMicros: number): number {
  let chars = 0;
  for (const target of TARGETS) for (const leaf of inputs[target]) chars += leaf.text.length;
  return chars <= BUDGET_TEXT ? timeoutMicros : timeoutMicros * (chars / BUDGET_TEXT);
}

/** No detections, no exclusions (shared, frozen: a write throws rather than leaks into other requests). */
const NONE = Object.freeze([]) as unknown as Detection[];
const NO_EXCLUSIONS: readonly Exclusion[] = Object.freeze([]);

/**
 * Runs the engine over `inputs` under a route's settings, and scores the result. What is derived
 * from the settings is derived once (`viewOf`; settings are not changed once made).
 */
export function detect(inputs: Inputs, settings: InspectionSettings): Verdict {
  const { enabled, everywhere, located } = viewOf(settings);
  const budget = budgetFor(inputs, settings.timeoutMicros);
  // No located exclusion (the common case): one run over all the inputs, nothing to group. (No
  // budget at all is the loop's case below: nothing inspected, timed out.)
  if (located.length === 0 && budget > 0) {
    const result = inspect(inputs, {
      paranoiaLevel: settings.paranoiaLevel,
      budgetMicros: budget,
    });
    if (result.detections.length === 0)
      return {
        detections: NONE,
        score: 0,
        reject: 0 >= settings.anomalyThreshold,
        timedOut: result.timedOut,
      };
    const detections: Detection[] = [];
    keep(result.detections, NO_EXCLUSIONS, enabled, everywhere, detections);
    return scored(detections, settings, result.timedOut);
  }
  const detections: Detection[] = [];
  let timedOut = false;
  let spent = 0;
  for (const group of groupByExclusion(inputs, located)) {
    const left = budget - spent;
    if (left <= 0) {
      timedOut = true;
      break;
    }
    const result = inspect(group.inputs, { paranoiaLevel: settings.paranoiaLevel, budgetMicros: left });
    spent += result.cpuMicros;
    if (result.timedOut) timedOut = true;
    keep(result.detections, group.skip, enabled, everywhere, detections);
    if (timedOut) break;
  }
  return scored(detections, settings, timedOut);
}

/** Adds to `out` the detections of an enabled category that no exclusion (`skip`, `everywhere`) removes. */
function keep(
  found: readonly Detection[],
  skip: readonly Exclusion[],
  enabled: ReadonlySet<string>,
  everywhere: readonly Exclusion[],
  out: Detection[],
): void {
  for (const d of found) {
    if (!enabled.has(d.category)) continue;
    if (skip.some((e) => excludes(e, d)) || everywhere.some((e) => excludes(e, d))) continue;
    out.push(d);
  }
}

/** The verdict on these detections: each rule that matched scores once. */
function scored(detections: Detection[], settings: InspectionSettings, timedOut: boolean): Verdict {
  let score = 0;
  for (const id of new Set(detections.map((d) => d.rule))) score += ruleInfo(id)?.score ?? 5;
  return { detections, score, reject: score >= settings.anomalyThreshold, timedOut };
}

/** The last segment of a path, as REQUEST_BASENAME. */
function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The request's inputs apart from its body; `skip` lists header names not inspected. */
function gatherInputs(ctx: RequestContext, skip: ReadonlySet<string>): Inputs {
  const inputs = emptyInputs();
  inputs.filename.push({ location: ['path'], text: ctx.path });
  const base = basename(ctx.path);
  if (base !== '') inputs.basename.push({ location: ['path'], text: base });
  // The request target as received (REQUEST_URI): its encodings are what some rules look for.
  if (ctx.req.url !== undefined) inputs.uri.push({ location: ['uri'], text: ctx.req.url });
  for (const [name, value] of Object.entries(ctx.params)) {
    if (value !== undefined) inputs.args.push({ location: ['path', name], text: value });
  }
  if (ctx.query.raw !== '') inputs.query_string.push({ location: ['query'], text: ctx.query.raw });
  for (const [name, value] of ctx.query.pairs) {
    const location = ['query', name];
    inputs.args_names.push({ location, text: name });
    inputs.args.push({ location, text: value });
  }
  for (const [name, value] of ctx.headers.pairs) {
    if (skip.has(name)) continue;
    const location = ['header', name];
    inputs.headers_names.push({ location, text: name });
    inputs.headers.push({ location, text: value });
  }
  const cookies = parseCookies(ctx.headers.get('cookie'));
  for (const [name, value] of cookies) {
    const location = ['cookie', name];
    inputs.cookies_names.push({ location, text: name });
    inputs.cookies.push({ location, text: value });
  }
  // Upstream cookie parsers read values their own way (express's percent-decodes and unquotes,
  // Python's undoes backslash escapes: cookies.ts): inspect each reading that differs too.
  for (const view of cookieReadings(cookies)) {
    view.forEach(([name, value], i) => {
      if (value !== cookies[i]?.[1]) inputs.cookies.push({ location: ['cookie', name], text: value });
    });
  }
  // A cookie without `=` is a name with no value to ModSecurity (REQUEST_COOKIES_NAMES); the parser
  // above leaves it out, so it is read here (`<STYLE>...</STYLE>` as a whole Cookie header).
  for (const name of bareCookies(ctx.headers.get('cookie'))) {
    inputs.cookies_names.push({ location: ['cookie', name], text: name });
    const decoded = percentDecoded(name);
    if (decoded !== undefined) inputs.cookies_names.push({ location: ['cookie', name], text: decoded });
  }
  return inputs;
}

/** The parts of a Cookie header without `=`. */
function bareCookies(header: string | undefined): string[] {
  if (header === undefined) return [];
  return header
    .split(';')
    .map((p) => p.trim())
    .filter((p) => p !== '' && !p.includes('='));
}

/** Adds the body's leaves, from the one reading of the body: every value and key, or its raw text. */
function gatherBody(body: RequestBody, inputs: Inputs): void {
  switch (body.kind) {
    case 'none':
      return;
    case 'json':
      collectJson(body.value, ['body'], inputs);
      return;
    case 'form':
    case 'multipart':
      for (const field of body.fields) {
        inputs.args_names.push({ location: ['body', field.name], text: field.name });
        if (field.filename === undefined)
          inputs.args.push({ location: ['body', field.name], text: field.value });
        else inputs.files.push({ location: ['body', field.name, 'filename'], text: field.filename });
      }
      if (body.kind === 'form') inputs.body.push({ location: ['body'], text: body.bytes.toString('utf8') });
      return;
    case 'xml':
      // Text and attribute values (the CRS's XML:/* and XML://@*). Element and attribute names are the
      // document's structure, which the CRS does not inspect either: its negative tests put
      // `java.lang.Runtime` in an element name and expect the 944 rules not to fire.
      for (const leaf of body.leaves) {
        if (leaf.path.at(-1) === '#name') continue;
        inputs.args.push({ location: ['body', ...leaf.path], text: leaf.text });
      }
      return;
    default:
      // Text, or a body not parseable as its type says, or of a type the gateway does not parse:
      // the upstream may still read it somehow, so the text is inspected whole, as one argument
      // and as REQUEST_BODY.
      inputs.args.push({ location: ['body'], text: body.text });
      inputs.body.push({ location: ['body'], text: body.text });
  }
}

/** Structured types the upstream parses: a body of one the gateway could not read is not inspected as it will be. */
const PARSED_KINDS: ReadonlySet<string> = new Set(['json', 'form', 'multipart', 'xml']);

/**
 * The single-byte charsets the CRS allows in a Content-Type (920480), which the gateway does not
 * decode: a form in one of them (`test=caf%E9`) is ordinary, and its raw text, ASCII on the wire,
 * is inspected. Any other charset it does not read (UTF-16, EBCDIC's ibm037, a made-up name) is
 * one the CRS refuses too.
 */
const LATIN_CHARSETS = /^(?:iso-8859-1|iso-8859-15|windows-1252|latin1)$/i;

/**
 * Whether the body declares a type the upstream parses (JSON, a form, multipart, XML) but could
 * not be read as one here (malformed, a multipart part readers disagree on, past the JSON limits,
 * a charset neither read here nor LATIN_CHARSETS). Its raw text is still inspected in monitor
 * mode; block mode refuses it.
 *
 * Not a form whose only fault is its percent-encoding (`24%` for `24%25`, or escapes that are not
 * UTF-8): form readers keep a stray `%` as it is, and what they read is the raw text
 * percent-decoded, which is what the rules' own URL-decoding makes of it.
 */
function unreadable(
  body: RequestBody,
  charset: string | undefined,
): body is Extract<RequestBody, { kind: 'raw' }> & { problem: BodyProblem } {
  if (body.kind !== 'raw' || body.problem === undefined || !PARSED_KINDS.has(body.declared)) return false;
  if (body.declared === 'form' && body.problem.rule === 'encoding') return false;
  return !(body.problem.rule === 'charset' && charset !== undefined && LATIN_CHARSETS.test(charset));
}

function problems(detections: readonly Detection[]): ProblemItem[] {
  const seen = new Set<string>();
  const out: ProblemItem[] = [];
  for (const d of detections) {
    const key = `${d.location} ${d.category}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ location: d.location, rule: d.category });
  }
  return out;
}

export const inspectStage: StageFactory = {
  name: 'inspect',
  create(route, deps) {
    const settings = route.inspection;
    if (settings.mode === 'off' || settings.categories.length === 0) return undefined;
    const logger: Logger = deps.logger;
    const block = settings.mode === 'block';
    // The API key is a credential, checked by authentication: like Authorization, never inspected.
    const keyHeader = deps.config.auth.apiKeys?.header;
    const skip = keyHeader === undefined ? SKIPPED_HEADERS : new Set([...SKIPPED_HEADERS, keyHeader]);
    // Exclusions naming rule ids that do not exist are typos that would silently exclude nothing.
    for (const e of settings.exclusions) {
      for (const id of e.rules ?? []) {
        if (ruleInfo(id) === undefined)
          throw new Error(`route ${route.name}: inspection.exclude names rule ${id}, which no rule set has`);
      }
    }
    warmUp([settings.paranoiaLevel]);
    const decide = (ctx: RequestContext, inputs: Inputs | undefined): void => {
      let result: Verdict;
      try {
        result =
          inputs === undefined
            ? { detections: [], score: 0, reject: false, timedOut: true }
            : detect(inputs, settings);
      } catch (err) {
        if (!(err instanceof TooDeep)) throw err;
        result = { detections: [], score: 0, reject: false, timedOut: true };
      }
      const { detections, timedOut, reject, score } = result;
      if (detections.length === 0 && !timedOut) return;
      const summary = detections.map((d) => `${d.location} ${d.category} ${d.rule}`).join('; ');
      const log = {
        requestId: ctx.id,
        route: route.name,
        mode: settings.mode,
        detections: summary,
        score,
        ...(timedOut ? { incomplete: true } : {}),
      };
      if (!reject && !timedOut) {
        // Below the anomaly threshold: noted, not acted on.
        logger.info(log, 'inspection score below the threshold');
        return;
      }
      if (!block) {
        logger.warn(
          log,
          timedOut && !reject ? 'inspection incomplete (monitor)' : 'injection detected (monitor)',
        );
        for (const c of new Set(detections.map((d) => d.category))) ctx.shadowDenials.push(`inspect:${c}`);
        if (detections.length === 0) ctx.shadowDenials.push('inspect:incomplete');
        return;
      }
      logger.warn(log, timedOut && !reject ? 'inspection incomplete: rejected' : 'injection detected');
      const items = reject ? problems(detections) : [];
      if (items.length === 0) items.push({ location: '', rule: 'incomplete' });
      throw new InputError(
        INPUT_ERRORS.inputRejected,
        items,
        `inspection: ${reject ? `score ${score}: ${summary}` : 'CPU-time budget exhausted'}`,
      );
    };
    const jsonLimits = route.validation.jsonLimits;
    // A route without a body limit streams bodies (uploads) uninspected: say so in its docs.
    const readsBody = Number.isFinite(route.bodyLimit);
    const decideWithBody = (ctx: RequestContext, inputs: Inputs, body: RequestBody): void => {
      if (unreadable(body, ctx.contentType?.parameters.charset)) {
        // The upstream will read this body its own way, which the raw text inspected here does not
        // show (a file name's path, JSON escapes, form fields): as ModSecurity's REQBODY_ERROR rule.
        const log = { requestId: ctx.id, route: route.name, problem: body.problem };
        if (block) {
          logger.warn(log, 'body not readable as its Content-Type says: rejected');
          throw new InputError(
            INPUT_ERRORS.inputInvalid,
            [body.problem],
            `inspection: the body is not readable as ${body.declared}`,
          );
        }
        logger.warn(log, 'body not readable as its Content-Type says (monitor)');
        ctx.shadowDenials.push('inspect:unreadable_body');
      }
      try {
        gatherBody(body, inputs);
      } catch (err) {
        if (!(err instanceof TooDeep)) throw err;
        decide(ctx, undefined);
        return;
      }
      decide(ctx, inputs);
    };
    return {
      name: 'inspect',
      handle(ctx) {
        const inputs = gatherInputs(ctx, skip);
        if (ctx.requestBody !== undefined) {
          decideWithBody(ctx, inputs, ctx.requestBody);
          return undefined;
        }
        if (!readsBody || !hasBody(ctx.req)) {
          decide(ctx, inputs);
          return undefined;
        }
        return readRequestBody(ctx, jsonLimits).then((body) => decideWithBody(ctx, inputs, body));
      },
    };
  },
};
