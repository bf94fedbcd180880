/**
 * Config of anomaly detection (`anomaly`), alert delivery (`alerts`) and the
 * blocklist (`blocks`): three top-level sections, each optional, every field
 * with a documented default. The defaults are chosen so that ordinary traffic
 * raises nothing (tested with an hour of simulated mixed traffic) while the
 * attacks the detectors exist for are reported within a few dozen requests.
 */
import { type Static, Type } from '@sinclair/typebox';
import { SecretRef, section } from '../config/schema-kit.js';
import { parseDuration } from '../util/units.js';
import type { DetectorName, Severity } from './types.js';

export { SECRET_REF_PATTERN } from '../config/schema-kit.js';

/** A duration greater than zero: every window and interval here divides by it. */
const POSITIVE_DURATION = '^(?=\\d*[1-9])\\d+(ms|s|m|h|d)$';
const Duration = (description: string, dflt: string) =>
  Type.String({
    pattern: POSITIVE_DURATION,
    description,
    expected: 'a duration greater than zero such as 500ms, 10s, 5m, 2h or 90d',
    default: dflt,
  });

/** A rate such as `5/s`, `300/m` or `1000/h`, greater than zero. */
export const RATE_PATTERN = '^(?=[^/]*[1-9])(\\d+(?:\\.\\d+)?)/(s|m|h)$';
const Rate = (description: string, dflt: string) =>
  Type.String({
    pattern: RATE_PATTERN,
    description,
    expected: 'a rate greater than zero such as 5/s, 300/m or 1000/h',
    default: dflt,
  });

/** `"5/s"`, `"300/m"`, `"1000/h"` → requests per second. */
export function parseRate(text: string): number {
  const m = new RegExp(RATE_PATTERN).exec(text);
  if (!m) throw new Error(`not a rate: ${text}`);
  return Number(m[1]) / { s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h'];
}

const SeveritySchema = (dflt: Severity, description = 'Severity of the alerts: info, warning or critical.') =>
  Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('critical')], {
    default: dflt,
    description,
  });

const Count = (description: string, dflt: number, maximum = 1_000_000) =>
  Type.Integer({ minimum: 1, maximum, default: dflt, description });

const Enabled = (what: string) => Type.Boolean({ default: true, description: `Detect ${what}.` });

const BlockSchema = section(
  {
    enabled: Type.Boolean({
      default: false,
      description: 'Block the offending IP, API key or principal automatically when this detector fires.',
    }),
    for: Duration('How long the block lasts; `portcullis blocks lift` ends it earlier.', '15m'),
    status: Type.Union([Type.Literal(429), Type.Literal(403)], {
      default: 429,
      description: 'Status of the problem+json answer to a blocked source: 429 (with Retry-After) or 403.',
    }),
  },
  'Automatic response: a temporary block of the finding’s subject, audited, listed by `portcullis blocks list`.',
);

