/**
 * The `audit:` section of the config (TypeBox, like `src/config/schema.ts`)
 * and its compiled form. Every key has a default, so the section may be left
 * out: auditing is on by default, in the store, with a generated signing key
 * on the embedded default.
 */
import { type Static, Type } from '@sinclair/typebox';
import { parseRate, RATE_PATTERN } from '../anomaly/schema.js';
import { Duration, SecretRef } from '../config/schema-kit.js';
import { parseDuration } from '../util/units.js';
import { parseSigningKey } from './signing.js';

const Rate = (description: string, dflt?: number) =>
  Type.Number({
    minimum: 0,
    maximum: 1,
    description,
    expected: 'a number from 0 (none) to 1 (all)',
    ...(dflt === undefined ? {} : { default: dflt }),
  });

/** Defaults, shared by the schema and {@link compileAudit} (which also accepts a section without them). */
export const AUDIT_DEFAULTS = {
  enabled: true,
  sample_success: 1,
  flush_interval: '200ms',
  batch_size: 128,
  max_queue: 50_000,
  overflow: 'drop',
  checkpoint_every: 1000,
  checkpoint_interval: '1m',
  shutdown_timeout: '10s',
  retention_check_interval: '10m',
  retention_max_age: '90d',
  aggregate_per_source_rate: '5/s',
  aggregate_interval: '10s',
  aggregate_max_sources: 10_000,
} as const;

export const AuditAggregateSchema = Type.Object(
  {
    per_source_rate: Type.String({
      pattern: RATE_PATTERN,
      default: AUDIT_DEFAULTS.aggregate_per_source_rate,
      description:
        'Unauthenticated denials and unrouted requests from one client IP recorded one by one up to this rate (counted per interval); beyond it they are only counted, in one aggregate event per source and interval.',
      expected: 'a rate greater than zero such as 5/s, 300/m or 1000/h',
    }),
    interval: Duration(
      'How often the aggregate events (`audit.denials_aggregated`: count, reasons, first and last request ids) are written.',
      AUDIT_DEFAULTS.aggregate_interval,
    ),
    max_sources: Type.Integer({
      minimum: 1,
      maximum: 1_000_000,
      default: AUDIT_DEFAULTS.aggregate_max_sources,
      description:
        'Most sources counted separately per interval; further sources share one aggregate (target `ip:*`). About 300 bytes each.',
    }),
  },
  {
    additionalProperties: false,
    default: {},
    description:
      'Aggregation of the events an attacker can make at will (unauthenticated denials, unrouted requests): a flood costs the writer one event per source per interval, and every request is still counted.',
  },
);

export const AuditJsonlSchema = Type.Object(
  {
    path: Type.String({
      minLength: 1,
      description:
        'File the events are appended to as JSON lines (relative to the working directory; created with mode 0600, opened O_APPEND, so logrotate copytruncate works), or "-" for stdout.',
      expected: 'a file path, or "-" for stdout',
    }),
  },
  {
    additionalProperties: false,
    description:
      'Also stream every stored event, and every signed checkpoint, as one JSON line each, for shipping to a SIEM.',
  },
);

export const AuditRetentionSchema = Type.Object(
  {
    max_age: Type.Union([Duration('Events older than this are removed.'), Type.Literal('forever')], {
      default: AUDIT_DEFAULTS.retention_max_age,
      description:
        'Events older than this are removed; "forever" keeps them (a flood of denials then grows the store without bound).',
      expected: 'a duration such as 90d or 365d, or "forever"',
    }),
    max_events: Type.Optional(
      Type.Integer({
        minimum: 1,
        description: 'Most events kept; the oldest beyond it are removed.',
      }),
    ),
    check_interval: Duration('How often retention runs.', AUDIT_DEFAULTS.retention_check_interval),
  },
  {
    additionalProperties: false,
    default: {},
    description:
      'How long events are kept. Removal leaves a signed anchor, so the retained range still verifies.',
  },
);

