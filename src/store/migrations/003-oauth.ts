import type { Migration } from '../types.js';

/**
 * The built-in issuer: confidential clients, encrypted signing keys, revoked
 * token ids. Times are ISO-8601 text (UTC, `Date#toISOString`), so they sort
 * and compare as strings on both databases.
 *
 * - `oauth_clients.secret_hash` is a self-describing scrypt hash; the secret
 *   itself is never stored.
 * - `signing_keys.generation` is unique so that instances rotating at the same
 *   moment insert one key per generation (`on conflict do nothing`), not one
 *   each. `activates_at` is when a key starts signing: it is published before
 *   that, so every instance and every JWKS cache knows it before the first
 *   token it signs. `private_jwk_encrypted` (AES-256-GCM under the master key)
 *   is set to null when the key is retired: a retired key can never sign again.
 * - `revoked_tokens` holds the `jti` of revoked access tokens until they would
 *   have expired anyway.
 */
export const oauthMigration: Migration = {
  version: 3,
  name: 'create-oauth',
  up: `create table oauth_clients (
  id text primary key,
  name text not null,
  secret_hash text not null,
  scopes text not null,
  tenant text,
  created_at text not null,
  revoked_at text
);
create table signing_keys (
  kid text primary key,
  generation integer not null unique,
  alg text not null,
  public_jwk text not null,
  private_jwk_encrypted text,
  created_at text not null,
  activates_at text not null,
  retired_at text
);
create table revoked_tokens (
  jti text primary key,
  client_id text not null,
  expires_at text not null
);
create index revoked_tokens_expires_at on revoked_tokens (expires_at)`,
};
