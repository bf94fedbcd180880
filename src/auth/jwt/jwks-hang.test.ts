/**
 * Key fetching that cannot hang (issue 18, item 4): a JWKS server that
 * accepts and never answers, 20 fetches with garbage collection forced
 * throughout (a child `node --expose-gc`), each settling within its timeout;
 * then the server answers and the keys refresh by themselves, in the key
 * source and through a real gateway that started with the provider down.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const child = fileURLToPath(new URL('./test-support/jwks-hang-child.ts', import.meta.url));

interface Measured {
  timeoutMs: number;
  settleMs: number[];
  pendingAfterRuns: number;
  hadKeysWhileHung: boolean;
  selfRecoveryMs: number;
  gatewayWhileHung: { status: number; ms: number }[];
  readyWhileHung: number;
  gatewayRecoveryMs: number;
}

function runChild(): Promise<Measured> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', child],
      { env: { ...process.env, RUNS: '20' }, timeout: 90_000 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`${err.message}\n${stderr}`));
          return;
        }
        resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as Measured);
      },
    );
  });
}

describe('JWKS fetching against a server that never answers, with forced GC', () => {
  it('settles every fetch within its timeout and refreshes once the server answers', async () => {
    const m = await runChild();
    assert.equal(m.settleMs.length, 20);
    assert.equal(m.pendingAfterRuns, 0, `fetches still pending: ${JSON.stringify(m.settleMs)}`);
    // Each fetch settles at its timeout, give or take scheduling on a busy machine.
    for (const ms of m.settleMs) assert.ok(ms < m.timeoutMs + 1500, `settled after ${ms} ms`);
    assert.equal(m.hadKeysWhileHung, false);
    assert.ok(m.selfRecoveryMs >= 0, 'the key source recovered by itself');
    assert.ok(m.selfRecoveryMs < 5000, `recovered after ${m.selfRecoveryMs} ms`);
    for (const r of m.gatewayWhileHung) {
      assert.equal(r.status, 503);
      assert.ok(r.ms < m.timeoutMs + 1500, `answered after ${r.ms} ms`);
    }
    assert.equal(m.readyWhileHung, 503);
    assert.ok(m.gatewayRecoveryMs >= 0, 'JWT routes recovered');
    assert.ok(m.gatewayRecoveryMs < 6000, `recovered after ${m.gatewayRecoveryMs} ms`);
  });
});
