import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';
import { obtainToken, signingKey, startProvider, stopProvider } from '../../test-support/oidc.js';

describe('JWT access tokens from a real OpenID provider, through the gateway', () => {
  let provider: Server;
  let issuer: string;
  let upstream: TestUpstream;
  let gw: TestGateway;
  let token: string;

  before(async () => {
    ({ issuer, server: provider } = await startProvider(0, [await signingKey('k1')]));
    upstream = await startUpstream();
    gw = await startTestGateway({
      listen: { trusted_proxies: ['127.0.0.1'] },
      auth: {
        jwt: {
          providers: [
            { name: 'oidc', issuer, audience: ['orders'], algorithms: ['RS256'], require_typ: true },
          ],
        },
      },
      upstreams: { app: { url: upstream.url } },
      routes: [
        { path: '/orders', methods: ['GET'], upstream: 'app', auth: ['jwt'], authorize: 'any-authenticated' },
      ],
    });
    token = await obtainToken(issuer);
  });

  after(async () => {
    await gw.close();
    await upstream.close();
    await stopProvider(provider);
  });

  it('lets a token from the provider through with its subject and scopes', async () => {
    const reply = await send(gw.url, '/orders', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(reply.status, 200);
    const headers = reply.json().headers as Record<string, string>;
    assert.equal(headers['x-portcullis-subject'], 'orders-batch');
    assert.equal(headers['x-portcullis-scopes'], 'orders:read orders:write');
    // The token itself reaches the upstream unchanged, for services that check it again.
    assert.equal(headers.authorization, `Bearer ${token}`);
  });

  it('reports the provider in /readyz', async () => {
    const ready = await fetch(`${gw.adminUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(((await ready.json()) as { checks: Record<string, string> }).checks.jwks, 'ok');
  });

  it('rejects the same token with one signature byte changed', async () => {
    const [h, p, sig] = token.split('.') as [string, string, string];
    const flipped = `${h}.${p}.${sig.slice(0, 10)}${sig[10] === 'A' ? 'B' : 'A'}${sig.slice(11)}`;
    const reply = await send(gw.url, '/orders', {
      headers: { authorization: `Bearer ${flipped}`, 'x-forwarded-for': '198.51.100.60' },
    });
    assert.equal(reply.status, 401);
    assert.equal(reply.headers['www-authenticate'], 'Bearer realm="portcullis", error="invalid_token"');
    const line = gw.logs.find((l) => l.msg === 'authentication failed' && l.method === 'jwt');
    assert.ok(line, 'the reason is logged');
    assert.equal(line.reason, 'bad_signature');
    assert.doesNotMatch(JSON.stringify(gw.logs), new RegExp(sig.slice(0, 20)));
  });

  it('rejects an unsigned token claiming the same issuer', async () => {
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url');
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    const payload = Buffer.from(JSON.stringify({ ...claims, sub: 'admin' })).toString('base64url');
    const reply = await send(gw.url, '/orders', {
      headers: { authorization: `Bearer ${header}.${payload}.`, 'x-forwarded-for': '198.51.100.61' },
    });
    assert.equal(reply.status, 401);
  });
});
