import type { Migration } from '../types.js';

/**
 * The tamper-evident audit log (`src/audit/`).
 *
 * - `audit_events` is append-only: `seq` is dense (1, 2, 3 …, allocated under
 *   a lock by the writer), and `hash` is SHA-256 over the event's canonical
 *   form and `prev_hash`, the hash of the event before it (see
 *   `src/audit/canonical.ts`, the contract `portcullis audit verify` checks).
 *   Times are ISO-8601 text (UTC), so they sort and compare as strings.
 *   `latency_ms` is stored rounded to the microsecond; `data` is JSON text.
 * - `audit_checkpoints` holds Ed25519 signatures over (seq, hash) made with a
 *   key that never enters the database. `kind` is `checkpoint` (the chain
 *   head at that moment) or `anchor` (the last event removed by retention, so
 *   the retained range can still be verified). Several instances may sign the
 *   same head at once: the primary key keeps one.
 */
export const auditMigration: Migration = {
  version: 5,
  name: 'create-audit',
  up: {
    sqlite: `create table audit_events (
  seq integer primary key,
  time text not null,
  type text not null,
  request_id text,
  trace_id text,
  principal_kind text,
  principal_id text,
  tenant text,
  client_ip text,
  method text,
  path text,
  route text,
  decision text,
  reason text,
  detail text,
  status integer,
  latency_ms real,
  action text,
  actor text,
  target text,
  data text,
  prev_hash text not null,
  hash text not null
);
create index audit_events_time on audit_events (time);
create index audit_events_principal on audit_events (principal_id, seq);
create table audit_checkpoints (
  kind text not null,
  seq integer not null,
  hash text not null,
  signature text not null,
  key_id text not null,
  created_at text not null,
  primary key (kind, seq)
)`,
    postgres: `create table audit_events (
  seq bigint primary key,
  time text not null,
  type text not null,
  request_id text,
  trace_id text,
  principal_kind text,
  principal_id text,
  tenant text,
  client_ip text,
  method text,
  path text,
  route text,
  decision text,
  reason text,
  detail text,
  status integer,
  latency_ms double precision,
  action text,
  actor text,
  target text,
  data text,
  prev_hash text not null,
  hash text not null
);
create index audit_events_time on audit_events (time);
create index audit_events_principal on audit_events (principal_id, seq);
create table audit_checkpoints (
  kind text not null,
  seq bigint not null,
  hash text not null,
  signature text not null,
  key_id text not null,
  created_at text not null,
  primary key (kind, seq)
)`,
  },
};
