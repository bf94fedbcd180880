import type { Principal } from '../../contracts/principal.js';
import type { RequestContext, Stage } from '../../contracts/stage.js';
import { GatewayError } from '../../errors.js';
import type { StageFactory } from '../../pipeline/types.js';
import { RATE_LIMIT_ERRORS } from '../../ratelimit/errors.js';
import { limitItem, policyItem, sfString } from '../../ratelimit/headers.js';
import { compileKey, type KeyFn } from '../../ratelimit/keys.js';
import type { LimitCheck, Verdict } from '../../ratelimit/limiter.js';
import type { QuotaCounter, QuotaEntry } from '../../ratelimit/quota.js';
import { LimiterUnavailable } from '../../ratelimit/redis.js';
import type { DecisionStats, RateLimitService } from '../../ratelimit/service.js';
import { onResponseDone, serviceOf } from '../../ratelimit/stage-support.js';
import type { AnyLimitSettings, LimitSettings, RouteRateLimits } from '../../ratelimit/types.js';

/** Counts, logs and records (for the request's audit event) what a shadow-mode limit would have refused. */
function noteShadowDenial(service: RateLimitService, ctx: RequestContext, name: string, key: string): void {
  ctx.shadowDenials.push(`rate-limit:${name}`);
  service.logger.info(
    { requestId: ctx.id, route: ctx.route.name, limit: name, key },
    'rate limit in shadow mode would have refused this request',
  );
}

/** One entry of a route, compiled for the request path. */
interface Planned<S extends AnyLimitSettings> {
  settings: S;
  key: KeyFn;
  stats: DecisionStats;
  /** The name as an sf-string, and the RateLimit-Policy item (rate limits and quotas). */
  quoted: string;
  policy: string;
}
type PlannedLimit = Planned<LimitSettings>;

/** The RateLimit-Policy and RateLimit items of one answer. */
interface Fields {
  policies: string[];
  current: string[];
}

/** The per-request state of one request through the stage. */
interface Pass {
  ctx: RequestContext;
  quotaEntries: (QuotaEntry | undefined)[];
  checks: LimitCheck[];
  planned: PlannedLimit[];
}

export const rateLimitStage: StageFactory = {
  name: 'rate-limit',
  create(route, deps) {
    const plan = route.rateLimits;
    if (plan === undefined) return undefined;
    return createRateLimitStage(serviceOf(deps), plan);
  },
};

