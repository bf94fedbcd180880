/**
 * The blocklist the gateway consults on every request: an in-memory copy of
 * the active blocks, so a check is one Map lookup, refreshed from the store
 * every `blocks.refresh` (5 s by default). A block added or lifted on this
 * instance applies here at once; one added or lifted elsewhere (another
 * instance, `portcullis blocks`) applies within one refresh. At most
 * `blocks.max_entries` active blocks are held (those expiring last). While
 * the store is unreachable the last copy keeps being enforced, each entry
 * until its own expiry.
 */

import { type ErrorSpec, GatewayError } from '../errors.js';
import type { AdminEvent } from '../events/types.js';
import {
  type BlockKind,
  type BlockRecord,
  type BlockStore,
  canonicalSubject,
  type NewBlock,
} from './store.js';

/** The answer to a request from a blocked source (`client.blocked`). */
export const CLIENT_BLOCKED: Readonly<Record<403 | 429, ErrorSpec>> = {
  429: { code: 'client.blocked', status: 429, title: 'Too many requests from this client; try again later.' },
  403: { code: 'client.blocked', status: 403, title: 'Requests from this client are not allowed right now.' },
};

/** An active block as the per-request check sees it. */
export interface ActiveBlock {
  readonly id: string;
  /** Epoch ms. */
  readonly until: number;
  readonly status: 403 | 429;
}

/** The part of a logger the blocklist uses. */
export interface BlocklistLogger {
  warn(details: Record<string, unknown>, message: string): void;
}

/** Options of {@link createBlocklist}. */
export interface BlocklistOptions {
  store: BlockStore;
  /** Compiled `blocks` section. */
  settings: { refreshMs: number; maxEntries: number };
  /** Receives `block.added` and `block.lifted`, to be audited. */
  onEvent?: (event: AdminEvent) => void;
  logger?: BlocklistLogger;
  /** Epoch ms; injectable for tests. */
  now?: () => number;
  /**
   * The key an address is blocked under (`ipKey` with `listen.ipv6_prefix`):
   * a block of one IPv6 address covers its network, like every other place
   * that keys by IP. Default: the address itself.
   */
  ipKey?: (ip: string) => string;
}

/** Counters for metrics. */
export interface BlocklistStats {
  /** Requests refused. */
  rejected: number;
  refreshFailures: number;
}

export interface Blocklist {
  /** The active block of a source, if any: one Map lookup, no I/O. */
  isBlocked(kind: BlockKind, id: string): ActiveBlock | undefined;
  /**
   * Refuses a blocked client IP: throws a `client.blocked` GatewayError
   * (429 with Retry-After, or 403). For the pre-auth stage.
   */
  checkIp(clientIp: string): void;
  /** The same for an authenticated principal (an API key or any other principal); right after authentication. */
  checkPrincipal(principal: { kind: string; id: string } | undefined): void;
  /** Stores a block and applies it here at once. @throws BlockError `blocks.invalid_input`. */
  add(input: NewBlock): Promise<BlockRecord>;
  /** Lifts a block by id. @throws BlockError `blocks.not_found`. */
  lift(id: string, actor: string): Promise<{ record: BlockRecord; wasActive: boolean }>;
  /** Lifts every active block of a source. */
  liftSubject(kind: BlockKind, subject: string, actor: string): Promise<BlockRecord[]>;
  /** Reloads the active blocks from the store. */
  refresh(): Promise<void>;
  /** Loads the blocks, then refreshes every `refresh` interval until `close`. */
  start(): Promise<void>;
  close(): void;
  /** Active blocks held in memory. */
  size(): number;
  readonly stats: BlocklistStats;
}

type Tables = Record<BlockKind, Map<string, ActiveBlock>>;

const emptyTables = (): Tables => ({ ip: new Map(), api_key: new Map(), principal: new Map() });

/** The block kind of a principal as events carry it. */
export function principalBlockKind(kind: string): BlockKind {
  return kind === 'api_key' ? 'api_key' : 'principal';
}

