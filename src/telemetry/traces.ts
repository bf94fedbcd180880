/**
 * OpenTelemetry traces: one SERVER span per request, and a CLIENT child span
 * for the upstream call, exported over OTLP/HTTP (JSON) with the official
 * exporter and batch processor.
 *
 * The spans are built after the fact from the request's security event
 * (src/events/types.ts), with explicit start and end times: nothing is added
 * to the request path, and a collector that is slow or down never affects a
 * request (a bounded queue; spans past it are dropped; export failures are
 * logged at most once a minute).
 *
 * What a span carries is what the event carries, and the event never holds a
 * secret: the route name, never the raw path or the query string; no header;
 * the principal id hashed unless configured otherwise.
 *
 * Trace context: the span's trace id is the one the gateway sent upstream in
 * `traceparent`. When the gateway started the trace itself, the parent id it
 * sent upstream is the trace id's first 16 hex digits; the CLIENT span takes
 * that id, so the upstream's spans hang under it. When the caller sent a
 * `traceparent`, the gateway passes it upstream unchanged: the upstream's
 * spans are then siblings of the gateway's, not children.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { type Attributes, type SpanContext, SpanKind, SpanStatusCode, TraceFlags } from '@opentelemetry/api';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
  type TimedEvent,
} from '@opentelemetry/sdk-trace-base';
import type { EventSink, RequestEvent, SecurityEvent } from '../events/types.js';
import type { Logger } from '../log.js';
import { traceIdOf } from '../stages/proxy/index.js';
import type { TracesSettings } from './schema.js';

/** A request event, possibly with the `traceparent` the gateway sent upstream (a parent id and sampled flag). */
export type TracedRequestEvent = RequestEvent & { traceparent?: string | undefined };

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const SCOPE = { name: 'portcullis' };
const ERROR_LOG_INTERVAL_MS = 60_000;
const KNOWN_METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
]);

export interface TraceSinkOptions {
  /** Export to this instead of OTLP/HTTP (benchmarks). */
  exporter?: SpanExporter;
  /** Batch delay, milliseconds (default 1000; tests use less). */
  scheduledDelayMs?: number;
}

export interface TraceSink extends EventSink {
  /** Exports what is queued; resolves within `timeoutMs` even if the collector does not answer. */
  flush(timeoutMs?: number): Promise<void>;
  /** Flushes and stops; later events are ignored. */
  close(timeoutMs?: number): Promise<void>;
}

/** Milliseconds since the epoch as OpenTelemetry's [seconds, nanoseconds]. */
function hrTime(ms: number): [number, number] {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/** 16 hex digits of randomness, from a pool refilled in bulk (one syscall per 512 ids). */
function spanIds(): () => string {
  let pool = randomBytes(4096);
  let at = 0;
  return () => {
    if (at + 8 > pool.length) {
      pool = randomBytes(4096);
      at = 0;
    }
    const id = pool.toString('hex', at, at + 8);
    at += 8;
    return id === '0000000000000000' ? '0000000000000001' : id;
  };
}

const DEFAULT_ROUTE_NAME = /^[A-Z]+(?:,[A-Z]+)* (\/.*)$/;

/**
 * `METHOD route`: the route's path template when the route has its default
 * name (`GET,POST /orders/{id}`), else its name; the method alone when no
 * route matched. Never the request's own path (it may carry ids, and
 * unmatched paths are scanners' noise).
 */
export function spanName(method: string, route: string | undefined): string {
  if (route === undefined) return method;
  const m = DEFAULT_ROUTE_NAME.exec(route);
  return `${method} ${m ? m[1] : route}`;
}

/** Whether the trace is kept at `ratio`, decided from the trace id's random low bits. */
export function sampledByRatio(traceId: string, ratio: number): boolean {
  if (ratio >= 1) return true;
  if (ratio <= 0) return false;
  return Number.parseInt(traceId.slice(-13), 16) / 2 ** 52 < ratio;
}

/** Wraps an exporter so that its failures are logged, at most once per interval, without detail that could carry a header. */
class ReportingExporter implements SpanExporter {
  private lastLogged = 0;
  private failedSince = 0;
  constructor(
    private readonly inner: SpanExporter,
    private readonly logger: Logger,
    private readonly endpoint: string,
  ) {}
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) {
        this.failedSince += spans.length;
        const now = Date.now();
        if (now - this.lastLogged >= ERROR_LOG_INTERVAL_MS) {
          this.lastLogged = now;
          this.logger.warn(
            {
              endpoint: this.endpoint,
              spansLost: this.failedSince,
              error: (result.error?.message ?? 'unknown').slice(0, 200),
            },
            'trace export to the collector failed (logged at most once a minute)',
          );
          this.failedSince = 0;
        }
      }
      done(result);
    });
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

