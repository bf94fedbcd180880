/**
 * The revocation channel between instances: every act (a token revocation,
 * a client's tokens, an API key revoked, a block added or lifted) is one row
 * of `token_revocations`, appended with {@link recordRevocation}. Each
 * instance applies the rows in `seq` order:
 *
 * - with PostgreSQL, a `NOTIFY` wakes every instance that `LISTEN`s, so a
 *   revocation made anywhere applies everywhere within milliseconds;
 * - polling (`auth.revocations.poll`, 1 s by default) is the fallback, and
 *   the only channel on SQLite, where the instances (and the CLI) share one
 *   file: either way a revocation applies everywhere within about a second.
 *
 * A row's `seq` can become visible after a higher one (two transactions
 * commit out of order), so each poll reads again a window of recent `seq`s
 * and skips the ones already applied.
 */
import pg from 'pg';
import type { Db } from '../store/types.js';
import type { RevocationEntry, RevocationRegistry, TokenRevocationKind } from './registry.js';

/** The PostgreSQL notification channel. */
export const REVOCATION_CHANNEL = 'portcullis_revocations';

/** What a row of the feed may say. */
export type FeedKind = TokenRevocationKind | 'key' | 'block';

/** One act, as written. */
export interface RevocationAct {
  kind: FeedKind;
  subject: string;
  /** `''` or undefined: any issuer. */
  issuer?: string | undefined;
  /** Epoch ms; default now. For `before`, the cut-off. */
  revokedAt?: number;
  /** Epoch ms: when the row is no longer needed. */
  expiresAt: number;
  /** Who did it: `cli`, `admin-api`, `system`. */
  actor: string;
  reason?: string | undefined;
}

/** A row read back. */
export interface RevocationRecord extends Required<Omit<RevocationAct, 'issuer' | 'reason'>> {
  seq: number;
  issuer: string;
  reason: string;
}

interface Row {
  seq: number | string;
  kind: string;
  subject: string;
  issuer: string;
  revoked_at: number | string;
  expires_at: number | string;
  actor: string;
  reason: string;
}

const COLUMNS = 'seq, kind, subject, issuer, revoked_at, expires_at, actor, reason';

function toRecord(r: Row): RevocationRecord {
  return {
    seq: Number(r.seq),
    kind: r.kind as FeedKind,
    subject: r.subject,
    issuer: r.issuer,
    revokedAt: Number(r.revoked_at),
    expiresAt: Number(r.expires_at),
    actor: r.actor,
    reason: r.reason,
  };
}

/** How long a "blocks changed" signal stays in the feed: long enough for every instance to see it. */
export const BLOCK_SIGNAL_TTL_MS = 60 * 60_000;

/** Tells every instance on this store that the blocks changed (they reload them at once). */
export function signalBlockChange(db: Db, target: string, actor: string): Promise<void> {
  return recordRevocation(db, {
    kind: 'block',
    subject: target,
    expiresAt: Date.now() + BLOCK_SIGNAL_TTL_MS,
    actor,
  });
}

/** Appends an act to the feed and wakes the instances listening (PostgreSQL). */
export async function recordRevocation(
  db: Db,
  act: RevocationAct,
  now: () => number = Date.now,
): Promise<void> {
  await db.execute(
    `insert into token_revocations (kind, subject, issuer, revoked_at, expires_at, actor, reason)
     values ($1, $2, $3, $4, $5, $6, $7)`,
    [
      act.kind,
      act.subject,
      act.issuer ?? '',
      Math.round(act.revokedAt ?? now()),
      Math.round(act.expiresAt),
      act.actor,
      (act.reason ?? '').slice(0, 500),
    ],
  );
  if (db.dialect === 'postgres') await db.query('select pg_notify($1, $2)', [REVOCATION_CHANNEL, act.kind]);
}

/** The unexpired acts, oldest first (for `portcullis tokens list`). */
export async function listRevocations(db: Db, now: () => number = Date.now): Promise<RevocationRecord[]> {
  const rows = await db.query<Row>(
    `select ${COLUMNS} from token_revocations where expires_at > $1 order by seq`,
    [now()],
  );
  return rows.map(toRecord);
}

/** Options of {@link startRevocationFeed}. */
export interface RevocationFeedOptions {
  db: Db;
  registry: RevocationRegistry;
  /** A PostgreSQL URL to LISTEN on; undefined: polling only. */
  listenUrl?: string | undefined;
  pollMs: number;
  logger: { warn(details: Record<string, unknown>, message: string): void };
  /** An API key was revoked elsewhere: forget it. */
  onKey?: (keyId: string) => void;
  /** Blocks changed elsewhere: reload them. */
  onBlock?: () => void;
  now?: () => number;
}

