import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Db } from '../store/types.js';
import {
  type AuditRecord,
  type ContentOptions,
  hashEvent,
  RECORD_FIELDS,
  toAuditContent,
} from './canonical.js';
import { createPathRedactor, createRedactor, isSensitiveName } from './redact.js';
import type { CheckpointSigner } from './signing.js';
import { type AuditRepository, createAuditRepository } from './store.js';
import { backends, type Fixture, requestEvent, testSigner } from './test-support/fixtures.js';
import { verifyAuditLog } from './verify.js';

const content: ContentOptions = {
  redact: createRedactor(),
  redactPath: createPathRedactor(),
  isSensitive: (name) => isSensitiveName(name),
};

/** Appends events 1..n in batches of 5, signing a checkpoint whenever the head reaches a multiple of 10. */
async function seed(repo: AuditRepository, signer: CheckpointSigner, n: number, from = 1): Promise<void> {
  for (let i = from; i < from + n; i += 5) {
    const batch = [];
    for (let j = i; j < Math.min(i + 5, from + n); j++) batch.push(toAuditContent(requestEvent(j), content));
    await repo.append(batch, (head) =>
      head.seq % 10 === 0
        ? signer.sign('checkpoint', head.seq, head.hash, new Date().toISOString())
        : undefined,
    );
  }
}

async function row(db: Db, seq: number): Promise<AuditRecord> {
  const record = await createAuditRepository(db).get(seq);
  assert.ok(record, `no event at seq ${seq}`);
  return record;
}

const CONTENT_COLUMNS = RECORD_FIELDS.filter((f) => f !== 'seq');

/** Overwrites every column of the event at `seq` but seq itself. */
async function overwrite(db: Db, seq: number, record: AuditRecord): Promise<void> {
  await db.execute(
    `update audit_events set ${CONTENT_COLUMNS.map((c, i) => `${c} = $${i + 1}`).join(', ')} where seq = $${CONTENT_COLUMNS.length + 1}`,
    [...CONTENT_COLUMNS.map((c) => record[c]), seq],
  );
}

/** Moves the events after `seq` by `by` (±1), in two steps so no primary key collides on the way. */
async function renumberAfter(db: Db, seq: number, by: number): Promise<void> {
  await db.execute('update audit_events set seq = -seq where seq > $1', [seq]);
  await db.execute('update audit_events set seq = -seq + $1 where seq < 0', [by]);
}

async function insert(db: Db, record: AuditRecord): Promise<void> {
  await db.execute(
    `insert into audit_events (${RECORD_FIELDS.join(', ')}) values (${RECORD_FIELDS.map((_, i) => `$${i + 1}`).join(', ')})`,
    RECORD_FIELDS.map((c) => record[c]),
  );
}

