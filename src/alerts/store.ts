/**
 * The alert and block repositories on the `Db` interface (SQLite and
 * PostgreSQL alike), over the tables of migration 6 (`006-alerts.ts`).
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { Severity, Subject, SubjectKind } from '../anomaly/types.js';
import type { Db } from '../store/types.js';
import { unmapIpv4 } from '../util/ip.js';

/** What became of an alert's delivery to one webhook. */
export type DeliveryOutcome = 'pending' | 'delivered' | 'failed' | 'dropped';

/** A stored alert. Times are epoch milliseconds. */
export interface AlertRecord {
  /** `alr_…`. */
  id: string;
  detector: string;
  severity: Severity;
  subject: Subject;
  summary: string;
  evidence: Record<string, number | string>;
  firstSeen: number;
  lastSeen: number;
  /** Findings merged into this alert: 1 + the duplicates suppressed within the cooldown. */
  count: number;
  /** Webhook name → outcome, for the deliveries this alert was sent to. */
  delivery: Record<string, DeliveryOutcome>;
}

/** The alert repository. */
export interface AlertStore {
  insert(record: AlertRecord, dedupeKey: string): Promise<void>;
  /** The latest alert with this key whose last finding is at or after `since`. */
  findRecent(dedupeKey: string, since: number): Promise<AlertRecord | undefined>;
  /** Adds one suppressed duplicate: `count + 1`, `last_seen = at`. */
  recordDuplicate(id: string, at: number): Promise<void>;
  /** Adds `n` findings folded into the alert: `count + n`, `last_seen = at`. */
  recordDuplicates(id: string, n: number, at: number): Promise<void>;
  setDelivery(id: string, delivery: Record<string, DeliveryOutcome>): Promise<void>;
  get(id: string): Promise<AlertRecord | undefined>;
  /** Alerts whose last finding is at or after `since`, most recent first. */
  list(options: { since: number; limit: number }): Promise<AlertRecord[]>;
}

