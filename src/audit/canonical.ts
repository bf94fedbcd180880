/**
 * The stored form of an audit event and its hash: the contract between the
 * writer and `portcullis audit verify`. Change nothing here without a new
 * version string: every stored hash depends on it.
 *
 * ## Canonical form (version `portcullis.audit.v1`)
 *
 * The hash of the event at `seq` is the lower-case hex SHA-256 of the UTF-8
 * bytes of the JSON array
 *
 * ```
 * ["portcullis.audit.v1", seq, time, type, request_id, trace_id,
 *  principal_kind, principal_id, tenant, client_ip, method, path, route,
 *  decision, reason, detail, status, latency_ms, action, actor, target, data,
 *  prev_hash]
 * ```
 *
 * serialised by ECMAScript `JSON.stringify` (ES2019 or later: no whitespace,
 * strings escaped as it escapes them, integers in decimal), where
 * - every element is the column of the same name in `audit_events`, a string
 *   or `null`, except `seq` and `status`, JSON integers (`status` may be `null`);
 * - `latency_ms` is the stored number formatted with exactly three decimals
 *   (`Number#toFixed(3)`, e.g. `"12.500"`) or `null`, so the hash does not
 *   depend on how a database prints a floating-point value;
 * - `data` is the stored JSON text itself, as a string;
 * - `prev_hash` is the hash of the event at `seq - 1`; for the first event
 *   ever written it is 64 zeros ({@link GENESIS_HASH}).
 *
 * Because `seq` is inside the hash, moving an event to another position
 * breaks its hash as surely as editing it; because `prev_hash` is, removing
 * or inserting one breaks the next event's link.
 *
 * Strings are made storable before hashing (see {@link toStorableText}):
 * lone UTF-16 surrogates and NUL become U+FFFD, since PostgreSQL would change
 * or refuse them and the stored value must be the hashed one.
 */
import { hash } from 'node:crypto';
import type { SecurityEvent } from '../events/types.js';
import { REDACTED, type Redact } from './redact.js';

/** Identifies this canonical form; part of every hash. */
export const CANONICAL_VERSION = 'portcullis.audit.v1';

/** The `prev_hash` of the first event ever written. */
export const GENESIS_HASH = '0'.repeat(64);

/** The columns of `audit_events` that describe an event (all but seq, prev_hash and hash), in hash order. */
export const CONTENT_FIELDS = [
  'time',
  'type',
  'request_id',
  'trace_id',
  'principal_kind',
  'principal_id',
  'tenant',
  'client_ip',
  'method',
  'path',
  'route',
  'decision',
  'reason',
  'detail',
  'status',
  'latency_ms',
  'action',
  'actor',
  'target',
  'data',
] as const;

/** Every column of `audit_events`, in table order. */
export const RECORD_FIELDS = ['seq', ...CONTENT_FIELDS, 'prev_hash', 'hash'] as const;

/** What an event says, as stored: one value per column of `audit_events` but seq and the hashes. */
export interface AuditContent {
  time: string;
  /** `request` or `admin`. */
  type: string;
  request_id: string | null;
  trace_id: string | null;
  principal_kind: string | null;
  principal_id: string | null;
  tenant: string | null;
  client_ip: string | null;
  method: string | null;
  path: string | null;
  route: string | null;
  /** `allow`, `deny` or `error`; null for admin events. */
  decision: string | null;
  reason: string | null;
  detail: string | null;
  status: number | null;
  latency_ms: number | null;
  action: string | null;
  actor: string | null;
  target: string | null;
  /**
   * JSON text (keys sorted): a request's `stage`, `upstream_ms`, `object_id`,
   * `credential_id` and `shadow_denials` when set, or an admin event's detail.
   */
  data: string | null;
}

/** One row of `audit_events`. */
export interface AuditRecord extends AuditContent {
  seq: number;
  prev_hash: string;
  hash: string;
}

/** Longest stored value per field, in UTF-16 code units; longer values are cut, then hashed. */
const MAX_LENGTH: Partial<Record<keyof AuditContent, number>> = {
  path: 2048,
  detail: 1024,
  data: 4096,
  target: 512,
};
const DEFAULT_MAX_LENGTH = 256;

const UNSTORABLE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]|\0/g;
/** Any surrogate or NUL: a string without one (nearly all) needs no replacing pass. */
const MAYBE_UNSTORABLE = /[\uD800-\uDFFF\0]/;

/**
 * The string as it can be stored identically on SQLite and PostgreSQL:
 * unpaired surrogates and NUL replaced by U+FFFD, cut to `max` code units
 * (never inside a surrogate pair).
 */
export function toStorableText(text: string, max: number): string {
  // The plain test skips the lookaround pass for the usual string with no surrogate or NUL at all.
  let out = MAYBE_UNSTORABLE.test(text) ? text.replace(UNSTORABLE, '\uFFFD') : text;
  if (out.length > max) {
    const code = out.charCodeAt(max - 1);
    out = out.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
  }
  return out;
}

function text(field: keyof AuditContent, value: string | undefined | null): string | null {
  if (value === undefined || value === null) return null;
  return toStorableText(String(value), MAX_LENGTH[field] ?? DEFAULT_MAX_LENGTH);
}

function scrubbed(field: keyof AuditContent, value: string | undefined, redact: Redact): string | null {
  if (value === undefined) return null;
  // Cut before scrubbing, to bound the scrubber's work; then again after, as replacements may lengthen.
  const max = MAX_LENGTH[field] ?? DEFAULT_MAX_LENGTH;
  return text(field, redact(toStorableText(value, max * 2)));
}

/** The JSON of a flat object with its keys sorted, so equal data always reads the same. */
function sortedJson(value: Readonly<Record<string, unknown>>): string {
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) sorted[key] = value[key];
  return JSON.stringify(sorted);
}