/** The stage for one route's plan; exported for tests, which build the service themselves. */
export function createRateLimitStage(service: RateLimitService, plan: RouteRateLimits): Stage {
  const v6 = service.settings.ipv6Prefix;
  const compile = <S extends AnyLimitSettings>(s: S): Planned<S> => ({
    settings: s,
    key: compileKey(s.key, v6),
    stats: service.statsFor(s.name),
    quoted: sfString(s.name),
    policy: s.type === 'concurrency' ? '' : policyItem(s),
  });
  const limits = plan.limits.map(compile);
  const quotas = plan.quotas.map(compile);
  const concurrency = plan.concurrency.map(compile);
  const counter: QuotaCounter | undefined = quotas.length > 0 ? service.quotas() : undefined;
  const { cost } = plan;
  const limiter = service.limiter;
  const inFlight = service.inFlight;
  const retryAfter503 = String(service.settings.retryAfterSeconds);

  const unavailable = (err: unknown, what: string): GatewayError =>
    new GatewayError(RATE_LIMIT_ERRORS.limiterUnavailable, {
      headers: { 'retry-after': retryAfter503 },
      internal: what,
      cause: err,
    });

  const refuse = (
    ctx: RequestContext,
    spec: (typeof RATE_LIMIT_ERRORS)[keyof typeof RATE_LIMIT_ERRORS],
    name: string,
    key: string,
    retryAfterMs: number,
    fields?: Fields,
  ): GatewayError => {
    const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
    service.logger.info(
      {
        requestId: ctx.id,
        route: ctx.route.name,
        limit: name,
        key,
        retryAfter: seconds,
        principal: describe(ctx.principal),
      },
      'rate limited',
    );
    const headers: Record<string, string> = { 'retry-after': String(seconds) };
    if (fields && fields.policies.length > 0) {
      headers['ratelimit-policy'] = fields.policies.join(', ');
      headers.ratelimit = fields.current.join(', ');
    }
    return new GatewayError(spec, { headers, internal: `${name} exceeded for ${key}` });
  };

  /** Concurrency first: local, synchronous, and undone by the response's end whatever happens next. */
  const acquireConcurrency = (ctx: RequestContext): void => {
    let held: string[] | undefined;
    for (const c of concurrency) {
      const key = c.key(ctx);
      if (key === undefined) continue;
      const id = `${c.settings.name}|${key}`;
      if (c.settings.mode === 'shadow') {
        inFlight.acquire(id);
        if (inFlight.count(id) > c.settings.max) {
          c.stats.shadowLimited++;
          noteShadowDenial(service, ctx, c.settings.name, key);
        } else c.stats.allowed++;
      } else if (inFlight.tryAcquire(id, c.settings.max)) {
        c.stats.allowed++;
      } else {
        c.stats.limited++;
        if (held) for (const h of held) inFlight.release(h);
        throw refuse(ctx, RATE_LIMIT_ERRORS.concurrencyExceeded, c.settings.name, key, 1000);
      }
      held ??= [];
      held.push(id);
    }
    if (held) {
      const keys = held;
      onResponseDone(ctx, () => {
        for (const h of keys) inFlight.release(h);
      });
    }
  };

  /**
   * Refuses when an enforced quota cannot take `cost` more. With `fields`
   * (the final check, after the rate limits passed) it also counts the
   * request and adds the quotas' RateLimit items.
   */
  const checkQuotas = (pass: Pass, fields: Fields | undefined): void => {
    for (let i = 0; i < quotas.length; i++) {
      const entry = pass.quotaEntries[i];
      if (entry === undefined) continue;
      const q = quotas[i]!;
      const used = counter!.used(entry);
      const over = used + cost > q.settings.limit;
      if (over && q.settings.mode === 'enforce') {
        q.stats.limited++;
        const untilEnd = counter!.msToPeriodEnd(q.settings);
        const item = limitItem(q.quoted, Math.max(0, q.settings.limit - used), untilEnd);
        const f = fields ?? { policies: [q.policy], current: [] };
        f.current.push(item);
        throw refuse(pass.ctx, RATE_LIMIT_ERRORS.quotaExceeded, q.settings.name, entry.subject, untilEnd, f);
      }
      if (fields === undefined) continue;
      if (over) {
        // Shadow: counted as the refusal it would have been, so usage is not added either.
        q.stats.shadowLimited++;
        noteShadowDenial(service, pass.ctx, q.settings.name, entry.subject);
        continue;
      }
      q.stats.allowed++;
      counter!.add(entry, cost);
      if (q.settings.mode === 'enforce') {
        fields.current.push(
          limitItem(
            q.quoted,
            Math.max(0, q.settings.limit - used - cost),
            counter!.msToPeriodEnd(q.settings),
          ),
        );
      }
    }
  };

  const finish = (pass: Pass, verdict: Verdict | undefined): void => {
    const { ctx, checks, planned } = pass;
    const fields: Fields = { policies: [], current: [] };
    let refusedBy: { p: PlannedLimit; key: string; retryAfterMs: number } | undefined;
    if (verdict) {
      for (let i = 0; i < checks.length; i++) {
        const p = planned[i]!;
        const o = verdict.outcomes[i]!;
        if (p.settings.mode === 'shadow') {
          if (o.allowed) p.stats.allowed++;
          else {
            p.stats.shadowLimited++;
            noteShadowDenial(service, ctx, p.settings.name, checks[i]!.key);
          }
          continue;
        }
        fields.policies.push(p.policy);
        fields.current.push(limitItem(p.quoted, o.remaining, o.resetMs));
        if (o.allowed) {
          if (verdict.allowed) p.stats.allowed++;
        } else {
          p.stats.limited++;
          if (refusedBy === undefined || o.retryAfterMs > refusedBy.retryAfterMs) {
            refusedBy = { p, key: checks[i]!.key, retryAfterMs: o.retryAfterMs };
          }
        }
      }
    }
    for (let i = 0; i < quotas.length; i++) {
      if (pass.quotaEntries[i] !== undefined && quotas[i]!.settings.mode === 'enforce') {
        fields.policies.push(quotas[i]!.policy);
      }
    }
    if (refusedBy) {
      const { p, key, retryAfterMs } = refusedBy;
      throw refuse(ctx, RATE_LIMIT_ERRORS.rateLimited, p.settings.name, key, retryAfterMs, fields);
    }
    // Checked again now that the rate limits have passed: another request may have used the quota meanwhile.
    if (pass.quotaEntries.length > 0) checkQuotas(pass, fields);
    if (fields.policies.length > 0) {
      ctx.responseHeaders.push(
        'ratelimit-policy',
        fields.policies.join(', '),
        'ratelimit',
        fields.current.join(', '),
      );
    }
  };

  const decide = (pass: Pass): void | Promise<void> => {
    if (pass.quotaEntries.length > 0) checkQuotas(pass, undefined);
    if (pass.checks.length === 0) return finish(pass, undefined);
    let verdict: Verdict | Promise<Verdict>;
    try {
      verdict = limiter.consume(pass.checks, cost);
    } catch (err) {
      throw mapFailure(err);
    }
    if (verdict instanceof Promise) {
      return verdict.then(
        (v) => finish(pass, v),
        (err: unknown) => {
          throw mapFailure(err);
        },
      );
    }
    return finish(pass, verdict);
  };

  const mapFailure = (err: unknown): unknown =>
    err instanceof LimiterUnavailable ? unavailable(err, err.message) : err;

  return {
    name: 'rate-limit',
    handle(ctx) {
      if (concurrency.length > 0) acquireConcurrency(ctx);
      const checks: LimitCheck[] = [];
      const planned: PlannedLimit[] = [];
      for (const p of limits) {
        const key = p.key(ctx);
        if (key === undefined) continue;
        checks.push({ limit: p.settings, key });
        planned.push(p);
      }
      const pass: Pass = { ctx, checks, planned, quotaEntries: [] };
      if (quotas.length === 0) return decide(pass);
      // A counter not in memory yet is read from the store once; the rest is synchronous.
      let loading = false;
      const found: (QuotaEntry | Promise<QuotaEntry> | undefined)[] = quotas.map((q) => {
        const key = q.key(ctx);
        if (key === undefined) return undefined;
        const e = counter!.entry(q.settings, key);
        if (e instanceof Promise) loading = true;
        return e;
      });
      if (!loading) {
        pass.quotaEntries = found as (QuotaEntry | undefined)[];
        return decide(pass);
      }
      return Promise.all(found).then(
        (entries) => {
          pass.quotaEntries = entries;
          return decide(pass);
        },
        (err: unknown) => {
          throw unavailable(err, 'quota usage cannot be read from the store');
        },
      );
    },
  };
}

function describe(p: Principal | undefined): string | undefined {
  return p === undefined ? undefined : `${p.kind}:${p.id}`;
}
