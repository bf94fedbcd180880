/**
 * Inspect: injection detection on every input leaf — path parameters,
 * query names and values, headers, cookies, and the body's values and keys
 * (JSON, form, multipart fields, text) — for SQL injection, XSS, OS command
 * injection, path traversal, NoSQL operators and template injection. What
 * an upstream would decode is decoded first (the query once here; URL
 * encoding, HTML entities and JavaScript/Unicode escapes by the engine's
 * transformers).
 *
 * Modes per route: `block` answers 403 `input.rejected` (with the
 * locations and categories, never the values); `monitor` lets the request
 * through, logs and records it in `shadowDenials`. Locations can be excluded
 * per route (a rich-text field), for all categories or some.
 *
 * Time budget: the engine stops at the route's timeout. A request that
 * could not be inspected completely is rejected in block mode (fail closed:
 * otherwise an attacker who can make inspection slow, with a large body,
 * would get past it) and let through with a warning in monitor mode.
 */

import type { RequestBody } from '../../contracts/request.js';
import type { RequestContext } from '../../contracts/stage.js';
import type { Logger } from '../../log.js';
import { INPUT_ERRORS, InputError, type ProblemItem } from '../../openapi/errors.js';
import type { Category } from '../../openapi/schema.js';
import type { Exclusion, InspectionSettings } from '../../openapi/settings.js';
import type { StageFactory } from '../../pipeline/types.js';
import { hasBody, readRequestBody } from '../../request/body.js';
import { parseCookies } from '../../request/cookies.js';
import { type Detection, type Inputs, inspect } from './engine.js';

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

/** Adds the keys and string leaves of a JSON value to `inputs`. */
export function collectJson(value: unknown, location: string[], inputs: Inputs, depth = 0): void {
  if (typeof value === 'string') {
    inputs.body.push({ location, text: value });
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
    inputs.keys.push({ location: at, text: key });
    collectJson((value as Record<string, unknown>)[key], at, inputs, depth + 1);
  }
}

function emptyInputs(): Inputs {
  return { path: [], query: [], headers: [], cookies: [], body: [], keys: [] };
}

/** Whether `exclusion` covers `location` (a prefix, `*` matching any one segment). */
function covers(exclusion: Exclusion, location: readonly string[]): boolean {
  if (exclusion.segments.length > location.length) return false;
  return exclusion.segments.every((s, i) => s === '*' || s === location[i]);
}

/** Splits the inputs by the categories excluded at each location: one group per distinct set. */
function groupByExclusion(
  inputs: Inputs,
  exclusions: readonly Exclusion[],
): { inputs: Inputs; skip: ReadonlySet<Category> }[] {
  if (exclusions.length === 0) return [{ inputs, skip: new Set() }];
  const groups = new Map<string, { inputs: Inputs; skip: Set<Category> }>();
  for (const part of Object.keys(inputs) as (keyof Inputs)[]) {
    for (const leaf of inputs[part]) {
      const skip = new Set<Category>();
      let all = false;
      for (const e of exclusions) {
        if (!covers(e, leaf.location)) continue;
        if (e.categories === undefined) all = true;
        else for (const c of e.categories) skip.add(c);
      }
      if (all) continue;
      const key = [...skip].sort().join(',');
      let group = groups.get(key);
      if (!group) {
        group = { inputs: emptyInputs(), skip };
        groups.set(key, group);
      }
      group.inputs[part].push(leaf);
    }
  }
  return [...groups.values()];
}

/** Runs the engine over `inputs` under a route's settings. */
export function detect(
  inputs: Inputs,
  settings: InspectionSettings,
): { detections: Detection[]; timedOut: boolean } {
  const enabled = new Set(settings.categories);
  const detections: Detection[] = [];
  let timedOut = false;
  for (const group of groupByExclusion(inputs, settings.exclusions)) {
    const result = inspect(group.inputs, settings.timeoutMicros);
    if (result.timedOut) timedOut = true;
    for (const d of result.detections)
      if (enabled.has(d.category) && !group.skip.has(d.category)) detections.push(d);
  }
  return { detections, timedOut };
}

