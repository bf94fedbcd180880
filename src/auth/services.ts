/**
 * The authentication services a gateway is built with. They are created
 * once (they hold key sets, caches and counters) and shared by the
 * authenticate stage of every route.
 */
import type { Principal } from '../contracts/principal.js';
import type { BeforeVerify, BruteForceGuard } from './types.js';

export interface TokenVerifier {
  verify(token: string, beforeVerify?: BeforeVerify): Promise<Principal>;
}

export interface ApiKeyService {
  /** The public key id of a well-formed key (checksum verified), without any I/O; undefined otherwise. */
  keyId(raw: string): string | undefined;
  authenticate(raw: string, beforeVerify?: BeforeVerify, route?: string): Promise<Principal>;
  /** Forgets what this instance cached about a key (revoked elsewhere). */
  invalidate?(id: string): void;
}

export interface AuthServices {
  jwt: TokenVerifier | undefined;
  introspection: { introspect(token: string, beforeVerify?: BeforeVerify): Promise<Principal> } | undefined;
  apiKeys: ApiKeyService | undefined;
  guard: BruteForceGuard;
  /** The token kill switch (src/revocation), checked on every authenticated request. */
  revocations?: { isRevoked(principal: Principal): boolean } | undefined;
}
