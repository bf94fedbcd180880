/** Test fixtures for the JWT verifier: a real JWKS/discovery server, settings, captured logs. */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import type { JwtProviderSettings } from '../../../config/types.js';

export { captureLogger } from '../../../test-support/log.js';

/** Provider settings with the schema defaults, for tests. */
export function providerSettings(
  overrides: Partial<JwtProviderSettings> & { issuer: string },
): JwtProviderSettings {
  return {
    name: 'idp',
    audience: ['orders'],
    jwksUri: undefined,
    algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
    hmacSecret: undefined,
    clockSkewSeconds: 30,
    requireTyp: false,
    maxTokenBytes: 8192,
    scopesClaim: 'scope',
    rolesClaim: undefined,
    tenantClaim: undefined,
    jwksCacheMs: 600_000,
    jwksCooldownMs: 30_000,
    jwksTimeoutMs: 2_000,
    ...overrides,
  };
}

/** A real HTTP server on 127.0.0.1 that publishes a JWKS and an OpenID discovery document. */
export interface KeyServer {
  /** `http://127.0.0.1:PORT`, also the issuer its discovery document names. */
  readonly origin: string;
  readonly jwksUri: string;
  /** Requests per path. */
  readonly hits: Map<string, number>;
  keys: JWK[];
  /** Status for every request; 200 serves the documents, anything else an error. */
  status: number;
  /** The issuer written into the discovery document (default: origin). */
  discoveryIssuer: string | undefined;
  jwksHits(): number;
  close(): Promise<void>;
}

export async function startKeyServer(keys: JWK[]): Promise<KeyServer> {
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    state.hits.set(path, (state.hits.get(path) ?? 0) + 1);
    if (state.status !== 200) {
      res.writeHead(state.status, { 'content-type': 'text/plain' }).end('unavailable');
      return;
    }
    if (path === '/jwks.json') {
      res
        .writeHead(200, { 'content-type': 'application/jwk-set+json' })
        .end(JSON.stringify({ keys: state.keys }));
    } else if (path === '/.well-known/openid-configuration') {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ issuer: state.discoveryIssuer ?? state.origin, jwks_uri: state.jwksUri }));
    } else {
      res.writeHead(404).end();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  const state: KeyServer = {
    origin,
    jwksUri: `${origin}/jwks.json`,
    hits: new Map(),
    keys,
    status: 200,
    discoveryIssuer: undefined,
    jwksHits: () => state.hits.get('/jwks.json') ?? 0,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
  return state;
}

/** Waits until `predicate` holds, polling; fails after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
