/**
 * Filter: the response side (pipeline step 10). What the API description
 * does not declare does not reach the client:
 *
 * - a JSON response is projected onto its declared schema — undeclared and
 *   writeOnly properties are removed (excessive data exposure, OWASP
 *   API3:2023), and so are those whose `x-portcullis-read` names none of
 *   the caller's roles or scopes (field rules by role); in block mode a
 *   response that does not match becomes 502 instead (a property only
 *   hidden from this caller is no mismatch);
 * - a status or media type the operation does not declare is replaced: a
 *   4xx by a generic problem with the same status, anything else by 502;
 * - configured sensitive fields and patterns are redacted wherever they
 *   appear: in JSON, XML and text (`./representations.ts`); a response in a
 *   media type the filter cannot read is refused with 502, unless the route
 *   lists it in `pass_through_media_types`;
 * - the request's Accept is narrowed to the declared response media types
 *   (`./accept.ts`), 406 when it admits none, so a negotiating upstream
 *   answers in a representation this stage reads;
 * - an upstream 5xx body is replaced by a generic problem (the upstream's
 *   body goes to the log with the request id, never to the client);
 * - headers that reveal what runs behind are removed.
 *
 * A response that cannot be read whole (too large, streaming, compressed)
 * fails closed with 502, unless the route allows large responses through
 * and declares (or passes through) its media type.
 *
 * Where an `authorize` rule is decided on the response (`owner: { response:
 * /user_id }`, `./ownership.ts`), this stage also checks that the answer
 * belongs to the caller first, whatever `responses.mode` says; such answers
 * are always read whole (never passed through large).
 */

import { createRedactor, type Redact } from '../../audit/redact.js';
import { compilePolicy } from '../../authz/policy.js';
import type { RouteSettings } from '../../config/types.js';
import type { MediaType } from '../../contracts/request.js';
import type { RequestContext, ResponseFilter, Stage, UpstreamResponse } from '../../contracts/stage.js';
import { type ErrorSpec, GatewayError, problemBody } from '../../errors.js';
import type { Logger } from '../../log.js';
import { essence } from '../../openapi/compile.js';
import { describeProblems, INPUT_ERRORS } from '../../openapi/errors.js';
import { type Projected, ProjectionError } from '../../openapi/project.js';
import { type ApiRouteSettings, REDACTED, type ResponseSettings } from '../../openapi/settings.js';
import type { CompiledOperation, ResponseMedia, ResponseSpec } from '../../openapi/types.js';
import type { BuildDeps } from '../../pipeline/types.js';
import { decodeUtf8 } from '../../request/json.js';
import { narrowAccept } from './accept.js';
import { createOwnership, type Ownership } from './ownership.js';
import {
  bodyText,
  createXmlRedactor,
  representationKind,
  responseMedia,
  Unfilterable,
} from './representations.js';

export { LEAKY_RESPONSE_HEADERS } from '../../proxy/upstream.js';

import { LEAKY_RESPONSE_HEADERS } from '../../proxy/upstream.js';

/** The answer to a request whose Accept admits none of the media types the route answers in. */
export const NOT_ACCEPTABLE = {
  code: 'request.not_acceptable',
  status: 406,
  title: 'The request accepts none of the media types this operation answers in.',
} as const satisfies ErrorSpec;

/** Media types that stream without end: never collected, passed through only where the route allows large responses and declares the type. */
const STREAMING = new Set([
  'text/event-stream',
  'application/x-ndjson',
  'application/json-seq',
  'application/stream+json',
]);

/** The most of an upstream error body written to the log. */
const LOGGED_BODY_CHARS = 1024;

function header(pairs: readonly string[], name: string): string | undefined {
  for (let i = 0; i < pairs.length; i += 2) if (pairs[i] === name) return pairs[i + 1];
  return undefined;
}

function without(pairs: readonly string[], names: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < pairs.length; i += 2) if (!names.has(pairs[i]!)) out.push(pairs[i]!, pairs[i + 1]!);
  return out;
}

/** The declared response for `status`: exact code, then its class (`2XX`), then `default`. */
export function matchStatus(responses: readonly ResponseSpec[], status: number): ResponseSpec | undefined {
  const code = String(status);
  return (
    responses.find((r) => r.status === code) ??
    responses.find((r) => r.status === `${code[0]}XX`) ??
    responses.find((r) => r.status === 'DEFAULT')
  );
}

