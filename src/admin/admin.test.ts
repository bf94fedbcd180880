import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../log.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';

describe('the admin listener', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startUpstream();
    gw = await startTestGateway({
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/a', methods: ['GET'], upstream: 'app', auth: 'none' }],
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('answers /healthz while the process runs', async () => {
    const res = await fetch(`${gw.adminUrl}/healthz`);
    assert.equal(res.status, 200);
  });

  it('is ready when the config is loaded and the store answers', async () => {
    const res = await fetch(`${gw.adminUrl}/readyz`);
    assert.equal(res.status, 200);
    const { checks } = (await res.json()) as { checks: Record<string, string> };
    assert.equal(checks.store, 'ok');
    assert.equal(checks.config, 'ok');
    assert.equal(checks.audit, 'ok');
  });

  it('is not ready, naming the store, when the store stops answering', async () => {
    gw.running.admin!.setCheck('store', () => Promise.reject(new Error('connection refused')));
    const res = await fetch(`${gw.adminUrl}/readyz`);
    assert.equal(res.status, 503);
    assert.equal(
      ((await res.json()) as { checks: Record<string, string> }).checks.store,
      'connection refused',
    );
    gw.running.admin!.setCheck('store', () => gw.running.store.ping());
  });

  it('is never served on the public listener', async () => {
    const res = await fetch(`${gw.url}/readyz`);
    assert.equal(res.status, 404);
  });
});

describe('logs', () => {
  it('redact credentials wherever request headers are logged', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _e, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const logger = createLogger({ level: 'info', redact: ['x-session'] }, sink);
    logger.info({
      req: {
        headers: {
          authorization: 'Bearer secret-token',
          cookie: 'sid=secret-cookie',
          'x-api-key': 'pcl_secret-key',
          'x-session': 'secret-session',
          accept: 'application/json',
        },
      },
    });
    const text = lines.join('');
    assert.doesNotMatch(text, /secret-/);
    assert.match(text, /application\/json/);
    assert.match(text, /\[redacted\]/);
  });
});