export interface RevocationFeed {
  /** Reads what is new now (a notification does this). */
  poll(): Promise<void>;
  /** Whether a LISTEN connection is up. */
  readonly listening: boolean;
  close(): Promise<void>;
}

/** Rows read again on each poll, in case a lower `seq` committed after a higher one. */
const OVERLAP = 256;
/** How often expired rows are deleted and forgotten. */
const PRUNE_MS = 5 * 60_000;

/** Loads the unexpired revocations into the registry, then follows the feed until closed. */
export async function startRevocationFeed(options: RevocationFeedOptions): Promise<RevocationFeed> {
  const { db, registry, logger } = options;
  const now = options.now ?? Date.now;
  let last = 0;
  const seen = new Set<number>();
  let closed = false;

  const apply = (r: RevocationRecord, initial: boolean) => {
    if (r.kind === 'key') {
      if (!initial) options.onKey?.(r.subject);
    } else if (r.kind === 'block') {
      if (!initial) options.onBlock?.();
    } else {
      registry.apply(r as RevocationEntry);
    }
  };

  const initial = await db.query<Row>(
    `select ${COLUMNS} from token_revocations where expires_at > $1 order by seq`,
    [now()],
  );
  for (const row of initial) {
    const r = toRecord(row);
    apply(r, true);
    seen.add(r.seq);
    last = Math.max(last, r.seq);
  }
  if (initial.length === 0) {
    const top = await db.query<{ top: number | string | null }>(
      'select max(seq) as top from token_revocations',
    );
    last = Number(top[0]?.top ?? 0);
  }

  let running: Promise<void> | undefined;
  let again = false;
  const poll = (): Promise<void> => {
    if (running) {
      // A notification during a poll: read once more after it.
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          const rows = await db.query<Row>(
            `select ${COLUMNS} from token_revocations where seq > $1 order by seq`,
            [Math.max(0, last - OVERLAP)],
          );
          for (const row of rows) {
            const r = toRecord(row);
            if (seen.has(r.seq)) continue;
            seen.add(r.seq);
            apply(r, false);
            last = Math.max(last, r.seq);
          }
          for (const s of seen) if (s <= last - OVERLAP) seen.delete(s);
        } while (again && !closed);
      } finally {
        running = undefined;
      }
    })();
    return running;
  };

  const timer = setInterval(() => {
    poll().catch((err: unknown) =>
      logger.warn(
        { err: (err as Error)?.message ?? String(err) },
        'revocation feed: poll failed; will retry',
      ),
    );
  }, options.pollMs);
  timer.unref();
  const pruner = setInterval(() => {
    registry.prune();
    db.execute('delete from token_revocations where expires_at <= $1', [now()]).catch(() => {});
  }, PRUNE_MS);
  pruner.unref();

  let client: pg.Client | undefined;
  let reconnect: NodeJS.Timeout | undefined;
  let listening = false;
  const listen = async () => {
    if (options.listenUrl === undefined || closed) return;
    const c = new pg.Client({ connectionString: options.listenUrl, connectionTimeoutMillis: 5000 });
    const retry = (err?: unknown) => {
      if (client !== c) return;
      listening = false;
      client = undefined;
      c.removeAllListeners('notification');
      c.end().catch(() => {});
      if (err !== undefined) {
        logger.warn(
          { err: (err as Error)?.message ?? String(err) },
          'revocation feed: LISTEN connection lost; polling until it is back',
        );
      }
      if (!closed) {
        reconnect = setTimeout(() => void listen(), 2000);
        reconnect.unref();
      }
    };
    client = c;
    c.on('error', retry);
    c.on('end', () => retry(new Error('connection ended')));
    c.on('notification', () => {
      poll().catch(() => {});
    });
    try {
      await c.connect();
      await c.query(`listen ${REVOCATION_CHANNEL}`);
      listening = true;
      // Whatever arrived while not listening.
      await poll();
    } catch (err) {
      retry(err);
    }
  };
  await listen();

  return {
    poll,
    get listening() {
      return listening;
    },
    async close() {
      closed = true;
      clearInterval(timer);
      clearInterval(pruner);
      clearTimeout(reconnect);
      const c = client;
      client = undefined;
      listening = false;
      if (c) await c.end().catch(() => {});
      await running?.catch(() => {});
    },
  };
}
