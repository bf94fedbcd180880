/**
 * Verification of the audit log: recomputes the hash chain over the retained
 * range and checks it against the signed checkpoints, reporting where it
 * breaks and how.
 *
 * What each kind of tampering looks like (see `canonical.ts` for the hash):
 * - **edited**: an event no longer matches its hash; or it was re-hashed and
 *   the next event still names its old hash; or the whole chain after it was
 *   re-hashed and no longer matches the next signed checkpoint.
 * - **deleted**: a gap in seq; or, if the later events were renumbered, they
 *   hash as seqs further on; a removed prefix with no signed anchor; removed
 *   events at the end covered by a checkpoint (**truncated**).
 * - **reordered**: two events each hash as the other's seq.
 * - **inserted**: the events after it hash as seqs further back.
 * - **checkpoint**: a checkpoint or anchor whose signature does not verify
 *   under any of the given public keys.
 * - **truncated** or **edited**, by a witness: the chain lacks the seq and
 *   hash of a checkpoint kept outside the store; its tail was deleted with
 *   the checkpoints that covered it, or the database was rolled back.
 *
 * Limits, by design of hash chains: events appended after the last signed
 * checkpoint can be removed, and events can be appended, by someone who can
 * write the database, without a trace. That window is `checkpoint_every`
 * events or `checkpoint_interval`; the JSON lines stream, shipped elsewhere,
 * keeps a second copy of every event and checkpoint. Without a witness (the
 * checkpoint file, the JSON lines stream), the newest events can also be
 * removed together with the checkpoints covering them, or the whole
 * database replaced by an older copy.
 */
import type { KeyObject } from 'node:crypto';
import { type AuditRecord, GENESIS_HASH, hashEvent } from './canonical.js';
import { missingFromChain } from './checkpoint-file.js';
import { type Checkpoint, keyId, verifyCheckpoint } from './signing.js';
import type { AuditRepository } from './store.js';

/** What is wrong at a place in the log. */
export type AuditProblemKind = 'edited' | 'deleted' | 'reordered' | 'inserted' | 'truncated' | 'checkpoint';

/** One finding of {@link verifyAuditLog}. */
export interface AuditProblem {
  /** The first seq affected. */
  seq: number;
  kind: AuditProblemKind;
  /** For an operator: what is wrong, and where. */
  message: string;
}

/** The outcome of {@link verifyAuditLog}. */
export interface VerifyResult {
  ok: boolean;
  /** Events read. */
  events: number;
  firstSeq: number | undefined;
  lastSeq: number | undefined;
  /** Checkpoints whose signature verified and whose hash matched the chain. */
  checkpointsVerified: number;
  /** The seq of the last event covered by a verified checkpoint (or the anchor). */
  lastSignedSeq: number | undefined;
  /** The retention anchor the retained range starts after. */
  anchor: Checkpoint | undefined;
  /** Events after the last verified checkpoint: chained, not yet signed. */
  unsigned: number;
  /** When the newest verified checkpoint (in the store or a witness) was signed. */
  lastSignedAt: string | undefined;
  /** The witnesses given, each with whether it verified and the chain contains it. */
  witnesses: { source: string; seq: number; hash: string; created_at: string; ok: boolean }[];
  /** Ordered by seq; the first is the earliest place the log was tampered with. */
  problems: AuditProblem[];
  /** Whether more problems were found than reported. */
  truncatedReport: boolean;
}

/** Options of {@link verifyAuditLog}. */
export interface VerifyOptions {
  /** Public keys checkpoints may be signed with (current and retired signing keys). */
  publicKeys: readonly KeyObject[];
  /** Events read per query. Default 2000. */
  pageSize?: number;
  /** Stop after this many problems. Default 20. */
  maxProblems?: number;
  /**
   * Signed checkpoints kept outside the store (the checkpoint file, the JSON
   * lines stream), each named by where it came from: the chain must contain
   * an event at each one's seq with exactly its hash.
   */
  witnesses?: readonly { source: string; checkpoint: Checkpoint }[];
}

/** How far around a broken event to look for the seq it was written as. */
const NEARBY = 64;

const where = (r: AuditRecord): string =>
  `${r.time}${r.request_id === null ? '' : `, request ${r.request_id}`}${r.action === null ? '' : `, ${r.action}`}`;

const range = (from: number, to: number): string => (from === to ? `seq ${from}` : `seq ${from}..${to}`);

/**
 * Verifies the whole retained log. Reads it in pages, in seq order; memory
 * stays bounded by the page size and the number of checkpoints.
 */