export const AnomalySchema = section(
  {
    enabled: Type.Boolean({ default: true, description: 'Run anomaly detection on every request.' }),
    max_sources: Count(
      'Most sources (IPs, API keys, principals) each detector tracks per table; the least recently seen is forgotten beyond it.',
      10_000,
    ),
    detectors: Type.Optional(
      section(
        {
          auth_failures: Type.Optional(
            section(
              {
                enabled: Enabled('bursts of failed authentication (credential stuffing, key guessing)'),
                threshold: Count('Failures from one IP, or against one credential, within the window.', 20),
                window: Duration('Window in which failures are counted.', '1m'),
                reasons: Type.Array(Type.String({ minLength: 1 }), {
                  default: ['auth.invalid_credentials', 'auth.locked_out'],
                  description:
                    'Error codes that count as failures. auth.locked_out keeps counting once the brute-force guard has stepped in.',
                }),
                severity: SeveritySchema('warning'),
                block: Type.Optional(BlockSchema),
              },
              'Credential stuffing from one IP, key guessing against one API key.',
            ),
          ),
          rate_spike: Type.Optional(
            section(
              {
                enabled: Enabled("a source's request rate jumping far above its own baseline"),
                factor: Type.Number({
                  minimum: 1.5,
                  maximum: 10_000,
                  default: 10,
                  description: 'How many times its baseline rate a source must reach.',
                }),
                min_rate: Rate('Rate below which nothing is a spike, whatever the baseline.', '5/s'),
                interval: Duration(
                  'Length of the intervals requests are counted in; a spike is reported within one.',
                  '10s',
                ),
                half_life: Duration('Half-life of the baseline (an EWMA of the per-interval rate).', '5m'),
                warmup: Duration('History a source needs before its baseline is trusted.', '1m'),
                severity: SeveritySchema('warning'),
                block: Type.Optional(BlockSchema),
              },
              'Request-rate spikes per IP, API key and principal, against each one’s own EWMA baseline.',
            ),
          ),
          enumeration: Type.Optional(
            section(
              {
                enabled: Enabled('high ratios of 403/404 answers (enumeration of ids or endpoints)'),
                ratio: Type.Number({
                  exclusiveMinimum: 0,
                  maximum: 1,
                  default: 0.5,
                  description: 'Share of answers with one of the statuses, within the window.',
                }),
                min_requests: Count('Requests within the window before the ratio counts.', 20),
                window: Duration('Window in which answers are counted.', '1m'),
                statuses: Type.Array(Type.Integer({ minimum: 400, maximum: 499 }), {
                  default: [403, 404],
                  minItems: 1,
                  description: 'Statuses that count as probes.',
                }),
                severity: SeveritySchema('warning'),
                block: Type.Optional(BlockSchema),
              },
              'Enumeration per IP, API key and principal: mostly 403 and 404 answers.',
            ),
          ),
          scraping: Type.Optional(
            section(
              {
                enabled: Enabled('many distinct object ids read by one principal (BOLA scraping)'),
                threshold: Count('Distinct object ids (per route) within the window.', 100, 10_000),
                window: Duration('Window in which ids are counted.', '1m'),
                severity: SeveritySchema('warning'),
                block: Type.Optional(BlockSchema),
              },
              'BOLA scraping per API key and principal (per IP when unauthenticated). Memory: two bitmaps of about threshold bytes per source.',
            ),
          ),
          injection: Type.Optional(
            section(
              {
                enabled: Enabled('repeated injection and validation rejections'),
                threshold: Count('Rejections from one IP or principal within the window.', 10),
                window: Duration('Window in which rejections are counted.', '1m'),
                reasons: Type.Array(Type.String({ minLength: 1 }), {
                  default: ['input.rejected', 'input.invalid'],
                  description: 'Error codes that count as rejections.',
                }),
                severity: SeveritySchema('warning'),
                block: Type.Optional(BlockSchema),
              },
              'Repeated injection attempts or invalid input per IP, API key and principal.',
            ),
          ),
          gateway_spike: Type.Optional(
            section(
              {
                enabled: Enabled('gateway-wide spikes in traffic and in upstream errors'),
                factor: Type.Number({
                  minimum: 1.5,
                  maximum: 10_000,
                  default: 5,
                  description: 'How many times its baseline the total request rate must reach.',
                }),
                min_rate: Rate('Total rate below which nothing is a spike.', '20/s'),
                interval: Duration('Length of the intervals requests are counted in.', '10s'),
                half_life: Duration('Half-life of the baseline.', '15m'),
                warmup: Duration('History needed before the baseline is trusted.', '5m'),
                error_ratio: Type.Number({
                  exclusiveMinimum: 0,
                  maximum: 1,
                  default: 0.25,
                  description:
                    'Share of upstream calls failing (unavailable, timeout, 5xx) within the error window.',
                }),
                min_upstream_requests: Count(
                  'Upstream calls within the error window before the ratio counts.',
                  20,
                ),
                error_window: Duration('Window in which upstream calls and errors are counted.', '1m'),
                severity: SeveritySchema('critical'),
              },
              'Spikes of the whole gateway: total traffic against its baseline, and the upstream error ratio.',
            ),
          ),
        },
        'The detectors and their thresholds.',
      ),
    ),
  },
  'Anomaly detection on the security event stream: findings become alerts and, where enabled, temporary blocks.',
);

export const WebhookSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9_-]+$', description: 'A name for logs, metrics and the CLI.' }),
    url: Type.Union(
      [
        SecretRef('The webhook URL, by reference.'),
        Type.String({ pattern: '^https?://[^\\s?#@]+$', description: 'The webhook URL.' }),
      ],
      {
        description:
          'Where alerts are POSTed. A URL that carries a token (Slack, most chat webhooks) must be given as ${env:NAME} or ${file:PATH}. Never logged.',
        expected: '${env:NAME}, ${file:PATH}, or an http(s):// URL without credentials or query',
      },
    ),
    format: Type.Union([Type.Literal('json'), Type.Literal('slack')], {
      default: 'json',
      description: 'Body: json (the alert as one JSON object) or slack (an incoming-webhook message).',
    }),
    min_severity: SeveritySchema(
      'warning',
      'Least severe alerts sent to this webhook: info, warning or critical.',
    ),
    token: Type.Optional(SecretRef('Sent as Authorization: Bearer, for receivers that require it.')),
  },
  { additionalProperties: false, description: 'A receiver of alerts.' },
);

