/**
 * The `audit:` section of the config (TypeBox, like `src/config/schema.ts`)
 * and its compiled form. Every key has a default, so the section may be left
 * out: auditing is on by default, in the store, with a generated signing key
 * on the embedded default.
 */
import { type Static, Type } from '@sinclair/typebox';
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
  batch_size: 500,
  max_queue: 50_000,
  overflow: 'drop',
  checkpoint_every: 1000,
  checkpoint_interval: '1m',
  shutdown_timeout: '10s',
  retention_check_interval: '10m',
} as const;

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
    max_age: Type.Optional(Duration('Events older than this are removed.')),
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
      'How long events are kept. Removal leaves a signed anchor, so the retained range still verifies. Default: kept forever.',
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
      description: 'Most events written in one transaction; a full batch is written at once.',
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
        'When the queue is full: drop (keep serving; lost events are counted, logged and alerted) or block (answer new requests 503 until it drains, so nothing goes unaudited).',
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
}

/**
 * Compiles the `audit:` section (after schema validation and secret
 * resolution; missing keys take their defaults, so `compileAudit(undefined)`
 * is the default configuration). Pure: reads no file, checks nothing the
 * schema checks.
 */
export function compileAudit(raw: Partial<RawAudit> | undefined): AuditSettings {
  const r = raw ?? {};
  const retention = r.retention ?? { check_interval: AUDIT_DEFAULTS.retention_check_interval };
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
      maxAgeMs: retention.max_age === undefined ? undefined : parseDuration(retention.max_age),
      maxEvents: retention.max_events,
      checkIntervalMs: parseDuration(retention.check_interval ?? AUDIT_DEFAULTS.retention_check_interval),
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
  if ((r.max_queue ?? AUDIT_DEFAULTS.max_queue) < (r.batch_size ?? AUDIT_DEFAULTS.batch_size)) {
    issues.push({ path: ['max_queue'], message: 'expected max_queue to be at least batch_size' });
  }
  return { issues, warnings };
}