/** Builds the blocklist; call `start()` to load it. */
export function createBlocklist(options: BlocklistOptions): Blocklist {
  const { store, settings } = options;
  const now = options.now ?? Date.now;
  let tables = emptyTables();
  let size = 0;
  // Changes made here while a refresh is reading, replayed on its result so
  // that a stale read neither forgets a new block nor revives a lifted one.
  let replay: Array<() => void> | undefined;
  let refreshing: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const stats: BlocklistStats = { rejected: 0, refreshFailures: 0 };

  const keyOf = options.ipKey ?? ((ip: string) => ip);
  const put = (kind: BlockKind, raw: string, block: ActiveBlock) => {
    const subject = kind === 'ip' ? keyOf(raw) : raw;
    const table = tables[kind];
    const existing = table.get(subject);
    if (existing !== undefined && existing.until >= block.until) return;
    if (existing === undefined) {
      if (size >= settings.maxEntries) return;
      size++;
    }
    table.set(subject, block);
  };
  const remove = (kind: BlockKind, raw: string) => {
    if (tables[kind].delete(kind === 'ip' ? keyOf(raw) : raw)) size--;
  };
  const change = (op: () => void) => {
    op();
    replay?.push(op);
  };

  const isBlocked = (kind: BlockKind, raw: string): ActiveBlock | undefined => {
    const id = kind === 'ip' ? keyOf(raw) : raw;
    const block = tables[kind].get(id);
    if (block === undefined) return undefined;
    if (block.until > now()) return block;
    remove(kind, id);
    return undefined;
  };

  const refuse = (kind: BlockKind, block: ActiveBlock): never => {
    stats.rejected++;
    const spec = CLIENT_BLOCKED[block.status];
    throw new GatewayError(spec, {
      internal: `${kind} blocked by ${block.id}`,
      ...(block.status === 429
        ? { headers: { 'retry-after': String(Math.max(1, Math.ceil((block.until - now()) / 1000))) } }
        : {}),
    });
  };

  const emit = (action: 'block.added' | 'block.lifted', record: BlockRecord, actor: string) => {
    options.onEvent?.({
      type: 'admin',
      time: new Date(now()).toISOString(),
      action,
      actor,
      target: `${record.kind}:${record.subject}`,
      detail: {
        block: record.id,
        status: record.status,
        expires_at: new Date(record.expiresAt).toISOString(),
        ...(record.alertId === undefined ? {} : { alert: record.alertId }),
        ...(action === 'block.added' ? { reason: record.reason } : {}),
      },
    });
  };

  const refresh = (): Promise<void> => {
    refreshing ??= (async () => {
      replay = [];
      try {
        const rows = await store.active(settings.maxEntries);
        const previous = { tables, size };
        tables = emptyTables();
        size = 0;
        for (const r of rows) put(r.kind, r.subject, { id: r.id, until: r.expiresAt, status: r.status });
        try {
          for (const op of replay) op();
        } catch (err) {
          ({ tables, size } = previous);
          throw err;
        }
      } finally {
        replay = undefined;
        refreshing = undefined;
      }
    })();
    return refreshing;
  };

  return {
    stats,
    isBlocked,
    checkIp(clientIp) {
      const block = isBlocked('ip', clientIp);
      if (block !== undefined) refuse('ip', block);
    },
    checkPrincipal(principal) {
      if (principal === undefined) return;
      const kind = principalBlockKind(principal.kind);
      const block = isBlocked(kind, principal.id);
      if (block !== undefined) refuse(kind, block);
    },
    async add(input) {
      const record = await store.add(input);
      change(() =>
        put(record.kind, record.subject, { id: record.id, until: record.expiresAt, status: record.status }),
      );
      emit('block.added', record, input.createdBy);
      return record;
    },
    async lift(id, actor) {
      const result = await store.lift(id, actor);
      const { record } = result;
      if (result.wasActive) {
        change(() => {
          const key = record.kind === 'ip' ? keyOf(record.subject) : record.subject;
          if (tables[record.kind].get(key)?.id === record.id) remove(record.kind, record.subject);
        });
        emit('block.lifted', record, actor);
      }
      return result;
    },
    async liftSubject(kind, subject, actor) {
      const lifted = await store.liftSubject(kind, subject, actor);
      const id = canonicalSubject(kind, subject);
      change(() => remove(kind, id));
      for (const record of lifted) emit('block.lifted', record, actor);
      return lifted;
    },
    refresh,
    async start() {
      await refresh();
      timer ??= setInterval(() => {
        refresh().catch((err: unknown) => {
          stats.refreshFailures++;
          options.logger?.warn(
            { err: (err as Error)?.message ?? String(err) },
            'blocklist refresh failed; keeping the blocks loaded before',
          );
        });
      }, settings.refreshMs);
      timer.unref();
    },
    close() {
      clearInterval(timer);
      timer = undefined;
    },
    size: () => size,
  };
}
