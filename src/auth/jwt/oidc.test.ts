/**
 * Against a real OpenID provider (the `oidc-provider` package) and a real
 * client (oauth4webapi): discovery, RFC 9068 access tokens from the
 * client-credentials grant, and key rotation while the verifier runs.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader, exportJWK, generateKeyPair, type JWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { createJwtVerifier, type JwtVerifier } from './index.js';
import { captureLogger, providerSettings } from './test-support/fixtures.js';

/** The part of oidc-provider this test uses (the package ships no types). */
type OidcProvider = { callback(): (req: IncomingMessage, res: ServerResponse) => void };
type OidcProviderClass = new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;

// A computed specifier keeps TypeScript from looking for declarations.
const oidcModule: string = 'oidc-provider';
const { default: Provider } = (await import(oidcModule)) as { default: OidcProviderClass };

const CLIENT_ID = 'orders-batch';
const CLIENT_SECRET = 'a-client-secret-long-enough-for-the-test';
const SCOPES = 'orders:read orders:write';

async function signingKey(kid: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}

/** Starts oidc-provider on `port` (0: any free one) with `keys`, the first of which signs. */
async function startProvider(port: number, keys: JWK[]): Promise<{ issuer: string; server: Server }> {
  const server = createServer();
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        scope: SCOPES,
      },
    ],
    scopes: SCOPES.split(' '),
    jwks: { keys },
    ttl: { ClientCredentials: 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'https://orders.test',
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: SCOPES,
          audience: 'orders',
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  });
  server.on('request', provider.callback());
  return { issuer, server };
}

async function stopProvider(server: Server): Promise<void> {
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
}

/** The client-credentials grant over real HTTP, as any OAuth client would do it. */
async function obtainToken(issuer: string): Promise<string> {
  const insecure = { [oauth.allowInsecureRequests]: true };
  const issuerUrl = new URL(issuer);
  const as = await oauth.processDiscoveryResponse(
    issuerUrl,
    await oauth.discoveryRequest(issuerUrl, insecure),
  );
  const client = { client_id: CLIENT_ID };
  const response = await oauth.clientCredentialsGrantRequest(
    as,
    client,
    oauth.ClientSecretBasic(CLIENT_SECRET),
    { scope: SCOPES },
    insecure,
  );
  const result = await oauth.processClientCredentialsResponse(as, client, response);
  return result.access_token;
}

describe('JWT access tokens from a real OpenID provider', () => {
  let server: Server;
  let issuer: string;
  let verifier: JwtVerifier;
  let oldKey: JWK;

  before(async () => {
    oldKey = await signingKey('key-2024');
    ({ issuer, server } = await startProvider(0, [oldKey]));
    verifier = createJwtVerifier({
      // Discovery (no jwks_uri), RFC 9068 typ required; the cache off so
      // that every verify below really looks up its key.
      providers: [providerSettings({ name: 'oidc', issuer, algorithms: ['RS256'], requireTyp: true })],
      cacheSize: 0,
      logger: captureLogger().logger,
    });
    await verifier.start();
  });

  after(async () => {
    verifier.close();
    await stopProvider(server);
  });

  let firstToken: string;

  it('is ready once discovery and the JWKS were fetched', async () => {
    await verifier.readiness();
    assert.equal(verifier.stats.jwksFetches, 1);
  });

  it('verifies a client-credentials access token and reads its scopes', async () => {
    firstToken = await obtainToken(issuer);
    assert.equal(decodeProtectedHeader(firstToken).kid, 'key-2024');
    const principal = await verifier.verify(firstToken);
    assert.equal(principal.kind, 'jwt');
    assert.equal(principal.id, CLIENT_ID);
    assert.deepEqual(principal.scopes, ['orders:read', 'orders:write']);
    assert.equal(principal.claims.client_id, CLIENT_ID);
    assert.equal(principal.claims.aud, 'orders');
  });

  it('accepts tokens signed with a rotated key, and older ones, without a restart', async () => {
    const port = Number(new URL(issuer).port);
    await stopProvider(server);
    // The new key comes first, so the provider signs with it; the old one
    // stays published while tokens signed with it are alive.
    ({ server } = await startProvider(port, [await signingKey('key-2025'), oldKey]));

    const rotatedToken = await obtainToken(issuer);
    assert.equal(decodeProtectedHeader(rotatedToken).kid, 'key-2025');
    const principal = await verifier.verify(rotatedToken);
    assert.deepEqual(principal.scopes, ['orders:read', 'orders:write']);
    assert.equal(verifier.stats.jwksFetches, 2, 'one refetch for the new kid');

    assert.equal((await verifier.verify(firstToken)).id, CLIENT_ID);
    assert.equal((await verifier.verify(rotatedToken)).id, CLIENT_ID);
    assert.equal(verifier.stats.jwksFetches, 2);
  });
});
