/** `listen.tls.http2` in the config: defaults, turning it off, and what the schema refuses. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../config/load.js';
import { DEFAULT_HTTP2 } from '../tls/test-support/clients.js';

describe('the listen.tls.http2 config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-h2-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;

  const load = (http2: string) => {
    const file = join(dir, `c${n++}.yaml`);
    writeFileSync(
      file,
      `listen:
  host: 127.0.0.1
  port: 8443
  tls:
    certificates: [{ cert: server.crt, key: server.key }]
${http2}
upstreams: { app: { url: "http://127.0.0.1:3000" } }
routes:
  - path: /x
    methods: [GET]
    upstream: app
    auth: none
`,
    );
    return loadConfig(file, { env: {} });
  };
  const issuesOf = async (http2: string): Promise<string[]> => {
    try {
      await load(http2);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.issues.map((i) => `${i.path}: ${i.message}`);
    }
    assert.fail('the config was accepted');
  };

  it('turns HTTP/2 on by default, with the documented limits', async () => {
    const { config } = await load('');
    assert.deepEqual(config.tls.listener?.http2, DEFAULT_HTTP2);
  });

  it('turns HTTP/2 off with enabled: false', async () => {
    const { config } = await load('    http2: { enabled: false }');
    assert.equal(config.tls.listener?.http2, undefined);
  });

  it('reads each limit', async () => {
    const { config } = await load(`    http2:
      max_concurrent_streams: 20
      max_header_list_size: 8kb
      max_resets_per_second: 10
      max_control_frames_per_second: 5
      max_session_memory: 4mb
      idle_timeout: 10s
      stream_idle_timeout: 5s`);
    assert.deepEqual(config.tls.listener?.http2, {
      maxConcurrentStreams: 20,
      maxHeaderListSize: 8 * 1024,
      maxResetsPerSecond: 10,
      maxControlFramesPerSecond: 5,
      maxSessionMemoryMb: 4,
      idleTimeoutMs: 10_000,
      streamIdleTimeoutMs: 5_000,
    });
  });

  it('refuses an unknown key, a zero stream limit and less than 1mb of session memory', async () => {
    assert.ok((await issuesOf('    http2: { max_streams: 5 }')).some((i) => i.includes('http2')));
    assert.ok(
      (await issuesOf('    http2: { max_concurrent_streams: 0 }')).some((i) =>
        i.includes('max_concurrent_streams'),
      ),
    );
    assert.ok(
      (await issuesOf('    http2: { max_session_memory: 512kb }')).some((i) =>
        i.includes('max_session_memory'),
      ),
    );
  });
});
