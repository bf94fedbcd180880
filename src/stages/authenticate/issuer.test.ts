/** The gateway's own OAuth 2.0 issuer, end to end: a real client library gets a token, the gateway accepts it. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as oauth from 'oauth4webapi';
import { ClientRepository } from '../../issuer/clients.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../../test-support/gateway.js';
import { freePort, send } from '../../test-support/http.js';

describe('tokens from the built-in issuer, through the gateway', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let as: oauth.AuthorizationServer;
  let client: { id: string; secret: string };
  const insecure = { [oauth.allowInsecureRequests]: true };

  before(async () => {
    upstream = await startUpstream();
    // The issuer URL is the gateway's own public URL, so the port is chosen first.
    const port = await freePort();
    gw = await startTestGateway({
      listen: { port },
      auth: { issuer: { issuer: `http://127.0.0.1:${port}`, audience: 'orders-api' } },
      upstreams: { app: { url: upstream.url } },
      routes: [
        { path: '/orders', methods: ['GET'], upstream: 'app', authorize: { scopes: ['orders:read'] } },
      ],
    });
    const repo = new ClientRepository(gw.running.store);
    const created = await repo.create({
      name: 'batch',
      scopes: ['orders:read', 'orders:write'],
      tenant: 'acme',
    });
    client = { id: created.client.id, secret: created.secret };
    const issuer = new URL(gw.url);
    as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { ...insecure, algorithm: 'oauth2' }),
    );
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  async function getToken(scope: string): Promise<string> {
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      { client_id: client.id },
      oauth.ClientSecretBasic(client.secret),
      { scope },
      insecure,
    );
    return (await oauth.processClientCredentialsResponse(as, { client_id: client.id }, response))
      .access_token;
  }

  it('publishes RFC 8414 metadata that a client library accepts', () => {
    assert.equal(as.token_endpoint, `${gw.url}/oauth2/token`);
    assert.equal(as.jwks_uri, `${gw.url}/oauth2/jwks`);
  });

  it('accepts its own token with the narrowed scopes and the client tenant', async () => {
    const token = await getToken('orders:read admin');
    const reply = await send(gw.url, '/orders', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(reply.status, 200);
    const headers = reply.json().headers as Record<string, string>;
    assert.equal(headers['x-portcullis-subject'], client.id);
    assert.equal(headers['x-portcullis-scopes'], 'orders:read');
    assert.equal(headers['x-portcullis-tenant'], 'acme');
  });

  it('denies a token without the scope the route needs', async () => {
    const token = await getToken('orders:write');
    assert.equal(
      (await send(gw.url, '/orders', { headers: { authorization: `Bearer ${token}` } })).status,
      403,
    );
  });

  it('stops a token revoked at the revocation endpoint (RFC 7009)', async () => {
    const token = await getToken('orders:read');
    assert.equal(
      (await send(gw.url, '/orders', { headers: { authorization: `Bearer ${token}` } })).status,
      200,
    );
    const revoked = await oauth.revocationRequest(
      as,
      { client_id: client.id },
      oauth.ClientSecretBasic(client.secret),
      token,
      insecure,
    );
    assert.equal(revoked.status, 200);
    assert.equal(
      (await send(gw.url, '/orders', { headers: { authorization: `Bearer ${token}` } })).status,
      401,
    );
  });

  it('refuses a wrong client secret without issuing anything', async () => {
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      { client_id: client.id },
      oauth.ClientSecretBasic(`${client.secret}x`),
      { scope: 'orders:read' },
      insecure,
    );
    assert.equal(response.status, 401);
  });
});
