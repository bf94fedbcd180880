/**
 * The config schema of rate limiting: the top-level `rate_limit` section and
 * the two route fields `rate_limits` and `cost`. The config schema includes
 * them (`rate_limit: Type.Optional(RateLimitSchema)` and
 * `...ROUTE_RATE_LIMIT_PROPERTIES` in the route).
 */
import { type Static, Type } from '@sinclair/typebox';
import { Duration, strict } from '../config/schema-kit.js';

/** `10/s`, `1000/h`, `100/10s`, `5/500ms`. */
export const RATE_PATTERN = `^([1-9]\\d*)/(\\d*)(ms|s|m|h|d)$`;

export const NAME_PATTERN = '^[A-Za-z][A-Za-z0-9_-]*$';

/** `ip`, `api_key`, `client`, `principal`, `tenant`, `route`, `header:NAME`, `claim:PATH`. */
export const KEY_PART_PATTERN =
  "^(ip|api_key|client|principal|tenant|route|header:[A-Za-z0-9!#$%&'*+.^_`|~-]+|claim:[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*)$";

const Key = Type.Array(
  Type.String({
    pattern: KEY_PART_PATTERN,
    description: 'A part of the key.',
    expected: 'ip, api_key, client, principal, tenant, route, header:NAME or claim:PATH',
  }),
  {
    uniqueItems: true,
    description:
      'What is counted separately: ip, api_key, client (OAuth client id), principal, tenant, route, header:NAME, claim:PATH, or a combination such as [principal, route]. [] is one counter for everyone. A request lacking a part (no API key, no tenant) is not counted by this entry.',
  },
);

const Mode = Type.Optional(
  Type.Union([Type.Literal('enforce'), Type.Literal('shadow')], {
    description: 'enforce refuses; shadow only counts and logs. Default: rate_limit.mode.',
  }),
);

const AllRoutes = Type.Boolean({
  default: false,
  description: 'Applies to every route, not only to those that name it in their rate_limits.',
});

const limitProps = {
  key: Key,
  rate: Type.String({
    pattern: RATE_PATTERN,
    description: 'Sustained rate: COUNT/PERIOD, e.g. 10/s, 1000/h, 100/10s.',
    expected: 'a rate such as 10/s, 1000/h or 100/10s',
  }),
  burst: Type.Optional(
    Type.Integer({
      minimum: 1,
      description: 'Most units taken at once (bucket size). Default: the COUNT of the rate.',
    }),
  ),
  mode: Mode,
};

const quotaProps = {
  key: Key,
  limit: Type.Integer({ minimum: 1, description: 'Units allowed per period.' }),
  period: Type.Union([Type.Literal('day'), Type.Literal('month')], {
    description: 'The UTC calendar day or month the count applies to.',
  }),
  mode: Mode,
};

const concurrencyProps = {
  key: Key,
  max: Type.Integer({
    minimum: 1,
    description: 'Most requests of one key in flight at once (per instance).',
  }),
  mode: Mode,
};

export const LimitSchema = strict(
  { ...limitProps, all_routes: AllRoutes },
  'A rate limit (GCRA: smooth, no window boundary).',
);
export const QuotaSchema = strict(
  { ...quotaProps, all_routes: AllRoutes },
  'A quota per day or month, kept in the store across restarts.',
);
export const ConcurrencySchema = strict(
  { ...concurrencyProps, all_routes: AllRoutes },
  'A limit on requests in flight.',
);

const Name = Type.String({ pattern: NAME_PATTERN, description: 'A name for headers, logs and metrics.' });

