/** The gateway's own audit log: every request and every CLI act lands in one verifiable chain. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runKeysCommand } from '../keys/cli.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { runAuditCommand } from './cli.js';

describe('the audit log of a running gateway', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  const out: string[] = [];
  const io = () => ({
    out: (s: string) => out.push(s),
    err: (s: string) => out.push(s),
    env: { ...process.env, PORTCULLIS_DATA: gw.dataDir, PORTCULLIS_CONFIG: gw.configFile },
  });

  before(async () => {
    upstream = await startUpstream();
    gw = await startTestGateway({
      auth: { api_keys: {} },
      upstreams: { app: { url: upstream.url } },
      routes: [
        { path: '/open', methods: ['GET'], upstream: 'app', auth: 'none' },
        { path: '/closed', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' },
      ],
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('records requests and a key made by the CLI in one chain that verifies', async () => {
    assert.equal(await runKeysCommand(['create', '--name', 'ci', '--scopes', 'a'], io()), 0);
    const key = out.find((l) => l.startsWith('pcl_'))!;
    assert.equal((await send(gw.url, '/open')).status, 200);
    assert.equal((await send(gw.url, '/closed', { headers: { 'x-api-key': key } })).status, 200);
    assert.equal((await send(gw.url, '/closed', { headers: { 'x-api-key': 'pcl_wrong' } })).status, 401);
    await gw.running.audit.flush();
    out.length = 0;
    assert.equal(await runAuditCommand(['search', '--json'], io()), 0);
    const events = out.join('\n');
    assert.match(events, /key\.created/);
    assert.match(events, /"reason":"auth\.invalid_credentials"/);
    assert.match(events, /"route":"GET \/open"/);
    assert.doesNotMatch(events, new RegExp(key.slice(4, 40)));
    out.length = 0;
    assert.equal(await runAuditCommand(['verify'], io()), 0, out.join('\n'));
  });
});
