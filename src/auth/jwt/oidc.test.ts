/**
 * Against a real OpenID provider (the `oidc-provider` package) and a real
 * client (oauth4webapi): discovery, RFC 9068 access tokens from the
 * client-credentials grant, and key rotation while the verifier runs.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader, type JWK } from 'jose';
import { CLIENT_ID, obtainToken, signingKey, startProvider, stopProvider } from '../../test-support/oidc.js';
import { createJwtVerifier, type JwtVerifier } from './index.js';
import { captureLogger, providerSettings } from './test-support/fixtures.js';

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
