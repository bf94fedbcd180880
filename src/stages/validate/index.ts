/**
 * Validate: the request against the operation that describes it —
 * path, query, header and cookie parameters, the media type, and the body
 * (JSON, form or multipart) — with validators compiled at start-up. By
 * default everything the description does not declare is refused: unknown
 * query parameters, undeclared body properties (unless the schema opens
 * them), readOnly properties (mass assignment), properties whose
 * `x-portcullis-write` names none of the caller's roles or scopes (field
 * rules by role), undeclared media types.
 *
 * A failure is a 400 problem listing each failing location and the rule it
 * broke, never the value (415 for a media type). In shadow mode the request
 * goes on and the failure is logged and recorded in `shadowDenials`.
 *
 * The upstream receives the bytes that were validated (`ctx.body`); only a
 * configured transform that changes a value replaces them with the
 * re-serialised body.
 */

import type { RequestBody } from '../../contracts/request.js';
import type { RequestContext } from '../../contracts/stage.js';
import type { Logger } from '../../log.js';
import {
  describeProblems,
  INPUT_ERRORS,
  InputError,
  type ProblemItem,
  pointerSegment,
} from '../../openapi/errors.js';
import type { ValidationSettings } from '../../openapi/settings.js';
import type { CompiledOperation, RequestMedia } from '../../openapi/types.js';
import type { StageFactory } from '../../pipeline/types.js';
import { hasBody, readRequestBody } from '../../request/body.js';
import { cookieReadings } from '../../request/cookies.js';
import { isPrototypeName, parseCookies, readForm, readPairs, readSingles } from './params.js';
import { applyTransforms } from './transforms.js';

export const validateStage: StageFactory = {
  name: 'validate',
  create(route, deps) {
    const api = route;
    const settings = api.validation;
    if (settings.mode === 'off' || Object.keys(api.operations).length === 0) return undefined;
    const operations = api.operations;
    // The API key may ride in the query string on routes that allow it; it is never an unknown parameter.
    const keyParam = route.apiKeyInQuery ? deps.config.auth.apiKeys?.queryParam : undefined;
    const logger = deps.logger;
    return {
      name: 'validate',
      handle(ctx) {
        const op = operations[ctx.method];
        if (op === undefined) return undefined;
        const params = checkParameters(ctx, op, settings, keyParam);
        if (params.length > 0) fail(ctx, settings, logger, INPUT_ERRORS.inputInvalid, params);
        const declared = hasBody(ctx.req);
        if (op.body === undefined) {
          if (declared) {
            fail(ctx, settings, logger, INPUT_ERRORS.unsupportedMediaType, [
              { location: '/body', rule: 'not_allowed' },
            ]);
          }
          return undefined;
        }
        if (!declared) {
          if (op.body.required)
            fail(ctx, settings, logger, INPUT_ERRORS.inputInvalid, [{ location: '/body', rule: 'required' }]);
          return undefined;
        }
        const contentType = ctx.contentType;
        const media = matchMedia(op.body.media, contentType?.essence);
        if (media === undefined || !charsetAccepted(media, contentType?.parameters.charset)) {
          fail(ctx, settings, logger, INPUT_ERRORS.unsupportedMediaType, [
            { location: '/body', rule: 'content_type' },
          ]);
          return undefined;
        }
        // Bodies of other media types (uploads) are not read: they stream to the upstream, bounded by the route's limit.
        if (media.kind === 'other') return undefined;
        return readRequestBody(ctx, settings.jsonLimits).then((body) =>
          checkBody(ctx, body, media, settings, logger),
        );
      },
    };
  },
};

/** Throws in enforce mode; in shadow mode records and logs, and returns false. */
function fail(
  ctx: RequestContext,
  settings: ValidationSettings,
  logger: Logger,
  spec: (typeof INPUT_ERRORS)[keyof typeof INPUT_ERRORS],
  problems: readonly ProblemItem[],
): false {
  const summary = describeProblems(problems);
  if (settings.mode === 'enforce') throw new InputError(spec, problems, `validation: ${summary}`);
  ctx.shadowDenials.push(`validate:${spec.code}`);
  logger.info(
    { requestId: ctx.id, route: ctx.route.name, code: spec.code, problems: summary },
    'validation failed (shadow)',
  );
  return false;
}

