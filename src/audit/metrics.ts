/**
 * Prometheus metrics of the audit log, read from its counters when scraped:
 * nothing is added to the request path.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AuditLog, AuditStats } from './audit-log.js';

/**
 * Registers the audit metrics on `registry`, reading `current()` at each
 * scrape (a function, so a reload that replaces the audit log keeps the
 * metrics). Counters restart from 0 with a new audit log, which Prometheus
 * treats as a counter reset.
 */
export function registerAuditMetrics(registry: Registry, current: () => AuditLog | undefined): void {
  const counter = (name: string, help: string, field: keyof AuditStats) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(current()?.stats[field] ?? 0);
      },
    });
  counter('portcullis_audit_events_written_total', 'Audit events committed to the store.', 'written');
  counter(
    'portcullis_audit_events_dropped_total',
    'Audit events lost: queue overflow, or unwritten at shutdown.',
    'dropped',
  );
  counter(
    'portcullis_audit_events_sampled_out_total',
    'Allowed requests left out of the audit log by sampling.',
    'sampledOut',
  );
  counter(
    'portcullis_audit_write_failures_total',
    'Audit batches the store refused (retried).',
    'writeFailures',
  );
  counter('portcullis_audit_checkpoints_total', 'Audit checkpoints signed by this instance.', 'checkpoints');
  counter(
    'portcullis_audit_events_aggregated_total',
    'Unauthenticated denials and unrouted requests counted in a per-source aggregate event instead of one event each.',
    'aggregated',
  );
  counter(
    'portcullis_audit_aggregate_events_total',
    'Aggregate audit events (audit.denials_aggregated) queued.',
    'aggregates',
  );
  counter(
    'portcullis_audit_back_pressure_total',
    'Requests answered 503 because the audit queue was full (no priority event is dropped instead).',
    'backPressure',
  );
  counter(
    'portcullis_audit_checkpoint_file_failures_total',
    'Audit checkpoints not kept in the checkpoint file outside the store (write failed, or the file names a checkpoint the store lacks).',
    'checkpointFileFailures',
  );
  new Gauge({
    name: 'portcullis_audit_queue_events',
    help: 'Audit events waiting in memory to be written.',
    registers: [registry],
    collect() {
      this.set(current()?.stats.queued ?? 0);
    },
  });
}
