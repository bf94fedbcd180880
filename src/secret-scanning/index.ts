/**
 * Leaked keys revoked automatically: the secret-scanning receiver
 * (`receiver.ts`), the provider's public keys (`public-keys.ts`) and its
 * config (`schema.ts`). `src/runtime.ts` mounts the receiver on the public
 * listener, before route matching, as one of the gateway's own endpoints.
 */
import type { Finding } from '../anomaly/types.js';
import type { GatewayConfig } from '../config/types.js';
import type { AdminEvent } from '../events/types.js';
import type { GatewayEndpoint } from '../gateway.js';
import { resolvePepper } from '../keys/authenticator.js';
import type { Db } from '../store/types.js';
import { createKeyRing, type KeyRing } from './public-keys.js';
import { createSecretScanningEndpoint } from './receiver.js';

export { type Labelled, LEAKED_KEY_DETECTOR, verifySignature } from './receiver.js';
export { GITHUB_PUBLIC_KEYS_URL, type SecretScanningSettings } from './schema.js';

export interface SecretScanningDeps {
  db: Db;
  logger: { warn(details: Record<string, unknown>, message: string): void };
  /** Drops a key from the current authenticator's cache. */
  invalidate(id: string): void;
  emit(event: AdminEvent): void;
  alert(finding: Finding): void;
}

export interface SecretScanning {
  /** The receiver for `config` (none when `secret_scanning` is off), for the gateway's endpoints. */
  endpoints(config: GatewayConfig): GatewayEndpoint[];
}

/** Built once per process: the fetched public keys are kept across reloads while their source is unchanged. */
export function createSecretScanning(deps: SecretScanningDeps): SecretScanning {
  let ring: { source: string; ring: KeyRing } | undefined;
  return {
    endpoints(config) {
      const settings = config.secretScanning;
      const apiKeys = config.auth.apiKeys;
      if (settings === undefined || !settings.enabled || apiKeys === undefined) return [];
      const source = JSON.stringify([
        settings.publicKeysUrl,
        settings.publicKeys,
        settings.refreshMs,
        settings.timeoutMs,
      ]);
      if (ring?.source !== source) {
        ring = {
          source,
          ring: createKeyRing({
            url: settings.publicKeysUrl,
            inline: settings.publicKeys,
            refreshMs: settings.refreshMs,
            timeoutMs: settings.timeoutMs,
            logger: deps.logger,
          }),
        };
      }
      return [
        createSecretScanningEndpoint(settings, {
          ...deps,
          pepper: resolvePepper(apiKeys, config.store.dataDir),
          keyRing: ring.ring,
        }),
      ];
    },
  };
}