function matchResponseMedia(
  media: readonly ResponseMedia[],
  contentType: string | undefined,
): ResponseMedia | undefined {
  const type = contentType === undefined ? undefined : essence(contentType);
  if (type === undefined) return undefined;
  return (
    media.find((m) => m.type === type) ??
    media.find((m) => m.type === `${type.slice(0, type.indexOf('/'))}/*`) ??
    media.find((m) => m.type === '*/*')
  );
}

/** Replaces values of `keys` and `redactText` matches everywhere in `value`, in place; true when something changed. */
export function redactJson(
  value: unknown,
  keys: ReadonlySet<string>,
  redactText: ((t: string) => string) | undefined,
): boolean {
  let changed = false;
  const visit = (node: unknown, depth: number): void => {
    if (node === null || typeof node !== 'object' || depth > 512) return;
    const container = node as Record<string, unknown>;
    for (const key of Object.keys(container)) {
      const v = container[key];
      if (!Array.isArray(container) && keys.has(key.toLowerCase())) {
        if (v !== REDACTED) {
          container[key] = REDACTED;
          changed = true;
        }
      } else if (typeof v === 'string') {
        if (redactText) {
          const out = redactText(v);
          if (out !== v) {
            container[key] = out;
            changed = true;
          }
        }
      } else visit(v, depth + 1);
    }
  };
  visit(value, 0);
  return changed;
}

/**
 * A JSON response body, parsed. The decoded text (as large as the body,
 * twice that when it is not ASCII) lives only in this call: held in the
 * filter's own frame, it would stay reachable through projection and
 * re-serialisation, the peak of a large response.
 * Throws Unfilterable when the body is not UTF-8 (or its charset is
 * another) or not JSON.
 */
function readJson(body: Buffer, media?: MediaType): unknown {
  const text = media === undefined ? decodeUtf8(body) : bodyText(body, media);
  if (text === undefined) throw new Unfilterable('body is not UTF-8');
  try {
    return JSON.parse(text);
  } catch {
    throw new Unfilterable('JSON response is not valid JSON');
  }
}

