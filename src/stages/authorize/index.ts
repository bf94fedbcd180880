/**
 * Authorize: least privilege per route. The route's policy (scopes, roles,
 * claims, ownership, tenant, network, alternatives) and the global network
 * rules must pass, or the answer is 403 `authz.forbidden` with nothing
 * about which rule failed; the log gets the rule and the values compared.
 * In shadow mode a would-be denial is recorded and the request goes on.
 */
import {
  type CompiledPolicy,
  compilePolicy,
  documentPolicies,
  evaluatePolicy,
  networkCheck,
  type PolicyInput,
} from '../../authz/policy.js';
import { ERRORS, gatewayError } from '../../errors.js';
import { readBody } from '../../http/body.js';
import { InputError } from '../../openapi/errors.js';
import type { RequestContext } from '../../pipeline/context.js';
import type { StageFactory } from '../../pipeline/index.js';
import { parseJson } from '../../request/json.js';

/**
 * Parses a JSON body for body-bound rules, with the validate stage's strict
 * parser: duplicate keys would let this check read one value and the
 * upstream another (`{"userId":"victim","userId":"me"}`). Anything that is
 * not JSON binds to nothing.
 */
function parseBody(ctx: RequestContext, body: Buffer): unknown {
  const type = ctx.req.headers['content-type'] ?? '';
  if (!/^application\/(.+\+)?json\s*(;|$)/i.test(type) || body.length === 0) return undefined;
  const parsed = parseJson(body, ctx.route.validation.jsonLimits);
  if (!parsed.ok) {
    throw new InputError(
      ERRORS.inputInvalid,
      [parsed.problem],
      `body-bound rule: ${parsed.problem.location} ${parsed.problem.rule}`,
    );
  }
  return parsed.value;
}

export const authorizeStage: StageFactory = {
  name: 'authorize',
  create(route, deps) {
    const globalNetwork = deps.config.authorization.network;
    const global = globalNetwork ? networkCheck('global network', globalNetwork) : undefined;
    const policy: CompiledPolicy | undefined =
      route.authorize === undefined ? undefined : compilePolicy(route.authorize);
    // The API document's security requirements apply on top of the route's own rules.
    const fromDocument =
      route.auth === 'none' ? new Map<string, CompiledPolicy>() : documentPolicies(route.operations ?? {});
    if (global === undefined && policy === undefined && fromDocument.size === 0) return undefined;
    const logger = deps.logger;

    const input = (ctx: RequestContext): PolicyInput => ({
      principal: ctx.principal,
      params: ctx.params,
      query: ctx.query,
      headers: ctx.req.headers,
      body: ctx.parsedBody,
      clientIp: ctx.clientIp,
    });

    const decide = (ctx: RequestContext): void => {
      const facts = input(ctx);
      if (global) {
        const r = global.evaluate(facts);
        if (!r.pass) {
          logger.info(
            { requestId: ctx.id, route: route.name, rule: 'global network', detail: r.detail },
            'authorization denied',
          );
          throw gatewayError('forbidden', { internal: `global network: ${r.detail}` });
        }
      }
      const stated = fromDocument.get(ctx.method);
      if (stated !== undefined) {
        const d = evaluatePolicy(stated, facts);
        if (!d.allowed) {
          const failed = d.trail.filter((t) => !t.pass).map((t) => `${t.rule}: ${t.detail}`);
          const detail = `API document security: ${failed.join('; ')}`;
          logger.info(
            { requestId: ctx.id, route: route.name, principal: ctx.principal?.id, detail },
            'authorization denied',
          );
          throw gatewayError('forbidden', { internal: detail });
        }
      }
      if (policy === undefined) return;
      const decision = evaluatePolicy(policy, facts);
      if (decision.allowed) return;
      const failed = decision.trail.filter((t) => !t.pass);
      const detail = failed.map((t) => `${t.rule}: ${t.detail}`).join('; ');
      if (policy.mode === 'shadow') {
        ctx.shadowDenials.push(`authorize:${route.name}`);
        logger.info(
          { requestId: ctx.id, route: route.name, principal: ctx.principal?.id, detail },
          'authorization would deny (shadow)',
        );
        return;
      }
      logger.info(
        { requestId: ctx.id, route: route.name, principal: ctx.principal?.id, detail },
        'authorization denied',
      );
      throw gatewayError('forbidden', { internal: detail });
    };

    if (policy?.needsBody) {
      return {
        name: 'authorize',
        async handle(ctx) {
          if (ctx.parsedBody === undefined) ctx.parsedBody = parseBody(ctx, await readBody(ctx));
          decide(ctx);
        },
      };
    }
    return { name: 'authorize', handle: decide };
  },
};
