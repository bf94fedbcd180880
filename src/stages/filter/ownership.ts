/**
 * Ownership checked on the response (OWASP API1, BOLA, where the request
 * alone cannot decide): an `authorize` rule binds a field of the upstream's
 * JSON answer to the principal (`owner: { response: /user_id }`, `tenant:
 * { response: $.tenant }`). The request side works out what the answer must
 * satisfy (nothing when an alternative such as an admin role already
 * passed); the response side reads the answer whole, before any byte of it
 * reaches the client, and refuses one that does not belong to the caller
 * with 404 (or 403), audited as `authz.bola`. In an array answer the items
 * that do not belong are removed, or the whole answer refused.
 */
import {
  type CompiledPolicy,
  ownsResponse,
  planResponse,
  policyInput,
  type ResponsePlan,
  valueAt,
} from '../../authz/policy.js';
import type { RouteSettings } from '../../config/types.js';
import type { RequestContext, UpstreamResponse } from '../../contracts/stage.js';
import { ERRORS, GatewayError } from '../../errors.js';
import type { AuditedAs } from '../../events/request-event.js';
import type { Logger } from '../../log.js';
import { essence } from '../../openapi/compile.js';
import { INPUT_ERRORS } from '../../openapi/errors.js';
import { decodeUtf8 } from '../../request/json.js';

/** The audit reason of a response refused because it does not belong to the caller. */
export const BOLA_REASON = 'authz.bola';

/**
 * A response that does not belong to the caller: the client sees the plain
 * 404 (or 403) of the catalogue, the audit log and metrics `authz.bola`.
 */
export class OwnershipDenial extends GatewayError implements AuditedAs {
  readonly auditReason = BOLA_REASON;
}

export interface Ownership {
  /** Request side (after authorize): what this request's response must satisfy. Throws for HEAD it cannot decide. */
  prepare(ctx: RequestContext): void;
  /** Whether the response must be read whole for the check. */
  wants(ctx: RequestContext, status: number): boolean;
  /**
   * Checks a collected response. Returns undefined when the check does not
   * apply to it (another status, an empty body, an admin), otherwise the
   * parsed body, with the foreign items of an array removed (`changed`).
   * Throws OwnershipDenial, or 502 for an answer that cannot be checked.
   */
  check(ctx: RequestContext, r: UpstreamResponse): { value: unknown; changed: boolean } | undefined;
}

function isJson(contentType: string | undefined): boolean {
  const type = contentType === undefined ? undefined : essence(contentType);
  return type !== undefined && (type === 'application/json' || type.endsWith('+json'));
}

export function createOwnership(route: RouteSettings, policy: CompiledPolicy, logger: Logger): Ownership {
  const options = policy.response!;
  const spec = options.status === 403 ? ERRORS.forbidden : ERRORS.notFound;
  const shadow = policy.mode === 'shadow';
  /** Each request's plan, from the request side to the response side. */
  const plans = new WeakMap<RequestContext, ResponsePlan>();

  const deny = (ctx: RequestContext, detail: string): undefined => {
    if (shadow) {
      ctx.shadowDenials.push(`authorize:${route.name}:response`);
      logger.info(
        { requestId: ctx.id, route: route.name, principal: ctx.principal?.id, detail },
        'authorization would deny the response (shadow)',
      );
      return undefined;
    }
    logger.info(
      { requestId: ctx.id, route: route.name, principal: ctx.principal?.id, detail },
      'authorization denied on the response',
    );
    ctx.stage = 'filter';
    throw new OwnershipDenial(spec, { internal: `response ownership (BOLA): ${detail}` });
  };

  return {
    prepare(ctx) {
      const plan = planResponse(policy, policyInput(ctx));
      ctx.trail?.push({
        rule: 'response ownership',
        pass: true,
        detail:
          plan === undefined
            ? 'not needed: a rule set without response rules passed on the request'
            : `decided on the response: ${plan.rules.join(' or ')}; a response that does not belong to the caller is answered ${options.status}`,
      });
      if (plan === undefined) return;
      if (ctx.method === 'HEAD') {
        // No body to read: whether the object is the caller's cannot be known.
        if (shadow) return;
        ctx.stage = 'filter';
        throw new GatewayError(spec, { internal: 'HEAD on a route decided on the response' });
      }
      plans.set(ctx, plan);
    },

    wants(ctx, status) {
      if (!plans.has(ctx)) return false;
      return (status >= 200 && status < 300) || status === 304 || status === options.status;
    },

    check(ctx, r) {
      const plan = plans.get(ctx);
      if (plan === undefined) return undefined;
      if (r.status === options.status && !shadow) {
        // The upstream's own "no such object" answered exactly like a foreign one: no oracle.
        ctx.stage = 'filter';
        throw new GatewayError(spec, { internal: `the upstream answered ${r.status}` });
      }
      if (r.status === 304) {
        // A conditional request would learn whether the object matches a guessed validator.
        return deny(ctx, 'a 304 answer cannot be checked');
      }
      if (r.status < 200 || r.status >= 300 || r.body.length === 0) return undefined;
      let contentType: string | undefined;
      for (let i = 0; i < r.headers.length; i += 2)
        if (r.headers[i] === 'content-type') contentType = r.headers[i + 1];
      if (!isJson(contentType)) {
        logger.warn(
          { requestId: ctx.id, route: route.name, contentType },
          'upstream response refused: ownership cannot be checked',
        );
        throw new GatewayError(INPUT_ERRORS.upstreamInvalidResponse, {
          internal: `ownership cannot be checked on a ${contentType ?? 'untyped'} response`,
        });
      }
      let value: unknown;
      try {
        const text = decodeUtf8(r.body);
        if (text === undefined) throw new Error('not UTF-8');
        value = JSON.parse(text);
      } catch {
        throw new GatewayError(INPUT_ERRORS.upstreamInvalidResponse, {
          internal: 'JSON response is not valid JSON (ownership)',
        });
      }
      const facts = policyInput(ctx);
      const list = options.collection === undefined ? value : valueAt(value, options.collection);
      if (options.collection !== undefined && !Array.isArray(list)) {
        throw new GatewayError(INPUT_ERRORS.upstreamInvalidResponse, {
          internal: `no array at /${options.collection.join('/')} of the response (ownership)`,
        });
      }
      if (!Array.isArray(list)) {
        const owned = ownsResponse(plan, facts, value);
        if (!owned.pass) deny(ctx, owned.detail);
        return { value, changed: false };
      }
      const kept: unknown[] = [];
      let firstForeign: string | undefined;
      for (const item of list) {
        const owned = ownsResponse(plan, facts, item);
        if (owned.pass) kept.push(item);
        else firstForeign ??= owned.detail;
      }
      if (firstForeign === undefined) return { value, changed: false };
      const removed = list.length - kept.length;
      if (options.items === 'refuse' || shadow) {
        deny(ctx, `${removed} of ${list.length} items: ${firstForeign}`);
        return { value, changed: false };
      }
      logger.info(
        { requestId: ctx.id, route: route.name, principal: ctx.principal?.id, removed, detail: firstForeign },
        'items not belonging to the caller removed from the response',
      );
      if (options.collection === undefined) return { value: kept, changed: true };
      // The wrapper keeps its other members (a page's `next`, `total`); only the array changes.
      const parent = valueAt(value, options.collection.slice(0, -1)) as Record<string, unknown>;
      parent[options.collection.at(-1)!] = kept;
      return { value, changed: true };
    },
  };
}
