/**
 * Config of OpenTelemetry export (`telemetry`): one span per request, sent
 * over OTLP/HTTP to a collector. Off by default.
 */
import { type Static, Type } from '@sinclair/typebox';
import { Duration, SecretRef, section } from '../config/schema-kit.js';
import { parseDuration } from '../util/units.js';

export const DEFAULT_TRACES_ENDPOINT = 'http://127.0.0.1:4318/v1/traces';

export const TracesSchema = section(
  {
    enabled: Type.Boolean({
      default: false,
      description:
        'Export one span per request (a SERVER span, and a CLIENT child span for the upstream call) over OTLP/HTTP JSON. Built after each request from its security event: the request path is not slowed, and a collector that is down or slow never affects requests.',
    }),
    endpoint: Type.String({
      default: DEFAULT_TRACES_ENDPOINT,
      description:
        'The collector’s OTLP/HTTP traces URL (http or https), e.g. http://otel-collector:4318/v1/traces.',
      expected: 'an http:// or https:// URL',
    }),
    headers: Type.Record(
      Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" }),
      Type.String({
        maxLength: 8192,
        description: 'A header value; give tokens by reference (${env:NAME} or ${file:PATH}).',
        secret: true,
      }),
      {
        default: {},
        description:
          'Headers sent with every export, e.g. authorization: ${env:OTEL_TOKEN}. Values are never logged; give tokens by reference.',
      },
    ),
    sample: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 1,
      description:
        'Share of traces exported, 0 to 1, decided from the trace id (so every instance keeps the same traces). A sampled flag from the caller’s traceparent, when the event carries it, is followed instead.',
    }),
    principal: Type.Union([Type.Literal('hashed'), Type.Literal('plain'), Type.Literal('omit')], {
      default: 'hashed',
      description:
        'How the principal id appears in spans (enduser.id): hashed (HMAC-SHA-256 with principal_salt, so the same caller can be followed without naming them), plain, or omit.',
    }),
    principal_salt: Type.Optional(
      SecretRef(
        'Key of the principal id hash. Give the same one to every instance so hashes agree across instances and restarts. Default: random at each start.',
      ),
    ),
    service_name: Type.String({
      minLength: 1,
      maxLength: 200,
      default: 'portcullis',
      description: 'service.name of the exported spans.',
    }),
    max_queue: Type.Integer({
      minimum: 1,
      maximum: 100000,
      default: 2048,
      description:
        'Spans waiting for export, at most; past it new spans are dropped (the collector is too slow or down).',
    }),
    timeout: Duration('Longest wait for one export to the collector.', '10s'),
  },
  'Traces: one span per request, exported over OTLP/HTTP.',
);

export const TelemetrySchema = section({ traces: TracesSchema }, 'OpenTelemetry export. Off by default.');

export type RawTelemetry = Static<typeof TelemetrySchema>;

/** The compiled `telemetry.traces` section. */
export interface TracesSettings {
  enabled: boolean;
  endpoint: string;
  /** Resolved values: may carry tokens, never logged. */
  headers: Readonly<Record<string, string>>;
  sample: number;
  principal: 'hashed' | 'plain' | 'omit';
  /** Resolved salt, or undefined for a random one per start. */
  principalSalt: string | undefined;
  serviceName: string;
  maxQueue: number;
  timeoutMs: number;
}

export interface TelemetrySettings {
  traces: TracesSettings;
}

/** A problem a schema cannot state, located by its path below the section. */
export interface SectionIssue {
  path: (string | number)[];
  message: string;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Compiles and checks the section (after secret references are resolved). */
export function compileTelemetry(raw: RawTelemetry | undefined): {
  settings: TelemetrySettings;
  issues: SectionIssue[];
  warnings: SectionIssue[];
} {
  const t = (raw?.traces ?? {}) as Partial<RawTelemetry['traces']>;
  const issues: SectionIssue[] = [];
  const warnings: SectionIssue[] = [];
  const endpoint = t.endpoint ?? DEFAULT_TRACES_ENDPOINT;
  const headers = t.headers ?? {};
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    issues.push({ path: ['traces', 'endpoint'], message: 'expected an http:// or https:// URL' });
  } else if (url.username !== '' || url.password !== '') {
    issues.push({
      path: ['traces', 'endpoint'],
      message: 'expected no credentials in the URL; give them in telemetry.traces.headers by reference',
    });
  } else if (
    t.enabled &&
    url.protocol === 'http:' &&
    !LOOPBACK.has(url.hostname) &&
    Object.keys(headers).length > 0
  ) {
    warnings.push({
      path: ['traces', 'endpoint'],
      message: 'the export headers are sent over plain HTTP to another machine; use https',
    });
  }
  return {
    settings: {
      traces: {
        enabled: t.enabled ?? false,
        endpoint,
        headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])),
        sample: t.sample ?? 1,
        principal: t.principal ?? 'hashed',
        principalSalt: t.principal_salt,
        serviceName: t.service_name ?? 'portcullis',
        maxQueue: t.max_queue ?? 2048,
        timeoutMs: parseDuration(t.timeout ?? '10s'),
      },
    },
    issues,
    warnings,
  };
}