export const AlertsSchema = section(
  {
    webhooks: Type.Array(WebhookSchema, { default: [], description: 'Where alerts are delivered.' }),
    cooldown: Duration(
      'Findings of the same detector about the same subject within this time of the last one add to that alert instead of raising a new one.',
      '10m',
    ),
    timeout: Duration('Time allowed for one delivery attempt.', '5s'),
    retry: Type.Optional(
      section(
        {
          attempts: Count('Delivery attempts per alert and webhook, the first included.', 5, 20),
          backoff: Duration('Wait before the first retry; it doubles on each one, with jitter.', '1s'),
          max_backoff: Duration('Longest wait between two attempts.', '5m'),
        },
        'Retries of failed deliveries (network errors, 408, 429 and 5xx).',
      ),
    ),
    queue_size: Count(
      'Deliveries waiting or being retried at most; beyond it the oldest is dropped (and counted).',
      1000,
      100_000,
    ),
    concurrency: Count('Deliveries in flight at once.', 4, 64),
  },
  'Alert delivery: deduplication, webhooks, retries.',
);

export const BlocksSchema = section(
  {
    refresh: Duration(
      'How often each instance reloads the blocklist from the store: a block added or lifted elsewhere (CLI, another instance) applies within this time.',
      '5s',
    ),
    max_entries: Count('Most active blocks held in memory (the latest-expiring are kept).', 100_000),
  },
  'Temporary blocks of IPs, API keys and principals (automatic or `portcullis blocks add`).',
);

export type RawAnomaly = Static<typeof AnomalySchema>;
export type RawAlerts = Static<typeof AlertsSchema>;
export type RawBlocks = Static<typeof BlocksSchema>;

/** What a detector does besides alerting. */
export interface BlockPolicy {
  durationMs: number;
  status: 403 | 429;
}

interface DetectorSettings {
  enabled: boolean;
  severity: Severity;
  /** Undefined when automatic blocking is off. */
  block: BlockPolicy | undefined;
}

/** Compiled `anomaly` section. */
export interface AnomalySettings {
  enabled: boolean;
  maxSources: number;
  detectors: {
    auth_failures: DetectorSettings & { threshold: number; windowMs: number; reasons: readonly string[] };
    rate_spike: DetectorSettings & {
      factor: number;
      minRatePerSecond: number;
      intervalMs: number;
      halfLifeMs: number;
      warmupMs: number;
    };
    enumeration: DetectorSettings & {
      ratio: number;
      minRequests: number;
      windowMs: number;
      statuses: readonly number[];
    };
    scraping: DetectorSettings & { threshold: number; windowMs: number };
    injection: DetectorSettings & { threshold: number; windowMs: number; reasons: readonly string[] };
    gateway_spike: Omit<DetectorSettings, 'block'> & {
      block: undefined;
      factor: number;
      minRatePerSecond: number;
      intervalMs: number;
      halfLifeMs: number;
      warmupMs: number;
      errorRatio: number;
      minUpstreamRequests: number;
      errorWindowMs: number;
    };
  };
}

/** Compiled webhook. `url` and `token` are secrets: never log them. */
export interface WebhookSettings {
  name: string;
  url: string;
  format: 'json' | 'slack';
  minSeverity: Severity;
  token: string | undefined;
}

/** Compiled `alerts` section. */
export interface AlertSettings {
  webhooks: readonly WebhookSettings[];
  cooldownMs: number;
  timeoutMs: number;
  retry: { attempts: number; backoffMs: number; maxBackoffMs: number };
  queueSize: number;
  concurrency: number;
}

/** Compiled `blocks` section. */
export interface BlockSettings {
  refreshMs: number;
  maxEntries: number;
}

/** A problem a schema cannot state, located by its path below the section. */
export interface SectionIssue {
  path: (string | number)[];
  message: string;
}

type RawBlock = Static<typeof BlockSchema>;

function block(raw: RawBlock | undefined): BlockPolicy | undefined {
  if (raw === undefined || !raw.enabled) return undefined;
  return { durationMs: parseDuration(raw.for), status: raw.status };
}

/** The parsed defaults, for a section left out of the file (or `{}`). */
function withDefaults<T>(raw: T | undefined): T {
  return (raw ?? {}) as T;
}

/**
 * Compiles a validated `anomaly` section (defaults applied by the validator).
 * Pure: same input, same output.
 */
