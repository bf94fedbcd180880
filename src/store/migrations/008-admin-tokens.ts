import type { Migration } from '../types.js';

/**
 * Admin tokens, the credentials of the admin API: like API keys, only an
 * HMAC of the secret is stored, under a pepper that never enters the database.
 */
export const adminTokensMigration: Migration = {
  version: 8,
  name: 'create-admin-tokens',
  up: `create table admin_tokens (
  id text primary key,
  name text not null,
  role text not null,
  digest text not null,
  created_at text not null,
  created_by text not null,
  revoked_at text,
  last_used_at text
)`,
};
