/**
 * A block added or lifted with the CLI reaches a running gateway on the same
 * store within about a second (the revocation feed), not at the next
 * `blocks.refresh` (set to an hour here, so only the feed can explain it).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { runBlocksCommand } from './cli.js';

describe('blocks made with the CLI', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startUpstream();
    gw = await startTestGateway({
      listen: { trusted_proxies: ['127.0.0.1'] },
      blocks: { refresh: '1h' },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/public', methods: ['GET'], upstream: 'app', auth: 'none' }],
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  const cli = (args: string[]) =>
    runBlocksCommand(args, {
      out: () => {},
      err: () => {},
      env: { ...process.env, PORTCULLIS_DATA: gw.dataDir, PORTCULLIS_CONFIG: gw.configFile },
    });
  const statusFrom = async (ip: string) => {
    const reply = await send(gw.url, '/public', { headers: { 'x-forwarded-for': ip } });
    if (reply.status !== 200 && reply.status !== 403) assert.fail(reply.body);
    if (reply.status === 403 && reply.json().code !== 'client.blocked') assert.fail(reply.body);
    return reply.status;
  };
  const within = async (ms: number, check: () => Promise<boolean>) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await check()) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  };

  it('apply to running gateways within seconds, added and lifted, and only to their subject', async () => {
    const ip = '203.0.113.70';
    assert.equal(await statusFrom(ip), 200);
    assert.equal(await cli(['add', '--ip', ip, '--for', '1h', '--status', '403']), 0);
    assert.ok(await within(5000, async () => (await statusFrom(ip)) === 403), 'the block did not arrive');
    assert.equal(await statusFrom('203.0.113.71'), 200);
    assert.equal(await cli(['lift', '--ip', ip]), 0);
    assert.ok(await within(5000, async () => (await statusFrom(ip)) === 200), 'the lift did not arrive');
  });
});