interface AlertRow {
  id: string;
  detector: string;
  severity: string;
  subject_kind: string;
  subject_id: string;
  summary: string;
  evidence: string;
  first_seen: string;
  last_seen: string;
  count: number;
  delivery: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

const ALERT_COLUMNS =
  'id, detector, severity, subject_kind, subject_id, summary, evidence, first_seen, last_seen, count, delivery';

function toAlert(row: AlertRow): AlertRecord {
  return {
    id: row.id,
    detector: row.detector,
    severity: row.severity as Severity,
    subject: { kind: row.subject_kind as SubjectKind, id: row.subject_id },
    summary: row.summary,
    evidence: JSON.parse(row.evidence) as Record<string, number | string>,
    firstSeen: Date.parse(row.first_seen),
    lastSeen: Date.parse(row.last_seen),
    count: Number(row.count),
    delivery: JSON.parse(row.delivery) as Record<string, DeliveryOutcome>,
  };
}

/** A fresh id with `prefix`: 16 hex digits of randomness. */
export function newId(prefix: 'alr' | 'blk'): string {
  return `${prefix}_${randomBytes(8).toString('hex')}`;
}

/** The alert repository on `db`. */
export function createAlertStore(db: Db): AlertStore {
  return {
    async insert(r, dedupeKey) {
      await db.execute(
        `insert into alerts (${ALERT_COLUMNS}, dedupe_key) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        [
          r.id,
          r.detector,
          r.severity,
          r.subject.kind,
          r.subject.id,
          r.summary,
          JSON.stringify(r.evidence),
          iso(r.firstSeen),
          iso(r.lastSeen),
          r.count,
          JSON.stringify(r.delivery),
          dedupeKey,
        ],
      );
    },
    async findRecent(dedupeKey, since) {
      const rows = await db.query<AlertRow>(
        `select ${ALERT_COLUMNS} from alerts where dedupe_key = $1 and last_seen >= $2 order by last_seen desc limit 1`,
        [dedupeKey, iso(since)],
      );
      return rows[0] && toAlert(rows[0]);
    },
    async recordDuplicate(id, at) {
      // A case expression: the two-argument maximum is max() on SQLite but greatest() on PostgreSQL.
      await db.execute(
        `update alerts set count = count + 1, last_seen = case when last_seen < $2 then $2 else last_seen end where id = $1`,
        [id, iso(at)],
      );
    },
    async recordDuplicates(id, n, at) {
      await db.execute(
        `update alerts set count = count + $3, last_seen = case when last_seen < $2 then $2 else last_seen end where id = $1`,
        [id, iso(at), n],
      );
    },
    async setDelivery(id, delivery) {
      await db.execute('update alerts set delivery = $2 where id = $1', [id, JSON.stringify(delivery)]);
    },
    async get(id) {
      const rows = await db.query<AlertRow>(`select ${ALERT_COLUMNS} from alerts where id = $1`, [id]);
      return rows[0] && toAlert(rows[0]);
    },
    async list({ since, limit }) {
      const rows = await db.query<AlertRow>(
        `select ${ALERT_COLUMNS} from alerts where last_seen >= $1 order by last_seen desc, id limit $2`,
        [iso(since), limit],
      );
      return rows.map(toAlert);
    },
  };
}

/** What a block applies to. */
export type BlockKind = Exclude<SubjectKind, 'gateway' | 'route'>;

export const BLOCK_KINDS: readonly BlockKind[] = ['ip', 'api_key', 'principal'];

/** A stored block. Times are epoch milliseconds. */
export interface BlockRecord {
  /** `blk_…`. */
  id: string;
  kind: BlockKind;
  /** The IP, API key id or principal id. */
  subject: string;
  status: 403 | 429;
  reason: string;
  /** The alert that caused an automatic block. */
  alertId: string | undefined;
  /** `system` for automatic blocks, `cli`, or who else made it. */
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  liftedAt: number | undefined;
  liftedBy: string | undefined;
}

/** Where a block stands at a given time. */
export function blockStatus(record: BlockRecord, now: number): 'active' | 'expired' | 'lifted' {
  if (record.liftedAt !== undefined) return 'lifted';
  return record.expiresAt > now ? 'active' : 'expired';
}

/** A block as JSON for people and tools (`blocks list --json`, the admin API); times as ISO 8601 or null. */
export function blockJson(b: BlockRecord, now: number) {
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  return {
    id: b.id,
    kind: b.kind,
    subject: b.subject,
    status: b.status,
    reason: b.reason,
    alertId: b.alertId ?? null,
    createdBy: b.createdBy,
    createdAt: iso(b.createdAt),
    expiresAt: iso(b.expiresAt),
    liftedAt: iso(b.liftedAt),
    liftedBy: b.liftedBy ?? null,
    state: blockStatus(b, now),
  };
}

/** Stable codes of {@link BlockError}. */
export type BlockErrorCode = 'blocks.invalid_input' | 'blocks.not_found';

/** A request to the block repository that cannot be carried out; the message is for the operator. */
export class BlockError extends Error {
  override readonly name = 'BlockError';
  constructor(
    readonly code: BlockErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** What {@link BlockStore.add} needs. */
export interface NewBlock {
  kind: BlockKind;
  subject: string;
  status: 403 | 429;
  durationMs: number;
  reason: string;
  createdBy: string;
  alertId?: string | undefined;
}

/** The block repository. */
export interface BlockStore {
  /** @throws BlockError `blocks.invalid_input`. */
  add(input: NewBlock): Promise<BlockRecord>;
  /**
   * Lifts one block; lifting one already lifted or expired changes nothing.
   *
   * @throws BlockError `blocks.not_found`.
   */
  lift(id: string, actor: string): Promise<{ record: BlockRecord; wasActive: boolean }>;
  /** Lifts every active block of a subject; returns them (none when there were none). */
  liftSubject(kind: BlockKind, subject: string, actor: string): Promise<BlockRecord[]>;
  /** Active blocks, the latest-expiring first, at most `limit`. */
  active(limit: number): Promise<BlockRecord[]>;
  /** Blocks, newest first: active ones only unless `all`. */
  list(options: { all: boolean; limit: number }): Promise<BlockRecord[]>;
}

interface BlockRow {
  id: string;
  subject_kind: string;
  subject_id: string;
  status: number;
  reason: string;
  alert_id: string | null;
  created_by: string;
  created_at: string;
  expires_at: string;
  lifted_at: string | null;
  lifted_by: string | null;
}

const BLOCK_COLUMNS =
  'id, subject_kind, subject_id, status, reason, alert_id, created_by, created_at, expires_at, lifted_at, lifted_by';

function toBlock(row: BlockRow): BlockRecord {
  return {
    id: row.id,
    kind: row.subject_kind as BlockKind,
    subject: row.subject_id,
    status: Number(row.status) as 403 | 429,
    reason: row.reason,
    alertId: row.alert_id ?? undefined,
    createdBy: row.created_by,
    createdAt: Date.parse(row.created_at),
    expiresAt: Date.parse(row.expires_at),
    liftedAt: row.lifted_at === null ? undefined : Date.parse(row.lifted_at),
    liftedBy: row.lifted_by ?? undefined,
  };
}

/** Longest block: a year. Anything longer is a permanent decision for a firewall, not a tripwire. */
export const MAX_BLOCK_MS = 365 * 86_400_000;
const MAX_TEXT = 500;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it rejects.
const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * The canonical form of a block subject, as the gateway will look it up:
 * IPv4-mapped IPv6 unmapped, IPv6 lower-case and compressed.
 *
 * @throws BlockError `blocks.invalid_input` for an IP that is not one, or an
 * empty, overlong or control-character id.
 */
export function canonicalSubject(kind: BlockKind, subject: string): string {
  if (kind === 'ip') {
    const ip = unmapIpv4(subject.trim());
    const version = isIP(ip);
    if (version === 0)
      throw new BlockError('blocks.invalid_input', `"${ip.slice(0, 60)}" is not an IP address`);
    return version === 6 ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip;
  }
  if (subject === '' || subject.length > 200 || CONTROL.test(subject)) {
    throw new BlockError('blocks.invalid_input', `a ${kind} id is 1 to 200 printable characters`);
  }
  if (kind === 'api_key' && !subject.startsWith('key_')) {
    throw new BlockError('blocks.invalid_input', 'an API key id starts with key_ (see portcullis keys list)');
  }
  return subject;
}

/** The block repository on `db`; `now` (epoch ms) is injectable for tests. */
export function createBlockStore(db: Db, options: { now?: () => number } = {}): BlockStore {
  const now = options.now ?? Date.now;
  const get = async (id: string) => {
    const rows = await db.query<BlockRow>(`select ${BLOCK_COLUMNS} from blocks where id = $1`, [id]);
    return rows[0] && toBlock(rows[0]);
  };
  return {
    async add(input) {
      const subject = canonicalSubject(input.kind, input.subject);
      if (
        !Number.isSafeInteger(input.durationMs) ||
        input.durationMs <= 0 ||
        input.durationMs > MAX_BLOCK_MS
      ) {
        throw new BlockError('blocks.invalid_input', 'a block lasts more than 0 and at most 365d');
      }
      if (input.status !== 403 && input.status !== 429) {
        throw new BlockError('blocks.invalid_input', 'a block answers 403 or 429');
      }
      const t = now();
      const record: BlockRecord = {
        id: newId('blk'),
        kind: input.kind,
        subject,
        status: input.status,
        reason: input.reason.replace(CONTROL, ' ').slice(0, MAX_TEXT),
        alertId: input.alertId,
        createdBy: input.createdBy,
        createdAt: t,
        expiresAt: t + input.durationMs,
        liftedAt: undefined,
        liftedBy: undefined,
      };
      await db.execute(
        `insert into blocks (${BLOCK_COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, null, null)`,
        [
          record.id,
          record.kind,
          record.subject,
          record.status,
          record.reason,
          record.alertId ?? null,
          record.createdBy,
          iso(record.createdAt),
          iso(record.expiresAt),
        ],
      );
      return record;
    },
    async lift(id, actor) {
      const t = iso(now());
      const { changes } = await db.execute(
        'update blocks set lifted_at = $2, lifted_by = $3 where id = $1 and lifted_at is null and expires_at > $2',
        [id, t, actor],
      );
      const record = await get(id);
      if (!record) throw new BlockError('blocks.not_found', `no block ${id}`);
      return { record, wasActive: changes > 0 };
    },
    async liftSubject(kind, subject, actor) {
      const id = canonicalSubject(kind, subject);
      const t = iso(now());
      return db.transaction(async (tx) => {
        const rows = await tx.query<BlockRow>(
          `select ${BLOCK_COLUMNS} from blocks where subject_kind = $1 and subject_id = $2 and lifted_at is null and expires_at > $3`,
          [kind, id, t],
        );
        if (rows.length === 0) return [];
        await tx.execute(
          'update blocks set lifted_at = $4, lifted_by = $5 where subject_kind = $1 and subject_id = $2 and lifted_at is null and expires_at > $3',
          [kind, id, t, t, actor],
        );
        return rows.map((r) => ({ ...toBlock(r), liftedAt: Date.parse(t), liftedBy: actor }));
      });
    },
    async active(limit) {
      const rows = await db.query<BlockRow>(
        `select ${BLOCK_COLUMNS} from blocks where lifted_at is null and expires_at > $1 order by expires_at desc limit $2`,
        [iso(now()), limit],
      );
      return rows.map(toBlock);
    },
    async list({ all, limit }) {
      const rows = all
        ? await db.query<BlockRow>(
            `select ${BLOCK_COLUMNS} from blocks order by created_at desc, id limit $1`,
            [limit],
          )
        : await db.query<BlockRow>(
            `select ${BLOCK_COLUMNS} from blocks where lifted_at is null and expires_at > $1 order by created_at desc, id limit $2`,
            [iso(now()), limit],
          );
      return rows.map(toBlock);
    },
  };
}
