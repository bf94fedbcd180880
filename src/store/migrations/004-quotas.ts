import type { Migration } from '../types.js';

/**
 * Rate-limit quotas: units used per quota, subject (the limit key) and
 * period (`2025-03-14` for a day, `2025-03` for a month, UTC). Instances add
 * their usage with `used = used + delta` in batches (write-behind), so the
 * row holds the total of every instance. `period_end` (ISO-8601 text) lets
 * old rows be pruned.
 */
export const quotasMigration: Migration = {
  version: 4,
  name: 'create-rate-limit-quotas',
  up: `create table rate_limit_quotas (
  quota text not null,
  subject text not null,
  period text not null,
  used integer not null,
  period_end text not null,
  updated_at text not null,
  primary key (quota, subject, period)
);
create index rate_limit_quotas_period_end on rate_limit_quotas (period_end)`,
};
