import type { Migration } from '../types.js';

/**
 * Drops `audit_events_principal` (`principal_id, seq`), created by migration 5.
 *
 * No query used it: the audit search by principal matches `principal_id` or
 * `actor` (an admin event's actor is a principal too), and an `or` whose
 * `actor` side has no index cannot be answered from it, on SQLite nor on
 * PostgreSQL. Both planners walk the primary key backwards from the newest
 * event and stop at the requested number of matches, with or without the
 * index. Yet every event written paid for it: one more B-tree entry, and more
 * pages for each commit to write (about 1–2 µs of the writer's CPU per
 * event on SQLite, measured with the bench's allowed request).
 * `audit_events_time` stays: time-bounded searches and retention use it.
 */
export const auditPrincipalIndexMigration: Migration = {
  version: 10,
  name: 'drop-audit-principal-index',
  up: 'drop index if exists audit_events_principal',
};
