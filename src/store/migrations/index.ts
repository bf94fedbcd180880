import type { Migration } from '../types.js';
import { apiKeysMigration } from './002-api-keys.js';
import { oauthMigration } from './003-oauth.js';
import { quotasMigration } from './004-quotas.js';
import { auditMigration } from './005-audit.js';
import { alertsMigration } from './006-alerts.js';
import { revocationsMigration } from './007-revocations.js';
import { adminTokensMigration } from './008-admin-tokens.js';
import { apiKeyRoutesMigration } from './009-api-key-routes.js';
import { auditPrincipalIndexMigration } from './010-audit-principal-index.js';

/**
 * Every migration of the Portcullis database, in order. Features append their
 * own at the end with the next version number; an applied migration is never
 * edited, renumbered or removed, since databases record them by version and name.
 */
export const migrations: Migration[] = [
  {
    version: 1,
    name: 'create-meta',
    up: 'create table portcullis_meta (key text primary key, value text not null)',
  },
  apiKeysMigration,
  oauthMigration,
  quotasMigration,
  auditMigration,
  alertsMigration,
  revocationsMigration,
  adminTokensMigration,
  apiKeyRoutesMigration,
  auditPrincipalIndexMigration,
];