export function compileAnomaly(raw: RawAnomaly): AnomalySettings {
  const d = raw.detectors!;
  const af = d.auth_failures!;
  const rs = d.rate_spike!;
  const en = d.enumeration!;
  const sc = d.scraping!;
  const inj = d.injection!;
  const gs = d.gateway_spike!;
  return {
    enabled: raw.enabled,
    maxSources: raw.max_sources,
    detectors: {
      auth_failures: {
        enabled: af.enabled,
        severity: af.severity,
        block: block(af.block),
        threshold: af.threshold,
        windowMs: parseDuration(af.window),
        reasons: [...af.reasons],
      },
      rate_spike: {
        enabled: rs.enabled,
        severity: rs.severity,
        block: block(rs.block),
        factor: rs.factor,
        minRatePerSecond: parseRate(rs.min_rate),
        intervalMs: parseDuration(rs.interval),
        halfLifeMs: parseDuration(rs.half_life),
        warmupMs: parseDuration(rs.warmup),
      },
      enumeration: {
        enabled: en.enabled,
        severity: en.severity,
        block: block(en.block),
        ratio: en.ratio,
        minRequests: en.min_requests,
        windowMs: parseDuration(en.window),
        statuses: [...en.statuses],
      },
      scraping: {
        enabled: sc.enabled,
        severity: sc.severity,
        block: block(sc.block),
        threshold: sc.threshold,
        windowMs: parseDuration(sc.window),
      },
      injection: {
        enabled: inj.enabled,
        severity: inj.severity,
        block: block(inj.block),
        threshold: inj.threshold,
        windowMs: parseDuration(inj.window),
        reasons: [...inj.reasons],
      },
      gateway_spike: {
        enabled: gs.enabled,
        severity: gs.severity,
        block: undefined,
        factor: gs.factor,
        minRatePerSecond: parseRate(gs.min_rate),
        intervalMs: parseDuration(gs.interval),
        halfLifeMs: parseDuration(gs.half_life),
        warmupMs: parseDuration(gs.warmup),
        errorRatio: gs.error_ratio,
        minUpstreamRequests: gs.min_upstream_requests,
        errorWindowMs: parseDuration(gs.error_window),
      },
    },
  };
}

/**
 * Compiles a validated `alerts` section whose secret references are already
 * resolved. Returns the problems a schema cannot state (duplicate webhook
 * names, a reference that resolved to something other than an http(s) URL);
 * their messages never contain the URL.
 */
export function compileAlerts(raw: RawAlerts): { settings: AlertSettings; issues: SectionIssue[] } {
  const issues: SectionIssue[] = [];
  const names = new Set<string>();
  const webhooks = withDefaults(raw.webhooks).map((w, i): WebhookSettings => {
    if (names.has(w.name))
      issues.push({ path: ['webhooks', i, 'name'], message: `"${w.name}" is used twice` });
    names.add(w.name);
    let url: URL | undefined;
    try {
      url = new URL(w.url);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      issues.push({
        path: ['webhooks', i, 'url'],
        message: 'expected the reference to hold an http(s):// URL',
      });
    } else if (url.username !== '' || url.password !== '') {
      issues.push({
        path: ['webhooks', i, 'url'],
        message: 'expected a URL without user:password; use token for credentials',
      });
    }
    return { name: w.name, url: w.url, format: w.format, minSeverity: w.min_severity, token: w.token };
  });
  const retry = raw.retry!;
  const backoffMs = parseDuration(retry.backoff);
  const maxBackoffMs = parseDuration(retry.max_backoff);
  if (maxBackoffMs < backoffMs) {
    issues.push({ path: ['retry', 'max_backoff'], message: 'expected at least the first backoff' });
  }
  return {
    settings: {
      webhooks,
      cooldownMs: parseDuration(raw.cooldown),
      timeoutMs: parseDuration(raw.timeout),
      retry: { attempts: retry.attempts, backoffMs, maxBackoffMs },
      queueSize: raw.queue_size,
      concurrency: raw.concurrency,
    },
    issues,
  };
}

/** Compiles a validated `blocks` section. */
export function compileBlocks(raw: RawBlocks): BlockSettings {
  return { refreshMs: parseDuration(raw.refresh), maxEntries: raw.max_entries };
}

/** The automatic-block policy of each detector that has one. */
export function blockPolicies(settings: AnomalySettings): Partial<Record<DetectorName, BlockPolicy>> {
  const out: Partial<Record<DetectorName, BlockPolicy>> = {};
  for (const [name, d] of Object.entries(settings.detectors) as [DetectorName, DetectorSettings][]) {
    if (d.block !== undefined) out[name] = d.block;
  }
  return out;
}
