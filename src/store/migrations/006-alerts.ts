import type { Migration } from '../types.js';

/**
 * Alerts raised by anomaly detection, and temporary blocks (automatic or
 * made with `portcullis blocks add`). Times are ISO-8601 text (UTC), so they
 * sort and compare as strings on both databases.
 *
 * - `alerts.dedupe_key` is `detector|subject kind|subject id`: a finding
 *   whose key matches an alert seen within the cooldown adds to its `count`
 *   and `last_seen` instead of raising a new alert, on every instance.
 *   `evidence` and `delivery` (webhook name → outcome) are JSON text.
 * - `blocks` keeps lifted and expired rows as history; the active ones are
 *   `lifted_at is null and expires_at > now`. `alert_id` names the alert that
 *   caused an automatic block.
 */
export const alertsMigration: Migration = {
  version: 6,
  name: 'create-alerts',
  up: `create table alerts (
  id text primary key,
  dedupe_key text not null,
  detector text not null,
  severity text not null,
  subject_kind text not null,
  subject_id text not null,
  summary text not null,
  evidence text not null,
  first_seen text not null,
  last_seen text not null,
  count integer not null,
  delivery text not null
);
create index alerts_dedupe on alerts (dedupe_key, last_seen);
create index alerts_last_seen on alerts (last_seen);
create table blocks (
  id text primary key,
  subject_kind text not null,
  subject_id text not null,
  status integer not null,
  reason text not null,
  alert_id text,
  created_by text not null,
  created_at text not null,
  expires_at text not null,
  lifted_at text,
  lifted_by text
);
create index blocks_subject on blocks (subject_kind, subject_id);
create index blocks_expires_at on blocks (expires_at)`,
};
