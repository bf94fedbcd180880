import type { Migration } from '../types.js';

/** The built-in issuer: confidential clients, encrypted signing keys, revoked token ids. */
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
  alg text not null,
  public_jwk text not null,
  private_jwk_encrypted text not null,
  created_at text not null,
  retired_at text
);
create table revoked_tokens (
  jti text primary key,
  expires_at text not null
)`,
};
