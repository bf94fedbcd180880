/**
 * OAuth clients and token revocations made through the admin API take
 * effect on the public side: a revoked client's tokens and a revoked
 * subject's tokens are refused within seconds; others still pass.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { externalToken, KILL_SWITCH_ISSUER, until } from '../revocation/test-support/tokens.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { freePort, send } from '../test-support/http.js';
import { runAdminCommand } from './tokens/cli.js';

describe('the kill switch through the admin API', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let operator: string;
  let viewer: string;

  const token = async (role: string) => {
    const out: string[] = [];
    assert.equal(
      await runAdminCommand(['tokens', 'create', '--role', role], {
        out: (s) => out.push(s),
        err: () => {},
        env: { ...process.env, PORTCULLIS_CONFIG: gw.configFile, PORTCULLIS_DATA: gw.dataDir },
      }),
      0,
    );
    return out.join('').trim();
  };
  const call = (t: string, method: string, path: string, body?: unknown) =>
    send(gw.adminUrl, path, {
      method,
      headers: {
        authorization: `Bearer ${t}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

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
              issuer: KILL_SWITCH_ISSUER,
              audience: ['orders'],
              algorithms: ['HS256'],
              hmac_secret: '${env:PC_KILL_SWITCH_SECRET}',
            },
          ],
        },
        issuer: { issuer: `http://127.0.0.1:${port}`, audience: 'orders' },
      },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' }],
    });
    operator = await token('operator');
    viewer = await token('viewer');
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('revokes a subject’s tokens on the gateway within seconds, and no one else’s', async () => {
    const alice = await externalToken({ sub: 'alice' });
    const bob = await externalToken({ sub: 'bob' });
    assert.equal((await send(gw.url, '/orders', { headers: bearer(alice) })).status, 200);
    assert.equal(
      (await call(viewer, 'POST', '/admin/revocations', { kind: 'sub', subject: 'alice' })).status,
      403,
    );
    const made = await call(operator, 'POST', '/admin/revocations', {
      kind: 'sub',
      subject: 'alice',
      issuer: KILL_SWITCH_ISSUER,
      reason: 'laptop stolen',
    });
    assert.equal(made.status, 201, made.body);
    assert.ok((await until(gw.url, bearer(alice), 401, 3000)) < 3000);
    assert.equal((await send(gw.url, '/orders', { headers: bearer(bob) })).status, 200);
  });

  it('registers an OAuth client whose secret is shown once and gets tokens, then revokes it and its tokens', async () => {
    const made = await call(operator, 'POST', '/admin/clients', { name: 'batch', scopes: ['orders:read'] });
    assert.equal(made.status, 201, made.body);
    const { client, client_secret: secret } = made.json<{ client: { id: string }; client_secret: string }>();
    const issued = await send(gw.url, '/oauth2/token', {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${client.id}:${secret}`).toString('base64')}`,
      },
      body: 'grant_type=client_credentials',
    });
    assert.equal(issued.status, 200, issued.body);
    const access = issued.json<{ access_token: string }>().access_token;
    assert.equal((await send(gw.url, '/orders', { headers: bearer(access) })).status, 200);

    const listed = await call(viewer, 'GET', '/admin/clients');
    assert.equal(listed.status, 200);
    assert.ok(listed.body.includes(client.id));
    assert.ok(!listed.body.includes(secret));
    assert.doesNotMatch(listed.body, /secret/);

    assert.equal((await call(viewer, 'POST', `/admin/clients/${client.id}/revoke`)).status, 403);
    const revoked = await call(operator, 'POST', `/admin/clients/${client.id}/revoke`);
    assert.equal(revoked.status, 200, revoked.body);
    await until(gw.url, bearer(access), 401, 3000);
    assert.equal(
      (await call(operator, 'POST', '/admin/clients/cli_AAAAAAAAAAAAAAAAAAAAAA/revoke')).status,
      404,
    );
    const bad = await call(operator, 'POST', '/admin/clients', { name: 'x', scopes: ['has space'] });
    assert.equal(bad.status, 400, bad.body);
  });
});