export const RedisSchema = strict(
  {
    url: Type.String({
      pattern: '^(rediss?://\\S+|\\$\\{(env|file):[^}]+\\})$',
      description:
        'redis://host:port/db or rediss://… (a URL with a password must be given as ${env:NAME} or ${file:PATH}).',
      expected: 'a redis:// or rediss:// URL, or ${env:NAME}',
    }),
    on_failure: Type.Union([Type.Literal('fail-open'), Type.Literal('fail-closed')], {
      default: 'fail-closed',
      description:
        'While Redis is unreachable: fail-open limits on this instance alone (each rate divided by expected_instances); fail-closed answers 503.',
    }),
    expected_instances: Type.Integer({
      minimum: 1,
      default: 1,
      description: 'How many gateway instances share the limits; fail-open divides each rate by it.',
    }),
    key_prefix: Type.String({
      default: 'portcullis:',
      description: 'Prefix of every Redis key, to share a Redis with other applications.',
    }),
    timeout: Duration('Longest wait for Redis before the failure policy applies.', '100ms'),
    connect_timeout: Duration('Time allowed to connect to Redis.', '1s'),
  },
  'Redis, shared by every instance, for exact limits across instances.',
);

export const RateLimitSchema = Type.Object(
  {
    mode: Type.Union([Type.Literal('enforce'), Type.Literal('shadow')], {
      default: 'enforce',
      description: 'Default mode of every limit, quota and concurrency limit.',
    }),
    backend: Type.Union([Type.Literal('memory'), Type.Literal('redis')], {
      default: 'memory',
      description: 'memory: counters on this instance; redis: one shared, exact counter for all instances.',
    }),
    redis: Type.Optional(RedisSchema),
    max_keys: Type.Integer({
      minimum: 1,
      default: 100000,
      description:
        'Most keys remembered in memory per limit and per quota; the least recently used is forgotten beyond it.',
    }),
    ipv6_prefix: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 128,
        description:
          'IPv6 clients are counted per prefix of this length, so rotating addresses does not help. Default: listen.ipv6_prefix.',
      }),
    ),
    limits: Type.Record(Type.String({ pattern: NAME_PATTERN }), LimitSchema, {
      default: {},
      description: 'Rate limits by name.',
    }),
    quotas: Type.Record(Type.String({ pattern: NAME_PATTERN }), QuotaSchema, {
      default: {},
      description: 'Quotas by name.',
    }),
    concurrency: Type.Record(Type.String({ pattern: NAME_PATTERN }), ConcurrencySchema, {
      default: {},
      description: 'Concurrency limits by name.',
    }),
    global_concurrency: Type.Optional(
      Type.Integer({
        minimum: 1,
        description: 'Most requests in flight on this instance; past it, 503 gateway.overloaded.',
      }),
    ),
    load_shedding: Type.Optional(
      strict(
        {
          max_event_loop_delay: Duration(
            'Worst event-loop delay over the last half second past which requests get 503 at once.',
            '100ms',
          ),
        },
        'Answer 503 quickly while the gateway itself is overloaded.',
      ),
    ),
    retry_after: Duration('Retry-After of 503 answers (overload, Redis down with fail-closed).', '1s'),
    quota_flush: Duration('How often quota usage is written to the store.', '1s'),
  },
  {
    additionalProperties: false,
    description: 'Rate limits, quotas, concurrency limits and load shedding.',
    default: {},
  },
);

export const ROUTE_RATE_LIMIT_PROPERTIES = {
  rate_limits: Type.Optional(
    Type.Array(
      Type.Union([
        Name,
        strict(limitProps, 'A rate limit for this route only.'),
        strict(quotaProps, 'A quota for this route only.'),
        strict(concurrencyProps, 'A concurrency limit for this route only.'),
      ]),
      {
        description:
          'Names from rate_limit.limits, quotas or concurrency, or inline entries; entries with all_routes apply as well.',
        expected: 'a list of names and inline limits',
      },
    ),
  ),
  cost: Type.Integer({
    minimum: 1,
    default: 1,
    description:
      'Units one request takes from each rate limit and quota of the route (e.g. 10 for an export).',
  }),
};

export type RawRateLimit = Static<typeof RateLimitSchema>;
export const RouteRateLimitFieldsSchema = Type.Object(ROUTE_RATE_LIMIT_PROPERTIES);
export type RawRouteRateLimits = Static<typeof RouteRateLimitFieldsSchema>;
