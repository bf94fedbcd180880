import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GatewayError } from '../errors.js';
import type { AdminEvent } from '../events/types.js';
import type { Store } from '../store/index.js';
import { createBlocklist } from './blocklist.js';
import { createBlockStore } from './store.js';
import { openTestSqlite } from './test-support/store.js';

const T0 = Date.parse('2030-01-01T00:00:00.000Z');

function refused(fn: () => void): GatewayError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof GatewayError, String(err));
    return err;
  }
  assert.fail('the request was let through');
}

describe('the blocklist', () => {
  let store: Store;
  let cleanup: () => Promise<void>;
  let now = T0;
  const clock = () => now;
  before(async () => {
    ({ store, cleanup } = await openTestSqlite());
  });
  after(() => cleanup?.());

  const make = (events: AdminEvent[] = [], maxEntries = 1000) =>
    createBlocklist({
      store: createBlockStore(store, { now: clock }),
      settings: { refreshMs: 5000, maxEntries },
      now: clock,
      onEvent: (e) => events.push(e),
    });

  it('refuses a blocked IP with 429 problem details and Retry-After, until the block expires', async () => {
    const events: AdminEvent[] = [];
    const blocklist = make(events);
    await blocklist.start();
    try {
      const record = await blocklist.add({
        kind: 'ip',
        subject: '192.0.2.66',
        status: 429,
        durationMs: 15 * 60_000,
        reason: 'auth_failures: stuffing',
        createdBy: 'system',
        alertId: 'alr_1',
      });
      const err = refused(() => blocklist.checkIp('192.0.2.66'));
      assert.equal(err.code, 'client.blocked');
      assert.equal(err.status, 429);
      assert.deepEqual(err.headers, { 'retry-after': '900' });
      assert.match(err.internal ?? '', new RegExp(record.id));
      blocklist.checkIp('192.0.2.67');
      blocklist.checkPrincipal(undefined);
      assert.deepEqual(
        events.map((e) => [e.action, e.actor, e.target, e.detail?.alert]),
        [['block.added', 'system', 'ip:192.0.2.66', 'alr_1']],
      );
      now += 15 * 60_000;
      blocklist.checkIp('192.0.2.66');
      assert.equal(blocklist.isBlocked('ip', '192.0.2.66'), undefined);
      assert.equal(blocklist.stats.rejected, 1);
    } finally {
      blocklist.close();
    }
  });

  it('refuses a blocked API key or principal with 403 and no Retry-After', async () => {
    const blocklist = make();
    await blocklist.start();
    try {
      await blocklist.add({
        kind: 'api_key',
        subject: 'key_enum',
        status: 403,
        durationMs: 60_000,
        reason: 'enumeration',
        createdBy: 'system',
      });
      await blocklist.add({
        kind: 'principal',
        subject: 'user-7',
        status: 429,
        durationMs: 60_000,
        reason: 'scraping',
        createdBy: 'system',
      });
      const err = refused(() => blocklist.checkPrincipal({ kind: 'api_key', id: 'key_enum' }));
      assert.equal(err.status, 403);
      assert.equal(err.headers, undefined);
      assert.equal(refused(() => blocklist.checkPrincipal({ kind: 'jwt', id: 'user-7' })).status, 429);
      blocklist.checkPrincipal({ kind: 'jwt', id: 'key_enum' });
    } finally {
      blocklist.close();
    }
  });

  it('sees blocks added and lifted by another instance or the CLI after a refresh', async () => {
    const events: AdminEvent[] = [];
    const here = make();
    const elsewhere = make(events);
    await here.start();
    await elsewhere.start();
    try {
      const record = await elsewhere.add({
        kind: 'ip',
        subject: '198.51.100.200',
        status: 429,
        durationMs: 60_000,
        reason: 'manual',
        createdBy: 'cli',
      });
      assert.equal(here.isBlocked('ip', '198.51.100.200'), undefined, 'not before a refresh');
      await here.refresh();
      assert.equal(here.isBlocked('ip', '198.51.100.200')?.id, record.id);
      await elsewhere.lift(record.id, 'cli');
      assert.equal(elsewhere.isBlocked('ip', '198.51.100.200'), undefined, 'at once where it was lifted');
      await here.refresh();
      assert.equal(here.isBlocked('ip', '198.51.100.200'), undefined);
      assert.deepEqual(
        events.map((e) => [e.action, e.actor]),
        [
          ['block.added', 'cli'],
          ['block.lifted', 'cli'],
        ],
      );
    } finally {
      here.close();
      elsewhere.close();
    }
  });

  it('keeps a block added while a refresh was reading, and does not revive one lifted meanwhile', async () => {
    const base = createBlockStore(store, { now: clock });
    let release: (() => void) | undefined;
    const read = { started: false };
    // A store whose read of the active blocks is answered late, with what it saw before the changes.
    const slow = {
      ...base,
      async active(limit: number) {
        const rows = await base.active(limit);
        read.started = true;
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        return rows;
      },
    };
    const blocklist = createBlocklist({
      store: slow,
      settings: { refreshMs: 5000, maxEntries: 100 },
      now: clock,
    });
    const input = {
      kind: 'ip' as const,
      status: 429 as const,
      durationMs: 60_000,
      reason: 'x',
      createdBy: 'cli',
    };
    await base.add({ ...input, subject: '198.51.100.210' });
    const refreshing = blocklist.refresh();
    for (let i = 0; i < 100 && !read.started; i++) await new Promise((r) => setImmediate(r));
    assert.ok(read.started);
    await blocklist.add({ ...input, subject: '198.51.100.211' });
    await blocklist.liftSubject('ip', '198.51.100.210', 'cli');
    release!();
    await refreshing;
    assert.ok(blocklist.isBlocked('ip', '198.51.100.211'), 'the new block survived the stale read');
    assert.equal(blocklist.isBlocked('ip', '198.51.100.210'), undefined, 'the lifted block stayed lifted');
  });

  it('holds at most max_entries blocks in memory, keeping those that expire last', async () => {
    const blocks = createBlockStore(store, { now: clock });
    for (let i = 0; i < 20; i++) {
      await blocks.add({
        kind: 'ip',
        subject: `203.0.113.${i}`,
        status: 429,
        durationMs: 60_000 * (i + 1),
        reason: 'x',
        createdBy: 'cli',
      });
    }
    const blocklist = make([], 5);
    await blocklist.start();
    try {
      assert.equal(blocklist.size(), 5);
      assert.ok(blocklist.isBlocked('ip', '203.0.113.19'));
      assert.equal(blocklist.isBlocked('ip', '203.0.113.0'), undefined);
    } finally {
      blocklist.close();
    }
  });

  it('keeps enforcing the blocks it has while the store is unreachable', async () => {
    const failing = {
      ...createBlockStore(store, { now: clock }),
      active: () => Promise.reject(new Error('connection refused')),
    };
    const blocklist = createBlocklist({
      store: failing,
      settings: { refreshMs: 5000, maxEntries: 100 },
      now: clock,
    });
    await blocklist.add({
      kind: 'ip',
      subject: '198.51.100.250',
      status: 429,
      durationMs: 60_000,
      reason: 'x',
      createdBy: 'cli',
    });
    await assert.rejects(blocklist.refresh(), /connection refused/);
    assert.ok(blocklist.isBlocked('ip', '198.51.100.250'));
  });
});
