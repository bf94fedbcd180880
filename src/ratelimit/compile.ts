/**
 * Turns the validated `rate_limit` section and the route fields into the
 * compiled settings. Three steps, to fit the config loader:
 *
 * 1. `checkRateLimit` — rules the schema cannot state, before secret
 *    references are resolved (a Redis password must be a reference);
 * 2. `compileRouteRateLimits` — per route: names resolved, `all_routes`
 *    entries added, costs checked against bursts;
 * 3. `compileRateLimit` — the section itself, after references are resolved.
 */
import { isSecretRef } from '../config/secrets.js';
import { parseDuration } from '../util/units.js';
import { RATE_PATTERN, type RawRateLimit, type RawRouteRateLimits } from './schema.js';
import type {
  AnyLimitSettings,
  ConcurrencySettings,
  KeyPart,
  LimitMode,
  LimitSettings,
  QuotaSettings,
  RateLimitSettings,
  RouteRateLimits,
} from './types.js';

/** Reports a problem at a path below the section or route being compiled. */
export type ReportIssue = (segments: (string | number)[], message: string) => void;

const RATE = new RegExp(RATE_PATTERN);
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `10/s` → 10 per 1000 ms; `100/10s` → 100 per 10 000 ms. */
export function parseRate(text: string): { count: number; periodMs: number } {
  const m = RATE.exec(text);
  if (!m) throw new Error(`not a rate: ${text}`);
  const periodMs = (m[2] === '' ? 1 : Number(m[2])) * UNIT_MS[m[3]!]!;
  return { count: Number(m[1]), periodMs };
}

/** `header:X-Tenant` → `{ kind: 'header', name: 'x-tenant' }`; `claim:plan.tier` → a path. */
export function parseKeyPart(text: string): KeyPart {
  if (text.startsWith('header:')) return { kind: 'header', name: text.slice(7).toLowerCase() };
  if (text.startsWith('claim:')) return { kind: 'claim', path: text.slice(6).split('.') };
  return { kind: text as 'ip' };
}

type RawEntry = { key: string[]; mode?: LimitMode | undefined } & (
  | { rate: string; burst?: number | undefined }
  | { limit: number; period: 'day' | 'month' }
  | { max: number }
);

function compileEntry(name: string, raw: RawEntry, defaultMode: LimitMode): AnyLimitSettings {
  const common = { name, key: raw.key.map(parseKeyPart), mode: raw.mode ?? defaultMode };
  if ('rate' in raw) {
    const { count, periodMs } = parseRate(raw.rate);
    return { type: 'rate', ...common, count, periodMs, burst: raw.burst ?? count };
  }
  if ('limit' in raw) return { type: 'quota', ...common, limit: raw.limit, period: raw.period };
  return { type: 'concurrency', ...common, max: raw.max };
}

/** Every named entry of the section, compiled, by name. */
function namedEntries(raw: RawRateLimit): Map<string, { entry: AnyLimitSettings; allRoutes: boolean }> {
  const out = new Map<string, { entry: AnyLimitSettings; allRoutes: boolean }>();
  for (const group of [raw.limits, raw.quotas, raw.concurrency]) {
    for (const [name, e] of Object.entries(group)) {
      if (!out.has(name)) out.set(name, { entry: compileEntry(name, e, raw.mode), allRoutes: e.all_routes });
    }
  }
  return out;
}

function redisUrlHasPassword(url: string): boolean {
  return !isSecretRef(url) && /^rediss?:\/\/[^/@]*:[^/@]+@/.test(url);
}

/** Rules across fields, checked before secret references are resolved. */
export function checkRateLimit(raw: RawRateLimit, report: ReportIssue): void {
  if (raw.backend === 'redis' && raw.redis === undefined) {
    report(['backend'], 'expected a redis section: backend redis needs redis.url');
  }
  if (raw.redis !== undefined && redisUrlHasPassword(raw.redis.url)) {
    report(
      ['redis', 'url'],
      'expected the password by reference: write the whole URL as ${env:NAME} or ${file:PATH}',
    );
  }
  const seen = new Map<string, string>();
  for (const [group, entries] of [
    ['limits', raw.limits],
    ['quotas', raw.quotas],
    ['concurrency', raw.concurrency],
  ] as const) {
    for (const name of Object.keys(entries)) {
      const other = seen.get(name);
      if (other !== undefined) {
        report([group, name], `expected a name not used elsewhere: "${name}" is also in ${other}`);
      }
      seen.set(name, group);
    }
  }
}

