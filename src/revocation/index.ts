/**
 * The token kill switch: revocations by jti, subject, client or issue time,
 * for the built-in issuer's tokens and external providers' alike, kept in
 * the store (`token_revocations`), checked in memory on every request, and
 * shared by every instance through the feed (PostgreSQL LISTEN/NOTIFY,
 * polling as the fallback). API key revocations and block changes travel on
 * the same feed.
 */
import type { AuthSettings } from '../config/types.js';
import type { Db } from '../store/types.js';
import { type RevocationFeed, startRevocationFeed } from './feed.js';
import { RevocationRegistry } from './registry.js';

export {
  type FeedKind,
  listRevocations,
  REVOCATION_CHANNEL,
  type RevocationAct,
  type RevocationFeed,
  type RevocationRecord,
  recordRevocation,
  signalBlockChange,
  startRevocationFeed,
} from './feed.js';
export { type RevocationEntry, RevocationRegistry, type TokenRevocationKind } from './registry.js';

/** The running kill switch of one process: a registry and the feed that fills it. */
export interface Revocations {
  readonly registry: RevocationRegistry;
  readonly feed: RevocationFeed;
  close(): Promise<void>;
}

/** Loads the revocations and follows the feed; `storeUrl` is LISTENed on when it is PostgreSQL. */
export async function openRevocations(options: {
  db: Db;
  storeUrl: string | undefined;
  settings: AuthSettings['revocations'];
  logger: { warn(details: Record<string, unknown>, message: string): void };
  onKey?: (keyId: string) => void;
  onBlock?: () => void;
}): Promise<Revocations> {
  const registry = new RevocationRegistry();
  const postgres = options.db.dialect === 'postgres' && options.storeUrl !== undefined;
  const feed = await startRevocationFeed({
    db: options.db,
    registry,
    listenUrl: postgres ? options.storeUrl : undefined,
    pollMs: options.settings.pollMs,
    logger: options.logger,
    onKey: options.onKey,
    onBlock: options.onBlock,
  });
  return { registry, feed, close: () => feed.close() };
}