function checkParameters(
  ctx: RequestContext,
  op: CompiledOperation,
  settings: ValidationSettings,
  keyParam: string | undefined,
): ProblemItem[] {
  const problems: ProblemItem[] = [];
  const { path, query, header, cookie } = op.parameters;
  if (path.check) {
    const read = readSingles(path, (name) => ctx.params[name]);
    problems.push(...read.problems, ...path.check(read.values, ctx.principal));
  }
  const pairs = ctx.query.pairs as [string, string][];
  {
    // Refused wherever they appear, declared deepObject parameters included: an upstream's
    // query parser may turn `filter[__proto__][x]=1` into a prototype change.
    for (const [name] of pairs) {
      if (isPrototypeName(name))
        problems.push({ location: `/query/${pointerSegment(name)}`, rule: 'forbidden_key' });
    }
    const read = readPairs(query, pairs);
    problems.push(...read.problems);
    if (settings.unknownQuery === 'reject') {
      for (const name of read.unknown) {
        if (name !== keyParam && !isPrototypeName(name)) {
          problems.push({ location: `/query/${pointerSegment(name)}`, rule: 'unknown' });
        }
      }
    }
    if (query.check) problems.push(...query.check(read.values, ctx.principal));
  }
  if (header.check) {
    const read = readSingles(header, (name) => {
      const v = ctx.headers.all(name);
      return v.length === 0 ? undefined : v.join(', ');
    });
    problems.push(...read.problems, ...header.check(read.values, ctx.principal));
  }
  if (cookie.check) {
    const pairs = parseCookies(ctx.headers.get('cookie'));
    const read = readPairs(cookie, pairs);
    const found = [...read.problems, ...cookie.check(read.values, ctx.principal)];
    // The upstream acts on its own reading of each value (percent-decoded, unquoted,
    // unescaped: see cookies.ts); each reading must pass too, or `%61dmin` passes as sent
    // and reaches express as `admin`.
    for (const view of cookieReadings(pairs)) {
      const other = readPairs(cookie, view);
      for (const p of [...other.problems, ...cookie.check(other.values, ctx.principal)]) {
        if (!found.some((f) => f.location === p.location && f.rule === p.rule)) found.push(p);
      }
    }
    problems.push(...found);
  }
  return problems;
}

/** The declared media range that accepts `contentType`: exact, then `type/*`, then `*\/*`. */
export function matchMedia(
  declared: readonly RequestMedia[],
  type: string | undefined,
): RequestMedia | undefined {
  if (type === undefined || type.includes('*')) return undefined;
  return (
    declared.find((m) => m.type === type) ??
    declared.find((m) => m.type === `${type.slice(0, type.indexOf('/'))}/*`) ??
    declared.find((m) => m.type === '*/*')
  );
}

/** Text bodies are read as UTF-8: another declared charset would be read wrongly, so it is refused. */
function charsetAccepted(media: RequestMedia, charset: string | undefined): boolean {
  if (media.kind === 'other' || media.kind === 'multipart') return true;
  return charset === undefined || /^(utf-8|utf8|us-ascii)$/i.test(charset);
}

function checkBody(
  ctx: RequestContext,
  body: RequestBody,
  media: RequestMedia,
  settings: ValidationSettings,
  logger: Logger,
): void {
  const parsed = typedBody(body, media);
  if (!parsed.ok) {
    fail(ctx, settings, logger, INPUT_ERRORS.inputInvalid, parsed.problems);
    return;
  }
  let value = parsed.value;
  // The principal decides `x-portcullis-write` rules (field rules by role): none, none may.
  const problems = media.check ? media.check(value, ctx.principal) : [];
  if (problems.length > 0) {
    fail(ctx, settings, logger, INPUT_ERRORS.inputInvalid, problems);
    ctx.parsedBody = value;
    return;
  }
  if (
    settings.transforms.length > 0 &&
    (media.kind === 'json' || media.kind === 'form' || media.kind === 'text')
  ) {
    const result = applyTransforms(value, settings.transforms);
    if (result.changed) {
      value = result.value;
      // What the upstream receives must still be valid: a trimmed value may now be too short.
      const again = media.check ? media.check(value, ctx.principal) : [];
      if (again.length > 0 && !fail(ctx, settings, logger, INPUT_ERRORS.inputInvalid, again)) return;
      ctx.body = Buffer.from(serialise(value, media));
    }
  }
  ctx.parsedBody = value;
}

type Parsed = { ok: true; value: unknown } | { ok: false; problems: ProblemItem[] };

/** The body as the operation's media type reads it, from the one reading of the body. */
function typedBody(body: RequestBody, media: RequestMedia): Parsed {
  const refused = (rule: string): Parsed => ({ ok: false, problems: [{ location: '/body', rule }] });
  switch (media.kind) {
    case 'json':
      if (body.kind === 'json') return { ok: true, value: body.value };
      return body.kind === 'raw' && body.problem !== undefined && body.declared === 'json'
        ? { ok: false, problems: [body.problem] }
        : refused('json');
    case 'text':
      return body.kind === 'text' ? { ok: true, value: body.text } : refused('encoding');
    case 'form':
    case 'multipart':
      // Files are checked for presence only (their size is bounded by the body limit): a file part reads as "".
      return body.kind === 'form' || body.kind === 'multipart'
        ? formValue(
            body.fields.map((f) => [f.name, f.value]),
            media,
          )
        : refused(body.kind === 'raw' && body.problem !== undefined ? body.problem.rule : 'encoding');
    default:
      return { ok: true, value: undefined };
  }
}

function formValue(pairs: [string, string][], media: RequestMedia): Parsed {
  const forbidden = pairs.find(([name]) => isPrototypeName(name));
  if (forbidden)
    return {
      ok: false,
      problems: [{ location: `/body/${pointerSegment(forbidden[0])}`, rule: 'forbidden_key' }],
    };
  const read = readForm(pairs, media.fields);
  return read.problems.length > 0 ? { ok: false, problems: read.problems } : { ok: true, value: read.value };
}

function serialise(value: unknown, media: RequestMedia): string {
  if (media.kind === 'json') return JSON.stringify(value);
  if (media.kind === 'text') return value as string;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    for (const item of Array.isArray(v) ? v : [v]) params.append(k, String(item));
  }
  return params.toString();
}
