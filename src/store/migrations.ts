import { StoreError } from './errors.js';
import type { ScriptDb } from './transaction-handle.js';
import type { AppliedMigration, Db, Dialect, Migration } from './types.js';

/** The hooks a backend gives the shared migration runner. */
export interface MigrationBackend {
  readonly dialect: Dialect;
  /**
   * Runs `fn` in a transaction that holds this database's migration lock, so
   * that of several instances migrating at once only one works at a time.
   */
  lockedTransaction<T>(fn: (tx: ScriptDb) => Promise<T>): Promise<T>;
}

const TABLE = 'portcullis_migrations';
const CREATE_TABLE = `create table if not exists ${TABLE} (
  version integer primary key,
  name text not null,
  applied_at text not null
)`;
const NAME = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

/**
 * Checks a migration list before anything touches the database: versions are
 * positive integers in strictly increasing order, names are kebab-case.
 */
export function validateMigrations(migrations: readonly Migration[]): void {
  let previous = 0;
  for (const m of migrations) {
    if (!Number.isSafeInteger(m.version) || m.version < 1) {
      throw new StoreError(
        'store.invalid_migrations',
        `migration "${m.name}" has version ${m.version}; versions are positive integers`,
      );
    }
    if (m.version <= previous) {
      throw new StoreError(
        'store.invalid_migrations',
        `migration ${m.version} "${m.name}" follows version ${previous}; versions must be strictly increasing`,
      );
    }
    if (!NAME.test(m.name)) {
      throw new StoreError(
        'store.invalid_migrations',
        `migration ${m.version} is named "${m.name}"; names are short kebab-case descriptions`,
      );
    }
    previous = m.version;
  }
}

/** The migrations recorded in the database, in version order; none when the table does not exist yet. */
export async function readAppliedMigrations(db: Db): Promise<AppliedMigration[]> {
  const exists =
    db.dialect === 'sqlite'
      ? await db.query(`select name from sqlite_master where type = 'table' and name = $1`, [TABLE])
      : await db.query(
          'select table_name from information_schema.tables where table_schema = current_schema() and table_name = $1',
          [TABLE],
        );
  if (exists.length === 0) return [];
  return readRecorded(db);
}

async function readRecorded(db: Db): Promise<AppliedMigration[]> {
  const rows = await db.query<{ version: number; name: string; applied_at: string }>(
    `select version, name, applied_at from ${TABLE} order by version`,
  );
  return rows.map((r) => ({ version: Number(r.version), name: r.name, appliedAt: r.applied_at }));
}

/**
 * Compares what the database records with what this build ships, and returns
 * the migrations still to apply. Throws when the two histories disagree: the
 * database was then migrated by a different build, and guessing would corrupt it.
 */
function pendingMigrations(recorded: AppliedMigration[], migrations: readonly Migration[]): Migration[] {
  const byVersion = new Map(migrations.map((m) => [m.version, m]));
  let highest = 0;
  for (const r of recorded) {
    const known = byVersion.get(r.version);
    if (!known) {
      throw new StoreError(
        'store.migration_mismatch',
        `the database records migration ${r.version} "${r.name}", which this build does not have: it was migrated by a newer or different build of Portcullis`,
      );
    }
    if (known.name !== r.name) {
      throw new StoreError(
        'store.migration_mismatch',
        `the database records migration ${r.version} as "${r.name}" but this build calls it "${known.name}": it was migrated by a different build of Portcullis`,
      );
    }
    highest = Math.max(highest, r.version);
  }
  const applied = new Set(recorded.map((r) => r.version));
  const pending = migrations.filter((m) => !applied.has(m.version));
  const early = pending.find((m) => m.version < highest);
  if (early) {
    throw new StoreError(
      'store.migration_mismatch',
      `migration ${early.version} "${early.name}" is not applied but the later migration ${highest} is: migrations must only ever be appended`,
    );
  }
  return pending;
}

/**
 * Applies pending migrations in order, each in its own transaction holding the
 * migration lock, and returns the ones this call applied (none when another
 * instance got there first).
 */
export async function runMigrations(
  backend: MigrationBackend,
  migrations: readonly Migration[],
): Promise<AppliedMigration[]> {
  validateMigrations(migrations);
  const applied: AppliedMigration[] = [];
  for (;;) {
    // Re-read the history under the lock each time: another instance may have
    // moved it on while this one waited.
    const next = await backend.lockedTransaction(async (tx) => {
      await tx.exec(CREATE_TABLE);
      const migration = pendingMigrations(await readRecorded(tx), migrations)[0];
      if (!migration) return undefined;
      const sql = typeof migration.up === 'string' ? migration.up : migration.up[backend.dialect];
      try {
        await tx.exec(sql);
      } catch (err) {
        throw new StoreError(
          'store.migration_failed',
          `migration ${migration.version} "${migration.name}" failed: ${err instanceof Error ? err.message : String(err)}`,
          { cause: err },
        );
      }
      const done: AppliedMigration = {
        version: migration.version,
        name: migration.name,
        appliedAt: new Date().toISOString(),
      };
      await tx.execute(`insert into ${TABLE} (version, name, applied_at) values ($1, $2, $3)`, [
        done.version,
        done.name,
        done.appliedAt,
      ]);
      return done;
    });
    if (!next) return applied;
    applied.push(next);
  }
}
