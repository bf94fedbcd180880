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
import { readBody } from '../../http/body.js';
import type { Logger } from '../../log.js';
import { essence, mediaKind } from '../../openapi/compile.js';
import { INPUT_ERRORS, InputError, type ProblemItem } from '../../openapi/errors.js';
import type { Category } from '../../openapi/schema.js';
import { apiSettings, type Exclusion, type InspectionSettings } from '../../openapi/settings.js';
import type { RequestContext } from '../../pipeline/context.js';
import type { StageFactory } from '../../pipeline/index.js';
import { decodeUtf8 } from '../../request/json.js';
import { parseCookies, parsePairs } from '../validate/params.js';
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

/** The request's inputs apart from an unread body; `skip` lists header names not inspected. */
function gatherInputs(ctx: RequestContext, skip: ReadonlySet<string>): Inputs {
  const inputs = emptyInputs();
  for (const [name, value] of Object.entries(ctx.params)) {
    if (value !== undefined) inputs.path.push({ location: ['path', name], text: value });
  }
  // An undecodable query string is the validate stage's to refuse; here its raw text is inspected.
  const pairs = parsePairs(ctx.query) ?? [['', ctx.query]];
  for (const [name, value] of pairs) {
    const location = ['query', name];
    inputs.keys.push({ location, text: name });
    inputs.query.push({ location, text: value });
  }
  const raw = ctx.req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (skip.has(name)) continue;
    inputs.headers.push({ location: ['header', name], text: raw[i + 1]! });
  }
  for (const [name, value] of parseCookies(ctx.req.headers.cookie)) {
    const location = ['cookie', name];
    inputs.keys.push({ location, text: name });
    inputs.cookies.push({ location, text: value });
  }
  return inputs;
}

const INSPECTED_KINDS = new Set(['json', 'form', 'multipart', 'text']);

/**
 * Whether the body must still be read to be inspected: it was not read by
 * an earlier stage, there is one, it is of an inspectable kind, and the
 * route bounds it. A declared upload of another type (or a route without a
 * body limit) streams on uninspected.
 */
function bodyToRead(ctx: RequestContext): boolean {
  if (ctx.body !== undefined || ctx.parsedBody !== undefined) return false;
  const h = ctx.req.headers;
  if (h['transfer-encoding'] === undefined && (h['content-length'] ?? '0') === '0') return false;
  if (ctx.route.bodyLimit === Number.POSITIVE_INFINITY) return false;
  const type = essence(h['content-type'] ?? '');
  return INSPECTED_KINDS.has(type === undefined ? 'text' : mediaKind(type));
}

/** Adds the body's leaves: as the validate stage parsed it, or parsed here by its media type. */
async function gatherBody(ctx: RequestContext, inputs: Inputs): Promise<void> {
  if (ctx.parsedBody !== undefined) {
    collectJson(ctx.parsedBody, ['body'], inputs);
    return;
  }
  const bytes = ctx.body;
  if (bytes === undefined || bytes.length === 0) return;
  const contentType = ctx.req.headers['content-type'] ?? '';
  const type = essence(contentType);
  const kind = type === undefined ? 'text' : mediaKind(type);
  if (!INSPECTED_KINDS.has(kind)) return;
  const text = decodeUtf8(bytes) ?? bytes.toString('latin1');
  if (kind === 'json') {
    try {
      collectJson(JSON.parse(text), ['body'], inputs);
      return;
    } catch (err) {
      if (err instanceof TooDeep) throw err;
    }
  } else if (kind === 'form') {
    const pairs = parsePairs(text);
    if (pairs !== undefined) {
      for (const [name, value] of pairs) {
        inputs.keys.push({ location: ['body', name], text: name });
        inputs.body.push({ location: ['body', name], text: value });
      }
      return;
    }
  } else if (kind === 'multipart') {
    try {
      const form = await new Response(bytes, { headers: { 'content-type': contentType } }).formData();
      for (const [name, value] of form.entries()) {
        inputs.keys.push({ location: ['body', name], text: name });
        if (typeof value === 'string') inputs.body.push({ location: ['body', name], text: value });
        else inputs.body.push({ location: ['body', name, 'filename'], text: value.name });
      }
      return;
    } catch {
      // Inspected as text below.
    }
  }
  // Not parseable as its type says: the upstream may still read it somehow, so the text is inspected whole.
  inputs.body.push({ location: ['body'], text });
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
    const settings = apiSettings(route).inspection;
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
    return {
      name: 'inspect',
      handle(ctx) {
        const inputs = gatherInputs(ctx, skip);
        const needsRead = bodyToRead(ctx);
        if (!needsRead && ctx.body === undefined && ctx.parsedBody === undefined) {
          decide(ctx, inputs);
          return undefined;
        }
        const read = needsRead ? readBody(ctx) : Promise.resolve(ctx.body);
        return read.then(() =>
          gatherBody(ctx, inputs).then(
            () => decide(ctx, inputs),
            (err: unknown) => {
              if (!(err instanceof TooDeep)) throw err;
              decide(ctx, undefined);
            },
          ),
        );
      },
    };
  },
};