function within(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Creates the sink; subscribe it to the gateway's event bus. */
export function createTraceSink(
  settings: TracesSettings,
  logger: Logger,
  options: TraceSinkOptions = {},
): TraceSink {
  const exporter =
    options.exporter ??
    new OTLPTraceExporter({
      url: settings.endpoint,
      headers: { ...settings.headers },
      timeoutMillis: settings.timeoutMs,
    });
  const processor = new BatchSpanProcessor(new ReportingExporter(exporter, logger, settings.endpoint), {
    maxQueueSize: settings.maxQueue,
    maxExportBatchSize: Math.min(512, settings.maxQueue),
    scheduledDelayMillis: options.scheduledDelayMs ?? 1000,
    exportTimeoutMillis: settings.timeoutMs,
  });
  const resource = resourceFromAttributes({ 'service.name': settings.serviceName });
  const salt = settings.principalSalt ?? randomBytes(32).toString('hex');
  const nextId = spanIds();
  let closed = false;

  // Principals repeat: their hashes are kept (an HMAC costs about 3 µs), up to 10,000 at a time.
  const hashes = new Map<string, string>();
  const principalId = (p: NonNullable<RequestEvent['principal']>): string | undefined => {
    if (settings.principal === 'omit') return undefined;
    if (settings.principal === 'plain') return p.id;
    const input = `${p.kind}:${p.id}`;
    let hash = hashes.get(input);
    if (hash === undefined) {
      hash = createHmac('sha256', salt).update(input).digest('hex').slice(0, 32);
      if (hashes.size >= 10_000) hashes.clear();
      hashes.set(input, hash);
    }
    return hash;
  };

  const span = (
    name: string,
    kind: SpanKind,
    context: SpanContext,
    parent: SpanContext | undefined,
    startMs: number,
    endMs: number,
    attributes: Attributes,
    error: string | undefined,
    events: TimedEvent[] = [],
  ): ReadableSpan => {
    const startTime = hrTime(startMs);
    const endTime = hrTime(endMs);
    return {
      name,
      kind,
      spanContext: () => context,
      parentSpanContext: parent,
      startTime,
      endTime,
      duration: hrTime(endMs - startMs),
      status:
        error === undefined ? { code: SpanStatusCode.UNSET } : { code: SpanStatusCode.ERROR, message: error },
      attributes,
      links: [],
      events,
      ended: true,
      resource,
      instrumentationScope: SCOPE,
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0,
    };
  };

  const emit = (event: SecurityEvent): void => {
    if (closed || event.type !== 'request') return;
    const e = event as TracedRequestEvent;
    // A method the HTTP spec does not know is `_OTHER` (semantic conventions): the caller chooses it.
    const method = KNOWN_METHODS.has(e.method) ? e.method : '_OTHER';
    const traceId = e.traceId;
    const sent = e.traceparent === undefined ? null : TRACEPARENT.exec(e.traceparent);
    // The gateway started this trace itself: no caller span to hang under.
    const ownTrace =
      sent === null ? traceIdOf(undefined, e.requestId) === traceId : sent[2] === traceId.slice(0, 16);
    const parent: SpanContext | undefined =
      sent !== null && !ownTrace
        ? { traceId, spanId: sent[2]!, traceFlags: Number.parseInt(sent[3]!, 16) & 1, isRemote: true }
        : undefined;
    const sampled =
      parent !== undefined
        ? parent.traceFlags === TraceFlags.SAMPLED
        : sampledByRatio(traceId, settings.sample);
    if (!sampled) return;

    const startMs = Date.parse(e.time);
    const endMs = startMs + e.latencyMs;
    const server: SpanContext = { traceId, spanId: nextId(), traceFlags: TraceFlags.SAMPLED };
    const attributes: Attributes = {
      'http.request.method': method,
      'portcullis.decision': e.decision,
      'portcullis.reason': e.reason,
      'portcullis.request_id': e.requestId,
    };
    if (e.route !== undefined) attributes['portcullis.route'] = e.route;
    if (e.status !== 0) attributes['http.response.status_code'] = e.status;
    if (e.stage !== undefined) attributes['portcullis.stage'] = e.stage;
    if (e.principal !== undefined) {
      attributes['portcullis.principal.kind'] = e.principal.kind;
      const id = principalId(e.principal);
      if (id !== undefined) attributes['enduser.id'] = id;
    }
    if (e.shadowDenials.length > 0) attributes['portcullis.shadow_denials'] = [...e.shadowDenials];
    const error = e.decision === 'error' ? e.reason : undefined;
    if (error !== undefined) attributes['error.type'] = e.reason;
    const name = spanName(method, e.route);
    // Each stage as an event at its start, with its duration (none for the stage that failed).
    const stages: TimedEvent[] = [];
    for (const s of e.stages ?? []) {
      stages.push({
        name: `stage ${s.name}`,
        time: hrTime(startMs + s.offsetMs),
        attributes:
          s.durationMs === undefined
            ? { 'portcullis.stage': s.name, 'portcullis.stage.failed': true }
            : { 'portcullis.stage': s.name, 'portcullis.stage.duration_ms': s.durationMs },
        droppedAttributesCount: 0,
      });
    }
    processor.onEnd(span(name, SpanKind.SERVER, server, parent, startMs, endMs, attributes, error, stages));

    if (e.upstreamMs !== undefined) {
      // From when the upstream call began to its response head. Without the start (an event
      // from elsewhere), it is placed to end with the request.
      const clientStart =
        e.upstreamOffsetMs === undefined
          ? Math.max(startMs, endMs - e.upstreamMs)
          : startMs + e.upstreamOffsetMs;
      const clientEnd = e.upstreamOffsetMs === undefined ? endMs : clientStart + e.upstreamMs;
      const client: SpanContext = {
        traceId,
        // The parent id the gateway sent upstream, when it started the trace.
        spanId: ownTrace ? traceId.slice(0, 16) : nextId(),
        traceFlags: TraceFlags.SAMPLED,
      };
      const clientAttributes: Attributes = { 'http.request.method': method };
      if (e.route !== undefined) clientAttributes['portcullis.route'] = e.route;
      if (e.status !== 0) clientAttributes['http.response.status_code'] = e.status;
      processor.onEnd(
        span(method, SpanKind.CLIENT, client, server, clientStart, clientEnd, clientAttributes, undefined),
      );
    }
  };

  return {
    emit,
    flush(timeoutMs = 5000) {
      return within(processor.forceFlush(), timeoutMs);
    },
    close(timeoutMs = 5000) {
      if (closed) return Promise.resolve();
      closed = true;
      return within(processor.shutdown(), timeoutMs);
    },
  };
}
