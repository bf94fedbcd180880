/**
 * Security events: one per request when it completes, and one per
 * administrative act. The audit log, metrics and anomaly detection all
 * subscribe to the same stream, so every decision is seen once, in one shape.
 * Events never carry secrets: no tokens, keys, passwords or bodies.
 */

export type Decision = 'allow' | 'deny' | 'error';

export interface RequestEvent {
  type: 'request';
  /** ISO 8601 time the request arrived. */
  time: string;
  requestId: string;
  /** W3C trace id (32 hex), from `traceparent` or created. */
  traceId: string;
  /**
   * The `traceparent` the gateway sent upstream (the caller's, or one it
   * made), when the request got that far: traces read its parent span id
   * and sampled flag. Not part of the audit record.
   */
  traceparent?: string | undefined;
  clientIp: string;
  method: string;
  /** The canonical path (never the query string, which may carry secrets). */
  path: string;
  /** Route name, or undefined when no route matched. */
  route: string | undefined;
  principal: { kind: string; id: string; tenant: string | undefined } | undefined;
  decision: Decision;
  /** Stable code of the gateway's answer (`auth.invalid_credentials`, …) or `ok`. */
  reason: string;
  /** Internal detail for operators (never sent to the client; never a secret). */
  detail: string | undefined;
  status: number;
  /** Total time in the gateway, milliseconds. */
  latencyMs: number;
  /** Time spent waiting for the upstream, milliseconds, when it was called. */
  upstreamMs: number | undefined;
  /** When the upstream call began, milliseconds after the request arrived (traces). Not audited. */
  upstreamOffsetMs?: number | undefined;
  /**
   * Each stage that ran, with when it began (milliseconds after the request
   * arrived) and how long it took; only when traces are on. A stage that
   * failed has no duration. Not audited.
   */
  stages?: ReadonlyArray<StageTiming> | undefined;
  /** The stage that decided a denial (`authenticate`, `authorize`, …). */
  stage: string | undefined;
  /** Whether a shadow-mode rule would have denied this allowed request. */
  shadowDenials: readonly string[];
  /**
   * The object the request addressed: the route's path parameter values,
   * joined with `/`; undefined on routes without parameters. Anomaly
   * detection counts distinct ones (BOLA scraping).
   */
  objectId?: string | undefined;
  /**
   * A non-secret id of the credential that failed authentication (an API key
   * id, a token hash prefix), never the secret.
   */
  credentialId?: string | undefined;
}

/** One stage's run, for a trace span's events. */
export interface StageTiming {
  name: string;
  offsetMs: number;
  durationMs: number | undefined;
}

export interface AdminEvent {
  type: 'admin';
  time: string;
  /** `key.created`, `key.revoked`, `client.created`, `config.reloaded`, `alert.raised`, `block.added`, … */
  action: string;
  /** Who did it: `cli`, `admin-api`, `system`, or a principal id. */
  actor: string;
  /** What it was done to (a key id, client id, IP…). */
  target: string | undefined;
  detail: Readonly<Record<string, string | number | boolean>> | undefined;
}

export type SecurityEvent = RequestEvent | AdminEvent;

/** Something that receives events. Must never throw and must not block the request path. */
export interface EventSink {
  emit(event: SecurityEvent): void;
}

/** Fans events out to several sinks; a sink that throws is isolated from the others. */
export class EventBus implements EventSink {
  private sinks: EventSink[] = [];
  constructor(private readonly onError: (err: unknown) => void = () => {}) {}
  subscribe(sink: EventSink): () => void {
    this.sinks.push(sink);
    return () => {
      this.sinks = this.sinks.filter((s) => s !== sink);
    };
  }
  emit(event: SecurityEvent): void {
    for (const sink of this.sinks) {
      try {
        sink.emit(event);
      } catch (err) {
        this.onError(err);
      }
    }
  }
}
