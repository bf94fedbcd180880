/** Who is calling, as established by authentication. A contract: imports nothing. */
export interface Principal {
  kind: 'jwt' | 'api_key' | 'client' | 'mtls' | 'anonymous';
  /** Stable id: the token subject, `key_…`, `cli_…` or a certificate fingerprint. */
  id: string;
  scopes: readonly string[];
  roles: readonly string[];
  claims: Readonly<Record<string, unknown>>;
  tenant: string | undefined;
}
