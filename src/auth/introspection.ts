/**
 * Opaque access tokens checked by RFC 7662 token introspection, with a
 * bounded cache. The cache key covers the token hash, the issuer and the
 * endpoint, so two providers can never share an entry. An endpoint that
 * cannot answer fails closed (AuthUnavailable), never open.
 */
import { createHash } from 'node:crypto';
import { request } from 'undici';
import type { IntrospectionProviderSettings } from '../config/types.js';
import type { Principal } from '../contracts/principal.js';
import type { Logger } from '../log.js';
import { LruCache } from '../util/lru.js';
import { AuthFailure, AuthUnavailable, type BeforeVerify } from './types.js';

const MAX_RESPONSE_BYTES = 64 * 1024;
const MAX_TOKEN_BYTES = 4096;

export interface Introspector {
  introspect(token: string, beforeVerify?: BeforeVerify): Promise<Principal>;
  readonly stats: { cacheHits: number; requests: number; failures: number };
}

type Result = { active: true; principal: Principal } | { active: false; reason?: string };

/**
 * `token_type` values that name an access token (RFC 7662 §2.2 leaves the
 * vocabulary open: RFC 6749 §7.1 types, RFC 8693 URIs, or plain words).
 * Anything else — `refresh_token`, `id_token`… — is not a credential for an API.
 */
const ACCESS_TOKEN_TYPES = new Set([
  'access_token',
  'bearer',
  'dpop',
  'n_a',
  'urn:ietf:params:oauth:token-type:access_token',
]);

/** Whether an introspection response is for one of `audience` (RFC 7662 §2.2 `aud`: a string or a list). */
function meantFor(aud: unknown, audience: readonly string[]): boolean {
  const values = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  return values.some((v) => typeof v === 'string' && audience.includes(v));
}

/** RFC 6749 §2.3.1: client credentials in Basic are form-urlencoded first. */
function basicAuth(id: string, secret: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

function scopesOf(value: unknown): string[] {
  if (typeof value === 'string') return value.split(' ').filter((s) => s !== '');
  return Array.isArray(value) ? value.filter((s): s is string => typeof s === 'string') : [];
}

export function createIntrospector(options: {
  providers: readonly IntrospectionProviderSettings[];
  logger: Logger;
  cacheSize?: number;
  now?: () => number;
}): Introspector {
  const now = options.now ?? Date.now;
  const cache = new LruCache<string, Result>(options.cacheSize ?? 10_000, now);
  const stats = { cacheHits: 0, requests: 0, failures: 0 };

  async function ask(provider: IntrospectionProviderSettings, token: string): Promise<Result> {
    stats.requests++;
    let body: Record<string, unknown>;
    try {
      const res = await request(provider.endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          authorization: basicAuth(provider.clientId, provider.clientSecret),
        },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
        headersTimeout: provider.timeoutMs,
        bodyTimeout: provider.timeoutMs,
      });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`introspection answered ${res.statusCode}`);
      }
      const length = Number(res.headers['content-length'] ?? 0);
      if (length > MAX_RESPONSE_BYTES) {
        await res.body.dump();
        throw new Error('introspection response too large');
      }
      body = (await res.body.json()) as Record<string, unknown>;
    } catch (err) {
      stats.failures++;
      options.logger.warn(
        { provider: provider.name, reason: (err as Error).message },
        'token introspection failed; failing closed',
      );
      throw new AuthUnavailable('introspection_unavailable', provider.onFailure, { cause: err });
    }
    if (body.active !== true) return { active: false };
    const t = now() / 1000;
    if (typeof body.exp === 'number' && body.exp <= t) return { active: false };
    if (provider.issuer !== undefined && body.iss !== provider.issuer) return { active: false };
    // A token issued for another API, or a refresh token, is genuine but not for this gateway.
    if (provider.audience !== undefined && !meantFor(body.aud, provider.audience)) {
      return { active: false, reason: 'wrong_audience' };
    }
    if (body.token_type !== undefined) {
      const type = typeof body.token_type === 'string' ? body.token_type.toLowerCase() : '';
      if (!ACCESS_TOKEN_TYPES.has(type)) return { active: false, reason: 'wrong_token_type' };
    }
    const id =
      typeof body.sub === 'string' ? body.sub : typeof body.client_id === 'string' ? body.client_id : '';
    if (id === '') return { active: false };
    return {
      active: true,
      principal: {
        kind: 'jwt',
        id,
        provider: `introspection:${provider.name}`,
        scopes: scopesOf(body.scope),
        roles: [],
        claims: body,
        tenant: typeof body.tenant === 'string' ? body.tenant : undefined,
      },
    };
  }

  return {
    stats,
    async introspect(token, beforeVerify) {
      if (token.length > MAX_TOKEN_BYTES) throw new AuthFailure('token_too_large');
      const hash = createHash('sha256').update(token).digest('base64url');
      const credentialId = hash.slice(0, 16);
      let gated = false;
      let refused: string | undefined;
      for (const provider of options.providers) {
        const key = `${provider.endpoint}\n${provider.issuer ?? ''}\n${hash}`;
        let result = cache.get(key);
        if (result !== undefined) stats.cacheHits++;
        else {
          // Not known to be good: the brute-force guard may refuse before the request is made.
          if (!gated) beforeVerify?.(credentialId);
          gated = true;
          result = await ask(provider, token);
          const t = now();
          if (result.active) {
            const exp = result.principal.claims.exp;
            const until =
              typeof exp === 'number'
                ? Math.min(exp * 1000, t + provider.cacheTtlMs)
                : t + provider.cacheTtlMs;
            cache.set(key, result, until);
          } else {
            cache.set(key, result, t + provider.inactiveCacheTtlMs);
          }
        }
        if (result.active) {
          const exp = result.principal.claims.exp;
          if (typeof exp === 'number' && exp * 1000 <= now()) throw new AuthFailure('token_expired');
          return result.principal;
        }
        refused ??= result.reason;
      }
      throw new AuthFailure(refused ?? 'token_inactive', credentialId);
    },
  };
}
