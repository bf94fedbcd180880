/**
 * Builds the authentication services for one config: verifiers, caches and
 * the built-in issuer. Rebuilt on reload; the brute-force guard is passed in
 * so its counters survive reloads.
 */
import { clusterRateLimits } from '../cluster.js';
import type { GatewayConfig } from '../config/types.js';
import type { GatewayEndpoint } from '../gateway.js';
import { createIssuer } from '../issuer/index.js';
import { createApiKeyAuthenticator, resolvePepper } from '../keys/authenticator.js';
import type { Logger } from '../log.js';
import type { RevocationRegistry } from '../revocation/registry.js';
import type { Store } from '../store/types.js';
import { createIntrospector } from './introspection.js';
import { createJwtVerifier } from './jwt/index.js';
import type { AuthServices } from './services.js';
import type { BruteForceGuard } from './types.js';

export interface BuiltAuth {
  services: AuthServices;
  endpoints: GatewayEndpoint[];
  /** Readiness checks by name (JWKS obtained, …). */
  checks: Record<string, () => Promise<void>>;
  close(): void;
}

export async function buildAuth(
  config: GatewayConfig,
  deps: { logger: Logger; store: Store; guard: BruteForceGuard; revocations?: RevocationRegistry },
): Promise<BuiltAuth> {
  const { auth } = config;
  const issuer = auth.issuer
    ? await createIssuer({
        settings: auth.issuer,
        db: deps.store,
        dataDir: config.store.dataDir,
        logger: deps.logger,
        guard: deps.guard,
        cluster: clusterRateLimits(),
      })
    : undefined;
  const jwt =
    auth.jwt !== undefined || issuer !== undefined
      ? createJwtVerifier({
          providers: auth.jwt?.providers ?? [],
          local: issuer ? [issuer.provider] : [],
          cacheSize: auth.jwt?.cacheSize ?? 10_000,
          logger: deps.logger,
        })
      : undefined;
  // Keys are fetched now, but a provider that is down does not stop the start:
  // its routes answer 503 and /readyz reports it until the keys arrive.
  await jwt?.start();
  const checks: Record<string, () => Promise<void>> = {};
  if (jwt) checks.jwks = () => jwt.readiness();
  const services: AuthServices = {
    jwt,
    introspection: auth.introspection
      ? createIntrospector({ providers: auth.introspection.providers, logger: deps.logger })
      : undefined,
    apiKeys: auth.apiKeys
      ? createApiKeyAuthenticator({
          settings: auth.apiKeys,
          pepper: resolvePepper(auth.apiKeys, config.store.dataDir),
          db: deps.store,
          logger: deps.logger,
        })
      : undefined,
    guard: deps.guard,
    revocations: deps.revocations,
  };
  return {
    services,
    endpoints: issuer ? [...issuer.routes] : [],
    checks,
    close() {
      jwt?.close();
      issuer?.close();
    },
  };
}
