/** Who is calling, as established by authentication. A contract: imports nothing. */
export interface Principal {
  kind: 'jwt' | 'api_key' | 'client' | 'mtls' | 'anonymous';
  /** Stable id within its provider: the token subject, `key_…`, `cli_…` or a certificate fingerprint. */
  id: string;
  /**
   * Who vouched for `id`: `jwt:<provider name>` (the built-in issuer is
   * `jwt:portcullis-issuer`), `introspection:<provider name>`; undefined for
   * API keys and certificates, whose ids are the gateway's own. Two providers
   * may issue the same `sub`: they are different principals, so every key
   * made from a principal goes through {@link principalKey}.
   */
  provider?: string | undefined;
  scopes: readonly string[];
  roles: readonly string[];
  claims: Readonly<Record<string, unknown>>;
  tenant: string | undefined;
}

/**
 * The principal as one string, namespaced by credential kind and provider:
 * `jwt:jwt:okta:42` and `jwt:jwt:auth0:42` never collide, nor does a subject that
 * looks like an API key id. For every key made from a principal (rate
 * limits, quotas, lockout, anomaly detection).
 */
export function principalKey(p: Pick<Principal, 'kind' | 'id' | 'provider'>): string {
  return p.provider === undefined ? `${p.kind}:${p.id}` : `${p.kind}:${p.provider}:${p.id}`;
}

/** The tenant namespaced by the provider that vouched for it, for keys (a tenant name means nothing across providers). */
export function tenantKey(p: Pick<Principal, 'provider' | 'tenant'>): string | undefined {
  if (p.tenant === undefined) return undefined;
  return p.provider === undefined ? p.tenant : `${p.provider}:${p.tenant}`;
}
