/**
 * The tamper-evident audit log: an event sink that writes every security
 * decision and administrative act to the store in a hash chain with signed
 * checkpoints, streams it as JSON lines, and verifies it.
 */
export {
  type AuditLog,
  type AuditLogger,
  type AuditLogOptions,
  type AuditStats,
  createAuditLog,
  recordAdminEvent,
  sampleFraction,
} from './audit-log.js';
export {
  type AuditContent,
  type AuditRecord,
  CANONICAL_VERSION,
  canonicalEvent,
  GENESIS_HASH,
  hashEvent,
  toAuditContent,
} from './canonical.js';
export { type AuditCommandIo, runAuditCommand } from './cli.js';
export { type JsonlSink, openJsonlSink } from './jsonl.js';
export { registerAuditMetrics } from './metrics.js';
export { createPathRedactor, createRedactor, REDACTED, type Redact } from './redact.js';
export {
  AUDIT_DEFAULTS,
  type AuditIssue,
  AuditSchema,
  type AuditSettings,
  checkAudit,
  compileAudit,
  type RawAudit,
} from './schema.js';
export {
  type Checkpoint,
  type CheckpointSigner,
  createCheckpointSigner,
  ensureLocalSigningKey,
  parseSigningKey,
  parseVerifyKey,
  resolveAuditSigner,
  verifyCheckpoint,
} from './signing.js';
export { type AuditFilter, type AuditRepository, type ChainHead, createAuditRepository } from './store.js';
export { type AuditProblem, type AuditProblemKind, type VerifyResult, verifyAuditLog } from './verify.js';
