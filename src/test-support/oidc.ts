/**
 * A real OpenID provider (the `oidc-provider` package) for tests, issuing
 * RFC 9068 JWT access tokens by the client-credentials grant, and a real
 * client (oauth4webapi) to obtain them.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import * as oauth from 'oauth4webapi';

/** The part of oidc-provider this test uses (the package ships no types). */
type OidcProvider = { callback(): (req: IncomingMessage, res: ServerResponse) => void };
type OidcProviderClass = new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;

// A computed specifier keeps TypeScript from looking for declarations.
const oidcModule: string = 'oidc-provider';
const { default: Provider } = (await import(oidcModule)) as { default: OidcProviderClass };

export const CLIENT_ID = 'orders-batch';
export const CLIENT_SECRET = 'a-client-secret-long-enough-for-the-test';
export const SCOPES = 'orders:read orders:write';

export async function signingKey(kid: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}

/** Starts oidc-provider on `port` (0: any free one) with `keys`, the first of which signs. */
export async function startProvider(port: number, keys: JWK[]): Promise<{ issuer: string; server: Server }> {
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

export async function stopProvider(server: Server): Promise<void> {
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
}

/** The client-credentials grant over real HTTP, as any OAuth client would do it. */
export async function obtainToken(issuer: string): Promise<string> {
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
