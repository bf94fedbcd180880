/**
 * Buffers released after large filtered responses (issue 18, item 7c): an
 * 8 MB JSON response filtered through a real gateway (re-serialised with
 * and without Content-Length, sent as received, refused as too large),
 * three times each, in a child `node --expose-gc`. After a full GC the
 * process holds no more heap or ArrayBuffer memory than before the first
 * request: no body, decoded text or parsed value is kept once its response
 * is sent. (The limit is a quarter of one body; a kept body, its text or
 * its parsed value would each pass it.) The child measures memory, never time.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const child = fileURLToPath(new URL('./test-support/large-response-child.ts', import.meta.url));

interface Received {
  status: number;
  bytes: number;
  records?: number;
  secrets?: number;
}

interface Measured {
  bodyBytes: number;
  exactBytes: number;
  expectedRecords: number;
  received: Record<string, Received[]>;
  retained: { heapUsed: number; arrayBuffers: number };
}

function runChild(): Promise<Measured> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', child],
      { env: { ...process.env, REQUESTS: '3', BODY_MB: '8' }, timeout: 120_000 },
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

describe('large responses on a filtered route', () => {
  let measured: Promise<Measured> | undefined;
  const run = () => {
    measured ??= runChild();
    return measured;
  };

  it('are projected whole: every record arrives, without the undeclared property', async () => {
    const m = await run();
    for (const path of ['/projected', '/chunked']) {
      for (const r of m.received[path]!) {
        assert.equal(r.status, 200, path);
        assert.equal(r.records, m.expectedRecords, path);
        assert.equal(r.secrets, 0, path);
        assert.ok(r.bytes < m.bodyBytes, `${path}: the undeclared property was removed`);
      }
    }
  });

  it('are sent as received when they match their schema', async () => {
    const m = await run();
    for (const r of m.received['/exact']!) {
      assert.equal(r.status, 200);
      assert.equal(r.bytes, m.exactBytes);
    }
  });

  it('are refused with 502 when they pass the route’s max_bytes', async () => {
    const m = await run();
    for (const r of m.received['/small']!) assert.equal(r.status, 502);
  });

  it('leave nothing held once sent: heap and buffers after a full GC are back where they started', async () => {
    const m = await run();
    const limit = m.bodyBytes / 4;
    assert.ok(
      m.retained.arrayBuffers < limit,
      `${(m.retained.arrayBuffers / 1048576).toFixed(1)} MB of buffers still held after a full GC`,
    );
    assert.ok(
      m.retained.heapUsed < limit,
      `${(m.retained.heapUsed / 1048576).toFixed(1)} MB of heap still held after a full GC`,
    );
  });
});
