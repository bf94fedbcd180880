import type { Migration } from '../types.js';

/** API keys: only an HMAC of the secret is stored, under a pepper that never enters the database. */
export const apiKeysMigration: Migration = {
  version: 2,
  name: 'create-api-keys',
  up: `create table api_keys (
  id text primary key,
  name text not null,
  digest text not null,
  scopes text not null,
  tenant text,
  created_at text not null,
  expires_at text,
  revoked_at text,
  last_used_at text,
  replaced_by text
)`,
};
