/** Blocks key addresses like every other control: an IPv6 block covers the client's /64 (listen.ipv6_prefix). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ipKey } from '../http/client-ip.js';
import type { Store } from '../store/index.js';
import { createBlocklist } from './blocklist.js';
import { createBlockStore } from './store.js';
import { openTestSqlite } from './test-support/store.js';

describe('blocks of IPv6 clients', () => {
  let store: Store;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ store, cleanup } = await openTestSqlite());
  });
  after(() => cleanup?.());

  it('a block of one address covers its /64, after a refresh too, and not the next /64', async () => {
    const make = () =>
      createBlocklist({
        store: createBlockStore(store),
        settings: { refreshMs: 60_000, maxEntries: 100 },
        ipKey: (ip) => ipKey(ip, 64),
      });
    const here = make();
    await here.start();
    await here.add({
      kind: 'ip',
      subject: '2001:db8:5:6::1',
      status: 403,
      durationMs: 60_000,
      reason: 'test',
      createdBy: 'test',
    });
    const elsewhere = make();
    await elsewhere.start();
    try {
      for (const list of [here, elsewhere]) {
        assert.throws(() => list.checkIp('2001:db8:5:6:aaaa::7'));
        assert.doesNotThrow(() => list.checkIp('2001:db8:5:7::1'));
        assert.doesNotThrow(() => list.checkIp('192.0.2.1'));
      }
    } finally {
      here.close();
      elsewhere.close();
    }
  });
});
