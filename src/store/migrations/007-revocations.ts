import type { Migration } from '../types.js';

/**
 * The kill switch's feed (`portcullis tokens revoke`, client and key
 * revocations, block changes): one append-only row per act, read by every
 * instance in `seq` order, so an instance that missed a notification catches
 * up by asking for what follows the last `seq` it saw.
 *
 * - `kind`: `jti`, `sub`, `client`, `before` (tokens issued before
 *   `revoked_at`), or `key` / `block` (invalidations: drop the cached API key,
 *   reload the blocks).
 * - `issuer`: the `iss` the revocation is limited to; `''` for any issuer.
 * - `revoked_at`, `expires_at`: epoch milliseconds. A row is dropped once
 *   every token it covers would have expired anyway.
 */
const columns = (seq: string) => `create table token_revocations (
  seq ${seq},
  kind text not null,
  subject text not null,
  issuer text not null,
  revoked_at bigint not null,
  expires_at bigint not null,
  actor text not null,
  reason text not null
);
create index token_revocations_expiry on token_revocations (expires_at)`;

export const revocationsMigration: Migration = {
  version: 7,
  name: 'create-token-revocations',
  up: {
    sqlite: columns('integer primary key autoincrement'),
    postgres: columns('bigserial primary key'),
  },
};
