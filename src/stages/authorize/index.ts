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
  policyInput,
  UnreadableBinding,
} from '../../authz/policy.js';
import type { RequestContext } from '../../contracts/stage.js';
import { gatewayError } from '../../errors.js';
import type { StageFactory } from '../../pipeline/types.js';
import { readRequestBody } from '../../request/body.js';

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

    const refs = policy?.refs ?? [];
    const queryRefs = refs.filter((r) => r.startsWith('query.')).map((r) => r.slice(6));
    const headerRefs = refs.filter((r) => r.startsWith('header.')).map((r) => r.slice(7).toLowerCase());

    const decide = (ctx: RequestContext): void => {
      // A bound name given in two spellings or twice: the upstream may read either, so neither is trusted.
      for (const name of queryRefs) {
        if (ctx.query.spellings(name).length > 0) {
          throw gatewayError('ambiguousParameter', {
            internal: `query ${name}: ${ctx.query.spellings(name).join(', ')}`,
          });
        }
      }
      for (const name of headerRefs) {
        if (ctx.headers.all(name).length > 1)
          throw gatewayError('badHeader', { internal: `repeated ${name} header` });
      }
      try {
        evaluate(ctx, policyInput(ctx));
      } catch (err) {
        if (!(err instanceof UnreadableBinding)) throw err;
        logger.info(
          { requestId: ctx.id, route: route.name, reason: err.reason },
          'authorization cannot read the body',
        );
        throw gatewayError(err.error, { internal: err.reason });
      }
    };

    const evaluate = (ctx: RequestContext, facts: PolicyInput): void => {
      const trail = ctx.trail;
      if (global) {
        const r = global.evaluate(facts);
        trail?.push({ rule: 'global network', ...r });
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
        trail?.push(...d.trail.map((t) => ({ ...t, rule: `document security ${t.rule}` })));
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
      if (policy === undefined) {
        if (route.authorize === 'any-authenticated')
          trail?.push({ rule: 'any-authenticated', pass: true, detail: 'any authenticated principal' });
        return;
      }
      const decision = evaluatePolicy(policy, facts);
      trail?.push(...decision.trail);
      if (decision.allowed) return;
      const failed = decision.trail.filter((t) => !t.pass);
      const detail = failed.map((t) => `${t.rule}: ${t.detail}`).join('; ');
      if (policy.mode === 'shadow') {
        ctx.shadowDenials.push(`authorize:${route.name}`);
        trail?.push({ rule: 'mode', pass: true, detail: 'shadow: the denial is only reported' });
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
      const jsonLimits = route.validation.jsonLimits;
      return {
        name: 'authorize',
        async handle(ctx) {
          await readRequestBody(ctx, jsonLimits);
          decide(ctx);
        },
      };
    }
    return { name: 'authorize', handle: decide };
  },
};
