/**
 * The cluster's in-memory rate limits, with the IPC channel replaced by an
 * in-process one: two workers' limiters share the primary's table, the
 * requests of one event-loop turn travel in one message, and a primary that
 * does not answer leaves the decision to each worker's divided fallback.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ClusterLimiter,
  type LimitRequestMessage,
  type LimitTransport,
  primaryLimits,
} from './cluster-limiter.js';
import { MemoryLimiter } from './limiter.js';
import type { LimitSettings } from './types.js';

const limit: LimitSettings = {
  type: 'rate',
  name: 'per-ip',
  key: [{ kind: 'ip' }],
  mode: 'enforce',
  count: 4,
  periodMs: 60_000,
  burst: 4,
};

/** A channel to `primary` (or to nothing, when undefined) that records what it carries. */
function channel(primary: ReturnType<typeof primaryLimits> | undefined) {
  const sent: LimitRequestMessage[] = [];
  let handler: ((m: unknown) => void) | undefined;
  const transport: LimitTransport = {
    send(message) {
      sent.push(message);
      const answer = primary?.(structuredClone(message));
      if (answer !== undefined) setImmediate(() => handler?.(structuredClone(answer)));
    },
    subscribe(h) {
      handler = h;
      return () => {
        handler = undefined;
      };
    },
  };
  return { transport, sent };
}

describe('rate limits decided by the cluster primary', () => {
  it('admit the limit once across workers, not once per worker', async () => {
    const primary = primaryLimits(1000);
    const workers = [1, 2].map(
      () => new ClusterLimiter(channel(primary).transport, new MemoryLimiter(1000, undefined, 2)),
    );
    const allowed: boolean[] = [];
    for (let i = 0; i < 8; i++) {
      const v = await workers[i % 2]!.consume([{ limit, key: '203.0.113.7' }], 1);
      allowed.push(v.allowed);
      assert.equal(v.fallback, undefined);
    }
    assert.deepEqual(allowed, [true, true, true, true, false, false, false, false]);
    const other = await workers[0]!.consume([{ limit, key: '198.51.100.1' }], 1);
    assert.equal(other.allowed, true, 'another client has its own bucket');
  });

  it('send the requests of one event-loop turn in one message, answered in order', async () => {
    const primary = primaryLimits(1000);
    const { transport, sent } = channel(primary);
    const limiter = new ClusterLimiter(transport, new MemoryLimiter(1000));
    const verdicts = await Promise.all(
      Array.from({ length: 6 }, () => limiter.consume([{ limit, key: 'k' }], 1)),
    );
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.requests.length, 6);
    assert.deepEqual(
      verdicts.map((v) => [v.allowed, v.outcomes[0]!.remaining]),
      [
        [true, 3],
        [true, 2],
        [true, 1],
        [true, 0],
        [false, 0],
        [false, 0],
      ],
    );
  });

  it('fall back to each worker’s share of the limit when the primary does not answer', async () => {
    const limiter = new ClusterLimiter(
      channel(undefined).transport,
      new MemoryLimiter(1000, undefined, 2),
      20,
    );
    const verdicts = [];
    for (let i = 0; i < 3; i++) verdicts.push(await limiter.consume([{ limit, key: 'k' }], 1));
    assert.deepEqual(
      verdicts.map((v) => [v.allowed, v.fallback]),
      [
        [true, true],
        [true, true],
        [false, true],
      ],
      'half of the burst of 4 on each of 2 workers',
    );
    assert.equal(limiter.timeouts, 3);
  });

  it('keep listening after close until the batches sent are answered', async () => {
    let handlers = 0;
    const inner = channel(primaryLimits(1000)).transport;
    const transport: LimitTransport = {
      send: (m) => inner.send(m),
      subscribe(h) {
        handlers++;
        const off = inner.subscribe(h);
        return () => {
          handlers--;
          off();
        };
      },
    };
    const limiter = new ClusterLimiter(transport, new MemoryLimiter(1000), 60_000);
    const pending = limiter.consume([{ limit, key: 'k' }], 1);
    limiter.close();
    assert.equal(handlers, 1, 'still listening for the batch in flight');
    const verdict = await pending;
    assert.equal(verdict.fallback, undefined, 'answered by the primary, not by the fallback');
    assert.equal(handlers, 0, 'then stops listening');
  });

  it('ignore messages that are not its answers', () => {
    const primary = primaryLimits(10);
    assert.equal(primary({ type: 'portcullis:collect', id: 1 }), undefined);
    assert.equal(primary(null), undefined);
    assert.equal(
      primary({
        type: 'portcullis:rate-limit',
        id: 2,
        requests: [{ checks: [['x', 0, 1, 1, 'enforce', 'k']], cost: 1 }],
      }),
      undefined,
      'a check with no rate is not decided',
    );
    assert.equal(
      primary({ type: 'portcullis:rate-limit', id: 3, requests: [{ checks: 'x', cost: 1 }] }),
      undefined,
    );
  });
});
