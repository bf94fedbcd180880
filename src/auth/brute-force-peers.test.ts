/**
 * The brute-force guards of a cluster's workers counting together: two
 * guards joined by an in-process stand-in for the primary's relay.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuthSettings } from '../config/types.js';
import { createBruteForceGuard, type GuardEvent, type GuardPeers } from './brute-force.js';

const SETTINGS: AuthSettings['bruteForce'] = {
  enabled: true,
  maxFailures: 3,
  maxFailuresPerIp: 4,
  maxFailuresPerCredential: 1000,
  throttleRate: 5,
  windowMs: 60_000,
  lockoutMs: 60_000,
  maxLockoutMs: 3_600_000,
};

/** `n` peers: what one publishes, every other one receives (after a turn, as over IPC). */
function relay(n: number): GuardPeers[] {
  const handlers: (((events: GuardEvent[]) => void) | undefined)[] = new Array(n);
  return Array.from({ length: n }, (_, i) => ({
    publish(events) {
      const copy = structuredClone(events);
      setImmediate(() => {
        for (let j = 0; j < n; j++) if (j !== i) handlers[j]?.(copy);
      });
    },
    subscribe(handler) {
      handlers[i] = handler;
      return () => {
        handlers[i] = undefined;
      };
    },
  }));
}

const turn = () => new Promise((r) => setImmediate(r)).then(() => new Promise((r) => setImmediate(r)));

const refused = (guard: { check(ip: string, id: string | undefined): void }, ip: string, id?: string) => {
  try {
    guard.check(ip, id);
    return false;
  } catch (err) {
    assert.equal((err as { status?: number }).status, 429);
    return true;
  }
};

describe('brute-force guards of cluster workers', () => {
  it('lock an IP out in every worker once the workers together saw its failures', async () => {
    const lockouts: string[] = [];
    const peers = relay(2);
    const guards = peers.map((p) =>
      createBruteForceGuard(SETTINGS, { peers: p, onLockout: (key) => lockouts.push(key) }),
    );
    for (let i = 0; i < 3; i++) {
      guards[i % 2]!.recordFailure('203.0.113.9', undefined, 'malformed');
      await turn();
    }
    assert.ok(!refused(guards[0]!, '203.0.113.9') && !refused(guards[1]!, '203.0.113.9'), 'three of four');
    guards[1]!.recordFailure('203.0.113.9', undefined, 'bad_signature');
    await turn();
    assert.ok(refused(guards[0]!, '203.0.113.9'), 'locked out in the worker that saw two');
    assert.ok(refused(guards[1]!, '203.0.113.9'), 'and in the one whose failure was the fourth');
    assert.deepEqual(lockouts, ['ip:203.0.113.9'], 'reported once, by the worker that crossed the line');
    assert.ok(!refused(guards[0]!, '198.51.100.4'), 'another client is not affected');
  });

  it('share only guesses, and forgive the owner’s pair in every worker on a success', async () => {
    const guards = relay(2).map((p) => createBruteForceGuard(SETTINGS, { peers: p }));
    for (let i = 0; i < 5; i++) guards[0]!.recordFailure('192.0.2.1', undefined, 'expired');
    await turn();
    assert.ok(!refused(guards[1]!, '192.0.2.1'), 'an expired token is not a guess');

    guards[0]!.recordFailure('192.0.2.2', 'key_a', 'key_mismatch');
    guards[0]!.recordFailure('192.0.2.2', 'key_a', 'key_mismatch');
    await turn();
    guards[1]!.recordSuccess('192.0.2.2', 'key_a');
    await turn();
    guards[0]!.recordFailure('192.0.2.2', 'key_a', 'key_mismatch');
    await turn();
    assert.ok(
      !refused(guards[0]!, '192.0.2.2', 'key_a'),
      'the success in worker 2 reset the pair in worker 1',
    );
  });
});
