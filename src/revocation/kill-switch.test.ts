/**
 * The kill switch from outside: `portcullis tokens revoke` (and client and
 * key revocation) against a running gateway on the embedded SQLite store.
 * Tokens already verified and cached are refused too, within about a second.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runClientsCommand } from '../issuer/cli.js';
import { ClientRepository } from '../issuer/clients.js';
import { runKeysCommand } from '../keys/cli.js';
import { createApiKeyStore } from '../keys/store.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { freePort, send } from '../test-support/http.js';
import { runTokensCommand } from './cli.js';
import { externalToken, KILL_SWITCH_ISSUER, until } from './test-support/tokens.js';

const ISS = KILL_SWITCH_ISSUER;

describe('the token kill switch on one gateway (SQLite)', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let io: { out(s: string): void; err(s: string): void; env: NodeJS.ProcessEnv; lines: string[] };

  before(async () => {
    upstream = await startUpstream();
    const port = await freePort();
    gw = await startTestGateway({
      listen: { port },
      auth: {
        jwt: {
          providers: [
            {
              name: 'ext',
              issuer: ISS,
              audience: ['orders'],
              algorithms: ['HS256'],
              hmac_secret: '${env:PC_KILL_SWITCH_SECRET}',
            },
          ],
        },
        issuer: { issuer: `http://127.0.0.1:${port}`, audience: 'orders' },
        api_keys: { cache_ttl: '10m' },
      },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' }],
    });
    const lines: string[] = [];
    io = {
      lines,
      out: (s) => lines.push(s),
      err: (s) => lines.push(s),
      env: { ...process.env, PORTCULLIS_CONFIG: gw.configFile, PORTCULLIS_DATA: gw.dataDir },
    };
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
  const status = async (headers: Record<string, string>) =>
    (await send(gw.url, '/orders', { headers })).status;

  it('--sub revokes a subject’s tokens, cached ones included, and only up to now', async () => {
    const alice = await externalToken({ sub: 'alice' });
    const bob = await externalToken({ sub: 'bob' });
    assert.equal(await status(bearer(alice)), 200);
    assert.equal(await status(bearer(alice)), 200); // now a cache hit
    assert.equal(
      await runTokensCommand(['revoke', '--sub', 'alice', '--issuer', ISS, '--reason', 'laptop stolen'], io),
      0,
    );
    const ms = await until(gw.url, bearer(alice), 401, 3000);
    assert.ok(ms < 3000);
    assert.equal(await status(bearer(bob)), 200);
    // A token issued after the revocation is good.
    const later = await externalToken({ sub: 'alice', iat: Math.floor(Date.now() / 1000) + 2 });
    assert.equal(await status(bearer(later)), 200);
  });

  it('--jti revokes one token', async () => {
    const one = await externalToken({ sub: 'carol', jti: 'jti-1' });
    const two = await externalToken({ sub: 'carol', jti: 'jti-2' });
    assert.equal(await status(bearer(one)), 200);
    assert.equal(await runTokensCommand(['revoke', '--jti', 'jti-1'], io), 0);
    await until(gw.url, bearer(one), 401, 3000);
    assert.equal(await status(bearer(two)), 200);
  });

  it('--client revokes an external client’s tokens', async () => {
    const t = await externalToken({ sub: 'svc', client_id: 'reporting' });
    assert.equal(await status(bearer(t)), 200);
    assert.equal(await runTokensCommand(['revoke', '--client', 'reporting'], io), 0);
    await until(gw.url, bearer(t), 401, 3000);
  });

  it('revoking a built-in client revokes the tokens it already has', async () => {
    const repo = new ClientRepository(gw.running.store);
    const { client, secret } = await repo.create({ name: 'batch', scopes: ['orders:read'] });
    const reply = await send(gw.url, '/oauth2/token', {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${client.id}:${secret}`).toString('base64')}`,
      },
      body: 'grant_type=client_credentials',
    });
    const token = reply.json<{ access_token: string }>().access_token;
    assert.equal(await status(bearer(token)), 200);
    assert.equal(await runClientsCommand(['revoke', client.id], io), 0);
    await until(gw.url, bearer(token), 401, 3000);
  });

  it('a revoked API key is refused within a second, not after the cache ttl', async () => {
    const pepper = readFileSync(join(gw.dataDir, 'secrets', 'api-key-pepper'), 'utf8').trim();
    const keys = createApiKeyStore(gw.running.store, { pepper, logger: { warn() {} } });
    const { key, record } = await keys.create({ name: 'ci', scopes: [] });
    assert.equal(await status({ 'x-api-key': key }), 200);
    assert.equal(await runKeysCommand(['revoke', record.id], io), 0);
    const ms = await until(gw.url, { 'x-api-key': key }, 401, 3000);
    assert.ok(ms < 3000, `${ms} ms`);
  });

  it('--issued-before revokes every token of an issuer issued before a time', async () => {
    const d = await externalToken({ sub: 'dave' });
    const e = await externalToken({ sub: 'erin' });
    assert.equal(await status(bearer(d)), 200);
    assert.equal(await runTokensCommand(['revoke', '--issued-before', 'now', '--issuer', ISS], io), 0);
    await until(gw.url, bearer(d), 401, 3000);
    assert.equal(await status(bearer(e)), 401);
  });

  it('audits every revocation and lists them', async () => {
    await gw.running.audit.flush();
    const rows = await gw.running.store.query<{ action: string; target: string }>(
      "select action, target from audit_events where action = 'token.revoked'",
    );
    assert.ok(rows.some((r) => r.target === 'sub:alice'));
    assert.ok(rows.some((r) => r.target === 'jti:jti-1'));
    io.lines.length = 0;
    assert.equal(await runTokensCommand(['list'], io), 0);
    assert.match(io.lines.join('\n'), /laptop stolen/);
  });

  it('refuses a usage error', async () => {
    assert.equal(await runTokensCommand(['revoke', '--sub', 'a', '--jti', 'b'], io), 2);
    assert.equal(await runTokensCommand(['revoke'], io), 2);
  });
});
