/**
 * Alerts and automatic responses: the alerter (dedupe, storage, webhooks),
 * the blocklist checked on every request, their repositories, CLI commands
 * and metrics. `src/runtime.ts` wires them into the gateway.
 */
export { type Alerter, type AlerterOptions, type AlerterStats, createAlerter, dedupeKey } from './alerter.js';
export {
  type ActiveBlock,
  type Blocklist,
  type BlocklistOptions,
  type BlocklistStats,
  CLIENT_BLOCKED,
  createBlocklist,
  principalBlockKind,
} from './blocklist.js';
export { type AlertsCommandIo, runAlertsCommand, runBlocksCommand, withAlertsMigration } from './cli.js';
export { observeAlerting } from './metrics.js';
export {
  type AlertRecord,
  type AlertStore,
  BLOCK_KINDS,
  BlockError,
  type BlockErrorCode,
  type BlockKind,
  type BlockRecord,
  type BlockStore,
  blockStatus,
  canonicalSubject,
  createAlertStore,
  createBlockStore,
  type DeliveryOutcome,
  MAX_BLOCK_MS,
  type NewBlock,
} from './store.js';
export { type BlockNotice, backoffDelay, jsonBody, slackBody } from './webhooks.js';