export async function verifyAuditLog(repo: AuditRepository, options: VerifyOptions): Promise<VerifyResult> {
  const pageSize = options.pageSize ?? 2000;
  const maxProblems = options.maxProblems ?? 20;
  const keys = new Map(options.publicKeys.map((k) => [keyId(k), k]));
  const problems: AuditProblem[] = [];
  let overflow = false;
  const report = (seq: number, kind: AuditProblemKind, message: string) => {
    if (problems.length >= maxProblems) overflow = true;
    else problems.push({ seq, kind, message });
  };

  const valid: Checkpoint[] = [];
  for (const cp of await repo.checkpoints()) {
    const key = keys.get(cp.key_id);
    const label = `the ${cp.kind} at seq ${cp.seq} (signed ${cp.created_at})`;
    if (!key) {
      report(
        cp.seq,
        'checkpoint',
        `${label} names key ${cp.key_id}, which is not among the verification keys (${[...keys.keys()].join(', ') || 'none given'}): forged, or signed with a key not given to verify`,
      );
    } else if (!verifyCheckpoint(cp, key)) {
      report(cp.seq, 'checkpoint', `${label} has a signature that does not verify: it was forged or altered`);
    } else {
      valid.push(cp);
    }
  }
  const anchor = valid.filter((c) => c.kind === 'anchor').at(-1);
  const start = anchor ? { seq: anchor.seq, hash: anchor.hash } : { seq: 0, hash: GENESIS_HASH };
  const pending = valid.filter((c) => c.kind === 'checkpoint' && c.seq > start.seq);
  let nextCheckpoint = 0;
  let lastGood = anchor?.seq;
  let lastSignedAt: string | undefined;
  let checkpointsVerified = 0;

  let prev = start;
  let events = 0;
  let firstSeq: number | undefined;
  let lastSeq: number | undefined;
  /** The last row broke the chain; its successor's link to it proves nothing more. */
  let afterProblem = false;
  /** Rows hash as `seq - shift` after a diagnosed insertion or renumbered deletion. */
  let shift = 0;
  /** Every seq a problem was found at (also beyond maxProblems), to tell explained checkpoint mismatches. */
  const problemSeqs: number[] = [];
  const swaps = new Set<string>();
  const problem = (seq: number, kind: AuditProblemKind, message: string) => {
    problemSeqs.push(seq);
    report(seq, kind, message);
  };

  /** Finds the seq a broken row was written as, if it is an authentic event out of place. */
  const originalSeq = async (r: AuditRecord): Promise<number | undefined> => {
    for (let d = 1; d <= NEARBY; d++) {
      if (hashEvent(r.seq - d, r, r.prev_hash) === r.hash) return r.seq - d;
      if (hashEvent(r.seq + d, r, r.prev_hash) === r.hash) return r.seq + d;
    }
    const before = await repo.findByHash(r.prev_hash);
    if (before && hashEvent(before.seq + 1, r, r.prev_hash) === r.hash) return before.seq + 1;
    if (r.prev_hash === start.hash && hashEvent(start.seq + 1, r, r.prev_hash) === r.hash)
      return start.seq + 1;
    return undefined;
  };

  const diagnose = async (r: AuditRecord): Promise<number> => {
    const orig = await originalSeq(r);
    if (orig === undefined) {
      problem(
        r.seq,
        'edited',
        `the event at seq ${r.seq} (${where(r)}) does not match its hash: it was changed`,
      );
      return r.seq;
    }
    const partner = await repo.get(orig);
    if (partner && hashEvent(r.seq, partner, partner.prev_hash) === partner.hash) {
      const key = `${Math.min(orig, r.seq)}:${Math.max(orig, r.seq)}`;
      if (!swaps.has(key)) {
        swaps.add(key);
        problem(
          Math.min(orig, r.seq),
          'reordered',
          `the events at seq ${Math.min(orig, r.seq)} and ${Math.max(orig, r.seq)} were swapped: each is the other's, by its hash`,
        );
      }
      // Checkpoints are matched by position here: the swap is already reported.
      return r.seq;
    }
    if (orig < r.seq) {
      shift = r.seq - orig;
      problem(
        orig,
        'inserted',
        `${shift === 1 ? `the event at seq ${orig} is` : `the ${shift} events at ${range(orig, r.seq - 1)} are`} not part of the chain: the event now at seq ${r.seq} (${where(r)}) was written as seq ${orig}`,
      );
    } else {
      shift = r.seq - orig;
      problem(
        r.seq,
        'deleted',
        `${-shift === 1 ? `the event at seq ${r.seq} was` : `the ${-shift} events at ${range(r.seq, orig - 1)} were`} removed and the later events renumbered: the event now at seq ${r.seq} (${where(r)}) was written as seq ${orig}`,
      );
    }
    return orig;
  };

  /** Checkpoint mismatches wait one row: the next row's diagnosis may explain them (an insertion, a swap). */
  let deferred: { cp: Checkpoint; from: number; missing: boolean }[] = [];
  const flushDeferred = () => {
    for (const { cp, from, missing } of deferred) {
      if (problemSeqs.some((seq) => seq >= from && seq <= cp.seq)) continue;
      if (missing) {
        problem(
          cp.seq,
          'deleted',
          `the event at seq ${cp.seq}, signed in the checkpoint of ${cp.created_at}, is missing`,
        );
      } else {
        problem(
          from,
          'edited',
          `the chain at seq ${cp.seq} does not match the checkpoint signed ${cp.created_at}: an event in ${range(from, cp.seq)} was changed and the hashes after it recomputed`,
        );
      }
    }
    deferred = [];
  };
  const checkCheckpoints = (origSeq: number, r: AuditRecord) => {
    while (nextCheckpoint < pending.length && pending[nextCheckpoint]!.seq <= origSeq) {
      const cp = pending[nextCheckpoint++]!;
      const from = (lastGood ?? start.seq) + 1;
      if (cp.seq === origSeq && cp.hash === r.hash) {
        checkpointsVerified++;
        lastGood = cp.seq;
        lastSignedAt = cp.created_at;
      } else {
        deferred.push({ cp, from, missing: cp.seq < origSeq });
      }
    }
  };

  let after = start.seq;
  let lastOrigSeq = start.seq;
  // Ends when the events run out (seq strictly increases), or when enough problems are found to say it is tampered.
  pages: for (;;) {
    const rows = await repo.page(after, pageSize);
    if (rows.length === 0) break;
    for (const r of rows) {
      if (overflow) break pages;
      events++;
      firstSeq ??= r.seq;
      lastSeq = r.seq;
      const expected = prev.seq + 1;
      let broken = false;
      let origSeq = r.seq;
      if (r.seq > expected) {
        broken = true;
        problem(
          expected,
          'deleted',
          `${range(expected, r.seq - 1)} ${r.seq - expected === 1 ? 'is' : 'are'} missing${expected === start.seq + 1 && events === 1 ? (anchor ? ` (the retention anchor covers up to seq ${anchor.seq} only)` : ' (no signed retention anchor covers their removal)') : ''}`,
        );
        shift = 0;
      }
      if (hashEvent(r.seq, r, r.prev_hash) === r.hash) {
        shift = 0;
        if (!broken && !afterProblem && r.prev_hash !== prev.hash) {
          broken = true;
          problem(
            prev.seq,
            'edited',
            `the event at seq ${prev.seq} was changed and re-hashed: the event at seq ${r.seq} (${where(r)}) still chains to its original hash`,
          );
        }
      } else if (
        shift !== 0 &&
        hashEvent(r.seq - shift, r, r.prev_hash) === r.hash &&
        r.prev_hash === prev.hash
      ) {
        origSeq = r.seq - shift;
      } else {
        broken = true;
        origSeq = await diagnose(r);
      }
      flushDeferred();
      checkCheckpoints(origSeq, r);
      lastOrigSeq = origSeq;
      afterProblem = broken;
      prev = { seq: r.seq, hash: r.hash };
    }
    after = rows.at(-1)!.seq;
    if (rows.length < pageSize) break;
  }

  flushDeferred();
  const lastPending = pending.at(-1);
  if (!overflow && nextCheckpoint < pending.length && lastPending) {
    problem(
      lastOrigSeq + 1,
      'truncated',
      `${range(lastOrigSeq + 1, lastPending.seq)} ${lastPending.seq === lastOrigSeq + 1 ? 'is' : 'are'} missing from the end: the checkpoint signed ${lastPending.created_at} covers seq ${lastPending.seq}`,
    );
  }

  const witnesses: VerifyResult['witnesses'] = [];
  for (const { source, checkpoint: cp } of options.witnesses ?? []) {
    const key = keys.get(cp.key_id);
    const label = `the checkpoint in ${source} (seq ${cp.seq}, hash ${cp.hash}, signed ${cp.created_at})`;
    let ok = false;
    if (!key || !verifyCheckpoint(cp, key)) {
      problem(
        cp.seq,
        'checkpoint',
        `${label} has a signature that does not verify${key ? '' : ` under any verification key (it names key ${cp.key_id})`}: it was forged or altered`,
      );
    } else {
      const missing = await missingFromChain(repo, cp, async () => anchor?.seq);
      if (missing) problem(cp.seq, missing.kind, `${label}: ${missing.message}`);
      else ok = true;
      if (lastSignedAt === undefined || cp.created_at > lastSignedAt) lastSignedAt = cp.created_at;
    }
    witnesses.push({ source, seq: cp.seq, hash: cp.hash, created_at: cp.created_at, ok });
  }

  problems.sort((a, b) => a.seq - b.seq);
  return {
    ok: problems.length === 0,
    events,
    firstSeq,
    lastSeq,
    checkpointsVerified,
    lastSignedSeq: lastGood,
    anchor,
    unsigned: lastSeq === undefined ? 0 : lastSeq - (lastGood ?? 0),
    lastSignedAt,
    witnesses,
    problems,
    truncatedReport: overflow,
  };
}