/** How a security event is turned into stored content. */
export interface ContentOptions {
  /** Scrubs free text (details). */
  redact: Redact;
  /** Scrubs request paths. */
  redactPath: Redact;
  /** Whether an admin detail key names a secret, whose value is then left out entirely. */
  isSensitive: (name: string) => boolean;
}

/**
 * The content stored for an event: free text scrubbed of anything that looks
 * like a secret, strings made storable and cut to their maximum length.
 */
export function toAuditContent(event: SecurityEvent, options: ContentOptions): AuditContent {
  const { redact } = options;
  if (event.type === 'request') {
    // Keys inserted in sorted order, so JSON.stringify gives what sortedJson would,
    // without its key list, sort and copy (every allowed request has upstream_ms).
    const data: Record<string, unknown> = {};
    let empty = true;
    if (event.credentialId !== undefined) {
      data.credential_id = text('data', redact(event.credentialId));
      empty = false;
    }
    if (event.objectId !== undefined) {
      data.object_id = text('data', options.redactPath(event.objectId));
      empty = false;
    }
    if (event.shadowDenials.length > 0) {
      data.shadow_denials = event.shadowDenials.slice(0, 32).map((d) => text('reason', redact(d)));
      empty = false;
    }
    if (event.stage !== undefined) {
      data.stage = text('data', event.stage);
      empty = false;
    }
    if (event.upstreamMs !== undefined && Number.isFinite(event.upstreamMs)) {
      data.upstream_ms = Math.round(event.upstreamMs * 1000) / 1000;
      empty = false;
    }
    const latency = Number.isFinite(event.latencyMs) ? Math.max(0, event.latencyMs) : 0;
    return {
      time: text('time', event.time) ?? '',
      type: 'request',
      request_id: text('request_id', event.requestId),
      trace_id: text('trace_id', event.traceId),
      principal_kind: text('principal_kind', event.principal?.kind),
      principal_id: text('principal_id', event.principal?.id),
      tenant: text('tenant', event.principal?.tenant),
      client_ip: text('client_ip', event.clientIp),
      method: text('method', event.method),
      path: scrubbed('path', event.path, options.redactPath),
      route: text('route', event.route),
      decision: text('decision', event.decision),
      reason: scrubbed('reason', event.reason, redact),
      detail: scrubbed('detail', event.detail, redact),
      status: Number.isSafeInteger(event.status) ? event.status : null,
      latency_ms: Math.round(latency * 1000) / 1000,
      action: null,
      actor: null,
      target: null,
      data: empty ? null : text('data', JSON.stringify(data)),
    };
  }
  let data: string | null = null;
  if (event.detail !== undefined) {
    const clean: Record<string, string | number | boolean> = {};
    for (const [key, value] of Object.entries(event.detail)) {
      clean[key] = options.isSensitive(key)
        ? REDACTED
        : typeof value === 'string'
          ? (scrubbed('detail', value, redact) ?? '')
          : value;
    }
    data = text('data', sortedJson(clean));
  }
  return {
    time: text('time', event.time) ?? '',
    type: 'admin',
    request_id: null,
    trace_id: null,
    principal_kind: null,
    principal_id: null,
    tenant: null,
    client_ip: null,
    method: null,
    path: null,
    route: null,
    decision: null,
    reason: null,
    detail: null,
    status: null,
    latency_ms: null,
    action: text('action', event.action),
    actor: scrubbed('actor', event.actor, redact),
    target: scrubbed('target', event.target, redact),
    data,
  };
}

const nullableString = (value: unknown): string | null =>
  value === null || value === undefined ? null : String(value);

const nullableInteger = (value: unknown): number | null =>
  value === null || value === undefined ? null : Number(value);

/**
 * The canonical serialisation hashed for the event at `seq` whose
 * predecessor's hash is `prevHash`. Takes values as a database returns them
 * (numbers may come back as strings or BigInts and are normalised).
 */
export function canonicalEvent(seq: number, content: Readonly<AuditContent>, prevHash: string): string {
  const latency = content.latency_ms === null ? null : Number(content.latency_ms).toFixed(3);
  return JSON.stringify([
    CANONICAL_VERSION,
    Number(seq),
    String(content.time),
    String(content.type),
    nullableString(content.request_id),
    nullableString(content.trace_id),
    nullableString(content.principal_kind),
    nullableString(content.principal_id),
    nullableString(content.tenant),
    nullableString(content.client_ip),
    nullableString(content.method),
    nullableString(content.path),
    nullableString(content.route),
    nullableString(content.decision),
    nullableString(content.reason),
    nullableString(content.detail),
    nullableInteger(content.status),
    latency,
    nullableString(content.action),
    nullableString(content.actor),
    nullableString(content.target),
    nullableString(content.data),
    String(prevHash),
  ]);
}

/** SHA-256 (hex) of {@link canonicalEvent}. */
export function hashEvent(seq: number, content: Readonly<AuditContent>, prevHash: string): string {
  // One-shot `crypto.hash` (same digest): no Hash object per event, about 0.5 µs less each.
  return hash('sha256', canonicalEvent(seq, content, prevHash), 'hex');
}

/** The record with its number normalised as the driver may return them (bigint, string). */
export function normaliseRecord(row: Record<string, unknown>): AuditRecord {
  const record = {} as Record<string, unknown>;
  for (const field of RECORD_FIELDS) record[field] = row[field] ?? null;
  record.seq = Number(row.seq);
  record.status = nullableInteger(row.status);
  record.latency_ms = row.latency_ms === null || row.latency_ms === undefined ? null : Number(row.latency_ms);
  return record as unknown as AuditRecord;
}
