import type { Migration } from '../types.js';

/**
 * The routes an API key is restricted to: a JSON list of route names, or
 * null for a key good on every route that accepts API keys (every key made
 * before this migration).
 */
export const apiKeyRoutesMigration: Migration = {
  version: 9,
  name: 'api-key-routes',
  up: 'alter table api_keys add column routes text',
};
