import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Store } from '../store/index.js';
import {
  type AlertRecord,
  BlockError,
  blockStatus,
  canonicalSubject,
  createAlertStore,
  createBlockStore,
  newId,
} from './store.js';
import { backends } from './test-support/store.js';

const T0 = Date.parse('2030-01-01T00:00:00.000Z');

function alert(overrides: Partial<AlertRecord> = {}): AlertRecord {
  return {
    id: newId('alr'),
    detector: 'auth_failures',
    severity: 'warning',
    subject: { kind: 'ip', id: '192.0.2.66' },
    summary: '20 failed authentications from IP 192.0.2.66 within 1m.',
    evidence: { failures: 20, window: '1m' },
    firstSeen: T0,
    lastSeen: T0,
    count: 1,
    delivery: { slack: 'pending' },
    ...overrides,
  };
}

for (const backend of await backends()) {
  describe(`the alert and block stores on ${backend.name}`, { skip: backend.skip }, () => {
    let store: Store;
    let cleanup: () => Promise<void>;
    before(async () => {
      ({ store, cleanup } = await backend.open());
    });
    after(() => cleanup?.());

    it('stores an alert, finds it by key within the cooldown, and counts duplicates', async () => {
      const alerts = createAlertStore(store);
      const a = alert();
      await alerts.insert(a, 'auth_failures|ip|192.0.2.66');
      assert.deepEqual(await alerts.get(a.id), a);
      assert.equal((await alerts.findRecent('auth_failures|ip|192.0.2.66', T0 - 600_000))?.id, a.id);
      assert.equal(await alerts.findRecent('auth_failures|ip|192.0.2.66', T0 + 1), undefined);
      assert.equal(await alerts.findRecent('auth_failures|ip|192.0.2.67', T0 - 600_000), undefined);
      await alerts.recordDuplicate(a.id, T0 + 60_000);
      await alerts.recordDuplicate(a.id, T0 + 30_000);
      await alerts.setDelivery(a.id, { slack: 'delivered' });
      const updated = await alerts.get(a.id);
      assert.equal(updated?.count, 3);
      assert.equal(updated?.lastSeen, T0 + 60_000, 'last_seen never moves back');
      assert.deepEqual(updated?.delivery, { slack: 'delivered' });
    });

    it('lists alerts seen since a time, the most recent first', async () => {
      const alerts = createAlertStore(store);
      const old = alert({ firstSeen: T0 - 86_400_000 * 3, lastSeen: T0 - 86_400_000 * 3 });
      const recent = alert({ detector: 'rate_spike', firstSeen: T0 + 120_000, lastSeen: T0 + 120_000 });
      await alerts.insert(old, 'old');
      await alerts.insert(recent, 'recent');
      const listed = await alerts.list({ since: T0 - 86_400_000, limit: 10 });
      assert.equal(listed[0]!.id, recent.id);
      assert.ok(!listed.some((a) => a.id === old.id));
      assert.equal((await alerts.list({ since: T0 - 86_400_000, limit: 1 })).length, 1);
    });

    it('adds, lists and lifts blocks; a lifted or expired block is no longer active', async () => {
      let now = T0;
      const blocks = createBlockStore(store, { now: () => now });
      const ip = await blocks.add({
        kind: 'ip',
        subject: '::ffff:203.0.113.9',
        status: 429,
        durationMs: 3_600_000,
        reason: 'auth_failures: stuffing',
        createdBy: 'system',
        alertId: 'alr_1',
      });
      assert.equal(ip.subject, '203.0.113.9', 'IPv4-mapped addresses are unmapped, as the gateway sees them');
      const key = await blocks.add({
        kind: 'api_key',
        subject: 'key_abc',
        status: 403,
        durationMs: 60_000,
        reason: 'manual',
        createdBy: 'cli',
      });
      const v6 = await blocks.add({
        kind: 'ip',
        subject: '2001:DB8:0:0::1',
        status: 429,
        durationMs: 60_000,
        reason: 'manual',
        createdBy: 'cli',
      });
      assert.equal(v6.subject, '2001:db8::1');
      assert.deepEqual((await blocks.active(10)).map((b) => b.id).sort(), [ip.id, key.id, v6.id].sort());
      assert.deepEqual(await blocks.active(1), [ip], 'the latest-expiring first');

      now += 120_000;
      assert.equal(blockStatus(key, now), 'expired');
      assert.deepEqual(
        (await blocks.list({ all: false, limit: 10 })).map((b) => b.id),
        [ip.id],
      );
      const lifted = await blocks.lift(ip.id, 'cli');
      assert.equal(lifted.wasActive, true);
      assert.equal(lifted.record.liftedBy, 'cli');
      assert.equal((await blocks.lift(ip.id, 'cli')).wasActive, false, 'lifting twice changes nothing');
      assert.equal((await blocks.lift(key.id, 'cli')).wasActive, false, 'an expired block is not lifted');
      assert.deepEqual(await blocks.active(10), []);
      const all = await blocks.list({ all: true, limit: 10 });
      assert.deepEqual(all.map((b) => blockStatus(b, now)).sort(), ['expired', 'expired', 'lifted']);
      await assert.rejects(blocks.lift('blk_missing', 'cli'), (e: unknown) => {
        return e instanceof BlockError && e.code === 'blocks.not_found';
      });
    });

    it('lifts every active block of a subject at once', async () => {
      const blocks = createBlockStore(store, { now: () => T0 + 10_000_000 });
      const input = {
        kind: 'principal' as const,
        subject: 'user-7',
        status: 429 as const,
        durationMs: 60_000,
        reason: 'x',
        createdBy: 'system',
      };
      await blocks.add(input);
      await blocks.add({ ...input, durationMs: 120_000 });
      const lifted = await blocks.liftSubject('principal', 'user-7', 'cli');
      assert.equal(lifted.length, 2);
      assert.ok(lifted.every((b) => b.liftedBy === 'cli'));
      assert.deepEqual(await blocks.liftSubject('principal', 'user-7', 'cli'), []);
    });
  });
}

describe('block subjects', () => {
  it('refuses what is not an IP, an API key id or a printable principal id', () => {
    const invalid = (e: unknown) => e instanceof BlockError && e.code === 'blocks.invalid_input';
    assert.throws(() => canonicalSubject('ip', '300.1.1.1'), invalid);
    assert.throws(() => canonicalSubject('ip', '10.0.0.0/8'), invalid);
    assert.throws(() => canonicalSubject('api_key', 'pcl_secret'), invalid);
    assert.throws(() => canonicalSubject('principal', 'a\nb'), invalid);
    assert.throws(() => canonicalSubject('principal', ''), invalid);
    assert.equal(canonicalSubject('ip', ' 198.51.100.1 '), '198.51.100.1');
  });
});