/** The request's inputs apart from its body; `skip` lists header names not inspected. */
function gatherInputs(ctx: RequestContext, skip: ReadonlySet<string>): Inputs {
  const inputs = emptyInputs();
  for (const [name, value] of Object.entries(ctx.params)) {
    if (value !== undefined) inputs.path.push({ location: ['path', name], text: value });
  }
  for (const [name, value] of ctx.query.pairs) {
    const location = ['query', name];
    inputs.keys.push({ location, text: name });
    inputs.query.push({ location, text: value });
  }
  for (const [name, value] of ctx.headers.pairs) {
    if (skip.has(name)) continue;
    inputs.headers.push({ location: ['header', name], text: value });
  }
  for (const [name, value] of parseCookies(ctx.headers.get('cookie'))) {
    const location = ['cookie', name];
    inputs.keys.push({ location, text: name });
    inputs.cookies.push({ location, text: value });
    // Common cookie parsers (the `cookie` package behind express) percent-decode values: inspect that reading too.
    const decoded = percentDecoded(value);
    if (decoded !== undefined) inputs.cookies.push({ location, text: decoded });
  }
  return inputs;
}

function percentDecoded(value: string): string | undefined {
  if (!value.includes('%')) return undefined;
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
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
        inputs.keys.push({ location: ['body', field.name], text: field.name });
        if (field.filename === undefined)
          inputs.body.push({ location: ['body', field.name], text: field.value });
        else inputs.body.push({ location: ['body', field.name, 'filename'], text: field.filename });
      }
      return;
    case 'xml':
      for (const leaf of body.leaves) inputs.body.push({ location: ['body', ...leaf.path], text: leaf.text });
      return;
    case 'text':
      inputs.body.push({ location: ['body'], text: body.text });
      return;
    default:
      // Not parseable as its type says, or of a type the gateway does not parse: the upstream may
      // still read it somehow, so the text is inspected whole.
      inputs.body.push({ location: ['body'], text: body.text });
  }
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
    const decide = (ctx: RequestContext, inputs: Inputs | undefined): void => {
      let result: { detections: Detection[]; timedOut: boolean };
      try {
        result = inputs === undefined ? { detections: [], timedOut: true } : detect(inputs, settings);
      } catch (err) {
        if (!(err instanceof TooDeep)) throw err;
        result = { detections: [], timedOut: true };
      }
      const { detections, timedOut } = result;
      if (detections.length === 0 && !timedOut) return;
      const summary = detections.map((d) => `${d.location} ${d.category} ${d.rule}`).join('; ');
      const log = {
        requestId: ctx.id,
        route: route.name,
        mode: settings.mode,
        detections: summary,
        ...(timedOut ? { incomplete: true } : {}),
      };
      if (!block) {
        logger.warn(
          log,
          timedOut && detections.length === 0
            ? 'inspection incomplete (monitor)'
            : 'injection detected (monitor)',
        );
        for (const c of new Set(detections.map((d) => d.category))) ctx.shadowDenials.push(`inspect:${c}`);
        return;
      }
      logger.warn(
        log,
        timedOut && detections.length === 0 ? 'inspection incomplete: rejected' : 'injection detected',
      );
      const items = problems(detections);
      if (items.length === 0) items.push({ location: '', rule: 'incomplete' });
      throw new InputError(
        INPUT_ERRORS.inputRejected,
        items,
        `inspection: ${summary || 'time budget exhausted'}`,
      );
    };
    const jsonLimits = route.validation.jsonLimits;
    // A route without a body limit streams bodies (uploads) uninspected: say so in its docs.
    const readsBody = Number.isFinite(route.bodyLimit);
    const decideWithBody = (ctx: RequestContext, inputs: Inputs, body: RequestBody): void => {
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