/** A filtered JSON value as the response body: the serialised text is dropped once copied. */
function serialise(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

export const filterStage = {
  name: 'filter' as const,
  create(route: RouteSettings, deps: BuildDeps): Stage | undefined {
    const api = route;
    const settings = api.responses;
    const policy = route.authorize === undefined ? undefined : compilePolicy(route.authorize);
    const ownership =
      policy?.response === undefined ? undefined : createOwnership(route, policy, deps.logger);
    if (settings.mode === 'off' && ownership === undefined) return undefined;
    const response = createResponseFilter(
      route,
      api.operations,
      settings,
      deps.logger,
      deps.config.log.upstreamErrorBodies === true ? createRedactor(deps.config.log.redact) : undefined,
      ownership,
    );
    const negotiate = settings.mode === 'off' ? undefined : createNegotiation(api.operations, settings);
    return {
      name: 'filter',
      handle:
        ownership === undefined && negotiate === undefined
          ? () => {}
          : (ctx) => {
              negotiate?.(ctx);
              ownership?.prepare(ctx);
            },
      response,
    };
  },
};

/** Every media type an operation declares for its responses, lower case; undefined when it declares none. */
function declaredMediaTypes(responses: readonly ResponseSpec[] | undefined): string[] | undefined {
  if (responses === undefined) return undefined;
  const types = new Set<string>();
  for (const spec of responses) for (const m of spec.media) types.add(m.type.toLowerCase());
  return types.size === 0 ? undefined : [...types];
}

/**
 * Narrows the request's Accept to the media types the operation declares
 * (and those the route passes through), so a negotiating upstream answers in
 * one the filter reads; 406 when the request accepts none of them.
 */
function createNegotiation(
  operations: ApiRouteSettings['operations'],
  settings: ResponseSettings,
): ((ctx: RequestContext) => void) | undefined {
  const byMethod = new Map<string, string[]>();
  for (const [method, op] of Object.entries(operations)) {
    const declared = declaredMediaTypes(op.responses);
    if (declared !== undefined) byMethod.set(method, [...declared, ...settings.passThroughMediaTypes]);
  }
  if (byMethod.size === 0) return undefined;
  return (ctx) => {
    const declared = byMethod.get(ctx.method);
    if (declared === undefined) return;
    const lines = ctx.headers.all('accept');
    const narrowed = narrowAccept(lines.length === 0 ? undefined : lines.join(', '), declared);
    if (narrowed === undefined) {
      throw new GatewayError(NOT_ACCEPTABLE, {
        internal: `Accept admits none of ${declared.join(', ')}`,
      });
    }
    // Set by a stage, it replaces the client's Accept lines (see the proxy stage).
    ctx.upstreamHeaders.accept = narrowed;
  };
}

function createResponseFilter(
  route: RouteSettings,
  operations: ApiRouteSettings['operations'],
  settings: ResponseSettings,
  logger: Logger,
  /** Set when `log.upstream_error_bodies` is on: the body is logged truncated, through this. */
  redactBody: Redact | undefined,
  /** Set when an authorize rule of the route is decided on the response. */
  ownership: Ownership | undefined,
): ResponseFilter {
  const filtering = settings.mode !== 'off';
  const strip = new Set([...LEAKY_RESPONSE_HEADERS, ...settings.stripHeaders]);
  const redactKeys = new Set(settings.redactKeys);
  const redacts = redactKeys.size > 0 || settings.redactText !== undefined;
  const block = settings.mode === 'block';
  const redactXml = createXmlRedactor(redactKeys, settings.redactText);
  const passThrough = settings.passThroughMediaTypes;
  /** True when the route lists the response's media type to be sent unfiltered. */
  const passes = (type: string | undefined): boolean =>
    type !== undefined &&
    passThrough.some((t) => t === type || (t.endsWith('/*') && type.startsWith(t.slice(0, -1))));

  const invalid = (ctx: RequestContext, reason: string): GatewayError => {
    logger.warn({ requestId: ctx.id, route: route.name, reason }, 'upstream response refused');
    return new GatewayError(INPUT_ERRORS.upstreamInvalidResponse, { internal: reason });
  };

  /** A generic problem in place of the upstream's answer, with the upstream's status. */
  const replace = (
    ctx: RequestContext,
    r: UpstreamResponse,
    spec: { code: string; title: string },
    level: 'warn' | 'info',
    reason: string,
  ): UpstreamResponse => {
    const compressed = (header(r.headers, 'content-encoding') ?? 'identity') !== 'identity';
    logger[level](
      {
        requestId: ctx.id,
        route: route.name,
        status: r.status,
        reason,
        // Off by default: upstreams echo bearer tokens and cookies into error pages.
        upstreamBody:
          redactBody === undefined
            ? undefined
            : compressed
              ? '[compressed]'
              : redactBody(
                  r.body
                    .toString('utf8', 0, Math.min(r.body.length, LOGGED_BODY_CHARS * 4))
                    .slice(0, LOGGED_BODY_CHARS),
                ),
      },
      'upstream answer replaced',
    );
    const headers = ['content-type', 'application/problem+json'];
    const retry = header(r.headers, 'retry-after');
    if (retry !== undefined) headers.push('retry-after', retry);
    return {
      status: r.status,
      headers,
      body: Buffer.from(problemBody({ ...spec, status: r.status }, ctx.id)),
    };
  };

  /** What the description does not declare: a 4xx keeps its status with a generic body; anything else is 502. */
  const undeclared = (ctx: RequestContext, r: UpstreamResponse, what: string): UpstreamResponse => {
    if (r.status >= 400 && r.status < 500) return replace(ctx, r, INPUT_ERRORS.upstreamRefused, 'info', what);
    throw invalid(ctx, what);
  };

  /** True when the operation declares `contentType` for `status`, or nothing describes its responses. */
  const declared = (op: CompiledOperation | undefined, status: number, contentType: string | undefined) => {
    if (op?.responses === undefined) return true;
    const spec = matchStatus(op.responses, status);
    return spec !== undefined && matchResponseMedia(spec.media, contentType) !== undefined;
  };

  /**
   * Redacts a body the description gives no schema for, by what it is: JSON,
   * XML or text. A body of any other type, or one that does not read as its
   * type says, is refused (502), unless the route passes its type through.
   */
  const redactOnly = (ctx: RequestContext, r: UpstreamResponse): UpstreamResponse => {
    if (r.body.length === 0) return r;
    const media = responseMedia(header(r.headers, 'content-type'));
    if (passes(media?.essence)) return r;
    const kind = representationKind(media);
    if (media === undefined || kind === undefined)
      throw invalid(ctx, `media type ${media?.essence ?? '(none)'} cannot be filtered`);
    if (!redacts) return r;
    try {
      if (kind === 'json') {
        const value = readJson(r.body, media);
        return redactJson(value, redactKeys, settings.redactText) ? { ...r, body: serialise(value) } : r;
      }
      const text = bodyText(r.body, media);
      const out = kind === 'xml' ? redactXml(text) : settings.redactText ? settings.redactText(text) : text;
      return out === text ? r : { ...r, body: Buffer.from(out) };
    } catch (err) {
      if (err instanceof Unfilterable) throw invalid(ctx, err.message);
      throw err;
    }
  };

  return {
    limit: settings.maxBytes,
    wants(ctx, status, headers) {
      if (ownership?.wants(ctx, status)) return true;
      if (!filtering || ctx.method === 'HEAD' || status === 304 || status < 200) return false;
      if (status >= 500) return true;
      const op = operations[ctx.method];
      if (op?.responses === undefined && !redacts) return false;
      // Only a media type the route declares for this status (or passes through) goes unread:
      // the upstream's Content-Type alone must not turn filtering off.
      const contentType = header(headers, 'content-type');
      if (
        settings.passThroughLarge &&
        (declared(op, status, contentType) || passes(essence(contentType ?? '')))
      ) {
        const length = header(headers, 'content-length');
        if (length !== undefined && Number(length) > settings.maxBytes) return false;
        const type = essence(contentType ?? '');
        if (type !== undefined && STREAMING.has(type)) return false;
      }
      return true;
    },
    filter(ctx, upstream) {
      const r: UpstreamResponse = { ...upstream, headers: without(upstream.headers, strip) };
      if (filtering && r.status >= 500)
        return replace(ctx, r, INPUT_ERRORS.upstreamError, 'warn', 'upstream error');
      const encoding = header(r.headers, 'content-encoding');
      if (encoding !== undefined && encoding !== 'identity' && r.body.length > 0) {
        throw invalid(ctx, `compressed response (${encoding}) cannot be filtered`);
      }
      // Ownership first: a response that is not the caller's is refused before anything else reads it.
      const owned = ownership?.check(ctx, r);
      if (!filtering) return owned?.changed ? { ...r, body: serialise(owned.value) } : r;
      const op = operations[ctx.method];
      if (op?.responses === undefined)
        return redactOnly(ctx, owned?.changed ? { ...r, body: serialise(owned.value) } : r);
      const spec = matchStatus(op.responses, r.status);
      if (spec === undefined) return undeclared(ctx, r, `status ${r.status} is not declared`);
      if (spec.media.length === 0) {
        if (r.body.length === 0) return r;
        if (block) throw invalid(ctx, `status ${r.status} declares no body`);
        return { ...r, headers: without(r.headers, new Set(['content-type'])), body: Buffer.alloc(0) };
      }
      if (r.body.length === 0) {
        if (block) throw invalid(ctx, `status ${r.status} declares a body and none came`);
        return r;
      }
      const contentType = header(r.headers, 'content-type');
      if (passes(responseMedia(contentType)?.essence)) return r;
      const media = matchResponseMedia(spec.media, contentType);
      if (media === undefined) return undeclared(ctx, r, `media type of status ${r.status} is not declared`);
      if (media.kind !== 'json' || media.project === undefined)
        return redactOnly(ctx, owned?.changed ? { ...r, body: serialise(owned.value) } : r);
      let value: unknown;
      if (owned !== undefined) value = owned.value;
      else {
        try {
          value = readJson(r.body);
        } catch {
          throw invalid(ctx, 'JSON response is not valid JSON');
        }
      }
      let changed = owned?.changed === true;
      try {
        if (block) {
          const problems = media.check?.(value) ?? [];
          if (problems.length > 0)
            throw invalid(ctx, `response does not match: ${describeProblems(problems.slice(0, 10))}`);
        }
        // Properties the caller may not read (x-portcullis-read) go in every mode: they are declared,
        // so removing them is no sign of a wrong response.
        const projected: Projected = { removed: false, hidden: false };
        media.project(value, ctx.principal, projected);
        if (projected.removed && block) throw invalid(ctx, 'response carries undeclared properties');
        if (projected.removed || projected.hidden) changed = true;
      } catch (err) {
        if (err instanceof ProjectionError) throw invalid(ctx, err.message);
        throw err;
      }
      if (redacts && redactJson(value, redactKeys, settings.redactText)) changed = true;
      return changed ? { ...r, body: serialise(value) } : r;
    },
  };
}