export const AuditSchema = Type.Object(
  {
    enabled: Type.Boolean({
      default: AUDIT_DEFAULTS.enabled,
      description: 'Record security decisions and administrative acts in the audit log.',
    }),
    sample_success: Rate(
      'Share of allowed requests recorded, chosen by request id so the choice is reproducible. Denied and failed requests are always recorded.',
      AUDIT_DEFAULTS.sample_success,
    ),
    sample_routes: Type.Record(Type.String({ minLength: 1 }), Rate('Share of allowed requests recorded.'), {
      default: {},
      description:
        'Per-route share of allowed requests recorded, by route name (the route\'s `name`, or "METHODS path"), overriding sample_success.',
    }),
    flush_interval: Duration(
      'Longest time an event waits in memory before it is written: the most a crash can lose.',
      AUDIT_DEFAULTS.flush_interval,
    ),
    batch_size: Type.Integer({
      minimum: 1,
      maximum: 5000,
      default: AUDIT_DEFAULTS.batch_size,
      description:
        'Most events written in one transaction; a full batch is written at once. SQLite writes block the event loop for the whole batch: larger batches cost fewer commits but raise the p99 latency of requests (128 halved it against 500 in the peer bench).',
    }),
    max_queue: Type.Integer({
      minimum: 1,
      maximum: 10_000_000,
      default: AUDIT_DEFAULTS.max_queue,
      description: 'Most events waiting in memory for a slow store; what happens beyond it is `overflow`.',
    }),
    overflow: Type.Union([Type.Literal('drop'), Type.Literal('block')], {
      default: AUDIT_DEFAULTS.overflow,
      description:
        'When the queue is full. Under both, events of allowed requests, authenticated denials, administrative acts and alerts are never dropped: new requests are answered 503 until the queue drains (back-pressure), and unauthenticated denials and unrouted requests are folded into per-source counts (`aggregate`). drop: /readyz stays 200 with a note while the queue is full (the instance keeps answering what it can); block: /readyz fails while it is full, so a load balancer moves traffic away. Events beyond twice max_queue (requests already in flight) are dropped and counted under both.',
      expected: 'drop or block',
    }),
    checkpoint_every: Type.Integer({
      minimum: 1,
      maximum: 10_000_000,
      default: AUDIT_DEFAULTS.checkpoint_every,
      description: 'Sign a checkpoint after this many events written by this instance.',
    }),
    checkpoint_interval: Duration(
      'Sign a checkpoint at least this often while events are written. Events after the last checkpoint are chained but not yet signed.',
      AUDIT_DEFAULTS.checkpoint_interval,
    ),
    signing_key: Type.Optional(
      SecretRef(
        'Ed25519 private key (PKCS#8 PEM) that signs checkpoints, never stored in the database. Default: a generated file in the data folder (refused in production).',
      ),
    ),
    redact_fields: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description:
        'Extra field names whose values are scrubbed from audit details, beyond password, secret, token, api_key, authorization, cookie, session and credential.',
    }),
    shutdown_timeout: Duration(
      'Longest a graceful shutdown waits for the store to take the queued events.',
      AUDIT_DEFAULTS.shutdown_timeout,
    ),
    jsonl: Type.Optional(AuditJsonlSchema),
    retention: AuditRetentionSchema,
    aggregate: AuditAggregateSchema,
  },
  {
    additionalProperties: false,
    default: {},
    description: 'The tamper-evident audit log of security decisions and administrative acts.',
  },
);

export type RawAudit = Static<typeof AuditSchema>;

/** The compiled `audit:` section. */
export interface AuditSettings {
  enabled: boolean;
  sampleSuccess: number;
  /** By route name. */
  sampleRoutes: Readonly<Record<string, number>>;
  flushIntervalMs: number;
  batchSize: number;
  maxQueue: number;
  overflow: 'drop' | 'block';
  checkpointEvery: number;
  checkpointIntervalMs: number;
  /** The resolved PEM private key, or undefined for the generated one in the data folder. */
  signingKey: string | undefined;
  redactFields: readonly string[];
  shutdownTimeoutMs: number;
  /** `-` for stdout. */
  jsonl: { path: string } | undefined;
  retention: {
    maxAgeMs: number | undefined;
    maxEvents: number | undefined;
    checkIntervalMs: number;
  };
  aggregate: {
    /** Events per source recorded one by one per interval, beyond which they are counted. */
    perSourcePerInterval: number;
    intervalMs: number;
    maxSources: number;
  };
}

/**
 * Compiles the `audit:` section (after schema validation and secret
 * resolution; missing keys take their defaults, so `compileAudit(undefined)`
 * is the default configuration). Pure: reads no file, checks nothing the
 * schema checks.
 */