for (const backend of backends) {
  describe(`audit verify on ${backend.name}`, { skip: backend.skip }, () => {
    let fixture: Fixture;
    let repo: AuditRepository;
    let signer: CheckpointSigner;

    const fresh = async () => {
      await fixture?.cleanup();
      fixture = await backend.fresh();
      repo = createAuditRepository(fixture.store);
      signer = testSigner();
      await seed(repo, signer, 30);
    };
    const verify = () => verifyAuditLog(repo, { publicKeys: [signer.publicKey] });
    const firstProblem = async () => {
      const result = await verify();
      assert.equal(result.ok, false, 'the tampering went unnoticed');
      return result.problems[0]!;
    };

    before(fresh);
    after(() => fixture.cleanup());

    it('finds an untouched log intact, with every checkpoint verified', async () => {
      const result = await verify();
      assert.deepEqual(result.problems, []);
      assert.equal(result.ok, true);
      assert.equal(result.events, 30);
      assert.equal(result.checkpointsVerified, 3);
      assert.equal(result.lastSignedSeq, 30);
      assert.equal(result.unsigned, 0);
    });

    it('names the seq of an event whose field was edited in the database', async () => {
      await fresh();
      await fixture.store.execute(`update audit_events set principal_id = 'key_intruder' where seq = 12`);
      const p = await firstProblem();
      assert.equal(p.kind, 'edited');
      assert.equal(p.seq, 12);
    });

    it('names the seq of an event edited and re-hashed, by the next event still chained to the original', async () => {
      await fresh();
      const r = await row(fixture.store, 12);
      const edited = { ...r, decision: 'deny' };
      edited.hash = hashEvent(12, edited, edited.prev_hash);
      await overwrite(fixture.store, 12, edited);
      const p = await firstProblem();
      assert.equal(p.kind, 'edited');
      assert.equal(p.seq, 12);
    });

    it('catches a rewrite of the whole chain after an edit by the signed checkpoint', async () => {
      await fresh();
      let prev = (await row(fixture.store, 11)).hash;
      for (let seq = 12; seq <= 30; seq++) {
        const r = await row(fixture.store, seq);
        const forged = { ...r, prev_hash: prev, principal_id: seq === 12 ? 'key_intruder' : r.principal_id };
        forged.hash = hashEvent(seq, forged, prev);
        await overwrite(fixture.store, seq, forged);
        prev = forged.hash;
      }
      const p = await firstProblem();
      assert.equal(p.kind, 'edited');
      assert.ok(p.seq >= 11 && p.seq <= 12, `reported at seq ${p.seq}`);
      assert.match(p.message, /checkpoint/);
    });

    it('names the seq of a deleted event', async () => {
      await fresh();
      await fixture.store.execute('delete from audit_events where seq = 15');
      const p = await firstProblem();
      assert.equal(p.kind, 'deleted');
      assert.equal(p.seq, 15);
    });

    it('names the seq of a deleted event when the later ones were renumbered to hide the gap', async () => {
      await fresh();
      await fixture.store.execute('delete from audit_events where seq = 15');
      await renumberAfter(fixture.store, 15, -1);
      const result = await verify();
      assert.equal(result.ok, false);
      assert.equal(result.problems[0]!.kind, 'deleted');
      assert.equal(result.problems[0]!.seq, 15);
      assert.equal(result.problems.length, 1, JSON.stringify(result.problems));
    });

    it('names both seqs of two events whose contents were swapped', async () => {
      await fresh();
      const a = await row(fixture.store, 7);
      const b = await row(fixture.store, 23);
      await overwrite(fixture.store, 7, b);
      await overwrite(fixture.store, 23, a);
      const result = await verify();
      const p = result.problems[0]!;
      assert.equal(p.kind, 'reordered');
      assert.equal(p.seq, 7);
      assert.match(p.message, /seq 7 and 23/);
    });

    it('names the seq of two neighbouring events that were swapped', async () => {
      await fresh();
      const a = await row(fixture.store, 16);
      const b = await row(fixture.store, 17);
      await overwrite(fixture.store, 16, b);
      await overwrite(fixture.store, 17, a);
      const p = await firstProblem();
      assert.equal(p.kind, 'reordered');
      assert.equal(p.seq, 16);
    });

    it('names the seq of a forged event inserted with a correct hash, the later ones renumbered', async () => {
      await fresh();
      const before = await row(fixture.store, 12);
      await renumberAfter(fixture.store, 12, 1);
      const forged = toAuditContent(
        requestEvent(999, { principal: { kind: 'jwt', id: 'admin', tenant: undefined } }),
        content,
      );
      await insert(fixture.store, {
        seq: 13,
        ...forged,
        prev_hash: before.hash,
        hash: hashEvent(13, forged, before.hash),
      });
      const result = await verify();
      assert.equal(result.ok, false);
      assert.equal(result.problems[0]!.kind, 'inserted');
      assert.equal(result.problems[0]!.seq, 13);
      assert.equal(result.problems.length, 1, JSON.stringify(result.problems));
    });

    it('names where events were cut from the end, up to the last signed checkpoint', async () => {
      await fresh();
      await fixture.store.execute('delete from audit_events where seq > 25');
      const p = await firstProblem();
      assert.equal(p.kind, 'truncated');
      assert.equal(p.seq, 26);
    });

    it('names a removed prefix that no signed retention anchor covers', async () => {
      await fresh();
      await fixture.store.execute('delete from audit_events where seq <= 5');
      const p = await firstProblem();
      assert.equal(p.kind, 'deleted');
      assert.equal(p.seq, 1);
      assert.match(p.message, /no signed retention anchor/);
    });

    it('rejects a checkpoint signed with a key it was not given', async () => {
      await fresh();
      const head = await repo.head();
      const forged = testSigner().sign('checkpoint', head.seq, head.hash, new Date().toISOString());
      await fixture.store.execute(`delete from audit_checkpoints where seq = $1`, [head.seq]);
      await fixture.store.execute(
        'insert into audit_checkpoints (kind, seq, hash, signature, key_id, created_at) values ($1, $2, $3, $4, $5, $6)',
        [forged.kind, forged.seq, forged.hash, forged.signature, forged.key_id, forged.created_at],
      );
      const p = await firstProblem();
      assert.equal(p.kind, 'checkpoint');
      assert.equal(p.seq, 30);
    });

    it('rejects a checkpoint whose hash was changed after signing', async () => {
      await fresh();
      await fixture.store.execute(`update audit_checkpoints set hash = $1 where seq = 20`, ['f'.repeat(64)]);
      const p = await firstProblem();
      assert.equal(p.kind, 'checkpoint');
      assert.equal(p.seq, 20);
    });

    it('keeps verifying the retained range after retention by count, and catches a deletion in it', async () => {
      await fresh();
      const removed = await repo.applyRetention({ maxAgeMs: undefined, maxEvents: 12 }, signer, new Date());
      assert.equal(removed.removed, 18);
      assert.equal(removed.anchor?.seq, 18);
      let result = await verify();
      assert.deepEqual(result.problems, []);
      assert.equal(result.firstSeq, 19);
      assert.equal(result.events, 12);
      await seed(repo, signer, 10, 31);
      result = await verify();
      assert.deepEqual(result.problems, []);
      assert.equal(result.lastSeq, 40);
      await fixture.store.execute('delete from audit_events where seq = 19');
      const p = await firstProblem();
      assert.equal(p.kind, 'deleted');
      assert.equal(p.seq, 19);
    });

    it('removes events older than max_age but never the head, which the chain continues from', async () => {
      await fresh();
      // Event i is at 2030-01-01 + i seconds; "now" is 10 s after event 30.
      const now = new Date(Date.parse('2030-01-01T00:00:40.000Z'));
      const aged = await repo.applyRetention({ maxAgeMs: 15_000, maxEvents: undefined }, signer, now);
      assert.equal(aged.removed, 24);
      const all = await repo.applyRetention({ maxAgeMs: 1, maxEvents: undefined }, signer, now);
      assert.equal(all.removed, 5);
      assert.equal(await repo.count(), 1);
      await seed(repo, signer, 3, 31);
      const result = await verify();
      assert.deepEqual(result.problems, []);
      assert.equal(result.firstSeq, 30);
      assert.equal(result.lastSeq, 33);
    });

    it('keeps one dense chain when several instances append at once', async () => {
      await fresh();
      const other = createAuditRepository(await fixture.openAnother());
      const writers = [repo, other, repo, other].map(async (r, w) => {
        for (let b = 0; b < 5; b++) {
          const batch = Array.from({ length: 7 }, (_, i) =>
            toAuditContent(requestEvent(1000 + w * 100 + b * 10 + i), content),
          );
          await r.append(batch);
        }
      });
      await Promise.all(writers);
      const result = await verify();
      assert.deepEqual(result.problems, []);
      assert.equal(result.events, 30 + 4 * 5 * 7);
      assert.equal(result.lastSeq, 30 + 4 * 5 * 7);
    });
  });
}