/**
 * What applies to one route: its `rate_limits` (names resolved, inline
 * entries named `<route>#<index>`) plus every `all_routes` entry; undefined
 * when nothing does.
 */
export function compileRouteRateLimits(
  route: RawRouteRateLimits,
  raw: RawRateLimit,
  routeName: string,
  report: ReportIssue,
): RouteRateLimits | undefined {
  const named = namedEntries(raw);
  const chosen = new Map<string, AnyLimitSettings>();
  for (const [name, { entry, allRoutes }] of named) if (allRoutes) chosen.set(name, entry);
  route.rate_limits?.forEach((item, i) => {
    if (typeof item === 'string') {
      const found = named.get(item);
      if (found === undefined) {
        const known = [...named.keys()];
        report(
          ['rate_limits', i],
          known.length === 0
            ? `expected the name of an entry under rate_limit, got "${item}"; none is defined`
            : `expected one of ${known.join(', ')}, got "${item}"`,
        );
        return;
      }
      chosen.set(item, found.entry);
    } else {
      const name = `${routeName}#${i}`;
      chosen.set(name, compileEntry(name, item as RawEntry, raw.mode));
    }
  });
  if (chosen.size === 0) return undefined;
  const cost = route.cost;
  const limits: LimitSettings[] = [];
  const quotas: QuotaSettings[] = [];
  const concurrency: ConcurrencySettings[] = [];
  for (const entry of chosen.values()) {
    if (entry.type === 'rate') {
      if (entry.burst < cost) {
        report(
          ['cost'],
          `expected a cost no larger than the burst of ${entry.name} (${entry.burst}): a request costing ${cost} could never pass`,
        );
      }
      limits.push(entry);
    } else if (entry.type === 'quota') {
      if (entry.limit < cost) {
        report(['cost'], `expected a cost no larger than the limit of quota ${entry.name} (${entry.limit})`);
      }
      quotas.push(entry);
    } else concurrency.push(entry);
  }
  return { limits, quotas, concurrency, cost };
}

/** The compiled section, after secret references are resolved. */
export function compileRateLimit(raw: RawRateLimit, defaultIpv6Prefix = 64): RateLimitSettings {
  const named = namedEntries(raw);
  const pick = <T extends AnyLimitSettings['type']>(type: T) =>
    Object.fromEntries(
      [...named].filter(([, v]) => v.entry.type === type).map(([k, v]) => [k, v.entry]),
    ) as Record<string, Extract<AnyLimitSettings, { type: T }>>;
  const r = raw.redis;
  return {
    backend: raw.backend,
    redis: r && {
      url: r.url,
      onFailure: r.on_failure,
      expectedInstances: r.expected_instances,
      keyPrefix: r.key_prefix,
      timeoutMs: parseDuration(r.timeout),
      connectTimeoutMs: parseDuration(r.connect_timeout),
    },
    maxKeys: raw.max_keys,
    ipv6Prefix: raw.ipv6_prefix ?? defaultIpv6Prefix,
    limits: pick('rate'),
    quotas: pick('quota'),
    concurrency: pick('concurrency'),
    globalConcurrency: raw.global_concurrency,
    loadShedding: raw.load_shedding && {
      maxEventLoopDelayMs: parseDuration(raw.load_shedding.max_event_loop_delay),
    },
    retryAfterSeconds: Math.max(1, Math.ceil(parseDuration(raw.retry_after) / 1000)),
    quotaFlushMs: parseDuration(raw.quota_flush),
    // Names were checked with the routes; nothing is left to report here.
    everyRoute: compileRouteRateLimits({ cost: 1 } as RawRouteRateLimits, raw, '(gateway)', () => {}),
  };
}