export function compileAudit(raw: Partial<RawAudit> | undefined): AuditSettings {
  const r = raw ?? {};
  const retention = r.retention ?? {
    check_interval: AUDIT_DEFAULTS.retention_check_interval,
    max_age: AUDIT_DEFAULTS.retention_max_age,
  };
  const maxAge = retention.max_age ?? AUDIT_DEFAULTS.retention_max_age;
  const aggregateIntervalMs = parseDuration(r.aggregate?.interval ?? AUDIT_DEFAULTS.aggregate_interval);
  const perSecond = parseRate(r.aggregate?.per_source_rate ?? AUDIT_DEFAULTS.aggregate_per_source_rate);
  return {
    enabled: r.enabled ?? AUDIT_DEFAULTS.enabled,
    sampleSuccess: r.sample_success ?? AUDIT_DEFAULTS.sample_success,
    sampleRoutes: { ...(r.sample_routes ?? {}) },
    flushIntervalMs: parseDuration(r.flush_interval ?? AUDIT_DEFAULTS.flush_interval),
    batchSize: r.batch_size ?? AUDIT_DEFAULTS.batch_size,
    maxQueue: r.max_queue ?? AUDIT_DEFAULTS.max_queue,
    overflow: r.overflow ?? AUDIT_DEFAULTS.overflow,
    checkpointEvery: r.checkpoint_every ?? AUDIT_DEFAULTS.checkpoint_every,
    checkpointIntervalMs: parseDuration(r.checkpoint_interval ?? AUDIT_DEFAULTS.checkpoint_interval),
    signingKey: r.signing_key,
    redactFields: [...(r.redact_fields ?? [])],
    shutdownTimeoutMs: parseDuration(r.shutdown_timeout ?? AUDIT_DEFAULTS.shutdown_timeout),
    jsonl: r.jsonl === undefined ? undefined : { path: r.jsonl.path },
    retention: {
      maxAgeMs: maxAge === 'forever' ? undefined : parseDuration(maxAge),
      maxEvents: retention.max_events,
      checkIntervalMs: parseDuration(retention.check_interval ?? AUDIT_DEFAULTS.retention_check_interval),
    },
    aggregate: {
      perSourcePerInterval: Math.max(1, Math.ceil((perSecond * aggregateIntervalMs) / 1000)),
      intervalMs: aggregateIntervalMs,
      maxSources: r.aggregate?.max_sources ?? AUDIT_DEFAULTS.aggregate_max_sources,
    },
  };
}

/** A problem in the `audit:` section, located by its path below `audit`. */
export interface AuditIssue {
  path: (string | number)[];
  message: string;
}

/**
 * What the schema cannot check, for the config loader: `issues` stop the
 * start, `warnings` are reported. Call it after secret resolution (the
 * signing key is parsed).
 */
export function checkAudit(
  raw: Partial<RawAudit> | undefined,
  context: { mode: 'development' | 'production'; routeNames: readonly string[] },
): { issues: AuditIssue[]; warnings: AuditIssue[] } {
  const issues: AuditIssue[] = [];
  const warnings: AuditIssue[] = [];
  const r = raw ?? {};
  if (r.enabled === false) {
    warnings.push({
      path: ['enabled'],
      message: 'the audit log is off: security decisions are not recorded',
    });
    return { issues, warnings };
  }
  if (r.signing_key !== undefined) {
    try {
      parseSigningKey(r.signing_key);
    } catch (err) {
      issues.push({
        path: ['signing_key'],
        message: `expected an Ed25519 private key: ${(err as Error).message}`,
      });
    }
  } else if (context.mode === 'production') {
    issues.push({
      path: ['signing_key'],
      message: 'expected signing_key: production needs it by reference, not a generated file',
    });
  }
  for (const name of Object.keys(r.sample_routes ?? {})) {
    if (!context.routeNames.includes(name)) {
      issues.push({
        path: ['sample_routes', name],
        message: `expected the name of a route (${context.routeNames.join(', ')}), got "${name}"`,
      });
    }
  }
  if (r.flush_interval !== undefined && parseDuration(r.flush_interval) === 0) {
    issues.push({ path: ['flush_interval'], message: 'expected a duration above 0' });
  }
  if (r.checkpoint_interval !== undefined && parseDuration(r.checkpoint_interval) === 0) {
    issues.push({ path: ['checkpoint_interval'], message: 'expected a duration above 0' });
  }
  if (r.retention?.check_interval !== undefined && parseDuration(r.retention.check_interval) === 0) {
    issues.push({ path: ['retention', 'check_interval'], message: 'expected a duration above 0' });
  }
  if (r.retention?.max_age !== undefined && parseDuration(r.retention.max_age) === 0) {
    issues.push({ path: ['retention', 'max_age'], message: 'expected a duration above 0' });
  }
  if (r.aggregate?.interval !== undefined && parseDuration(r.aggregate.interval) === 0) {
    issues.push({ path: ['aggregate', 'interval'], message: 'expected a duration above 0' });
  }
  if ((r.max_queue ?? AUDIT_DEFAULTS.max_queue) < (r.batch_size ?? AUDIT_DEFAULTS.batch_size)) {
    issues.push({ path: ['max_queue'], message: 'expected max_queue to be at least batch_size' });
  }
  return { issues, warnings };
}
