/**
 * The store layer: one small SQL interface over the embedded SQLite database
 * (default) and PostgreSQL (when `store.url` is a `postgres://` URL).
 *
 * SQL is written once, in the common subset of both dialects, with `$1, $2 …`
 * placeholders; the SQLite driver rewrites them. Repositories added by later
 * features (API keys, clients, audit, alerts, quotas) sit on top of `Db` and
 * add their tables as numbered migrations.
 */

export type Dialect = 'sqlite' | 'postgres';

export interface RunResult {
  /** Rows inserted, updated or deleted by the statement. */
  changes: number;
}

/**
 * One statement per call. Parameters may be strings, numbers, bigints,
 * Buffers, null/undefined, booleans (1/0 on SQLite) and Dates (bound as
 * ISO-8601 strings on both). Row values follow the column types: keep to
 * text, integer and blob/bytea columns for identical results on both
 * databases (PostgreSQL `bigint` and `count(*)` come back as numbers too).
 */
export interface Db {
  readonly dialect: Dialect;
  /** Runs a statement that returns rows. Placeholders are `$1, $2 …`. */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** Runs a statement that returns no rows. */
  execute(sql: string, params?: readonly unknown[]): Promise<RunResult>;
  /**
   * Runs `fn` inside one transaction: committed when it resolves, rolled back
   * when it throws. Transactions never interleave on one connection.
   *
   * Inside `fn`, use only `tx`: on SQLite a call on the store itself waits for
   * the transaction (and fails with `store.busy` after the busy timeout).
   * On SQLite transactions run one at a time; on PostgreSQL they run at once,
   * each on its own connection at READ COMMITTED, so a read-modify-write must
   * lock the row first (e.g. `update … set v = v where …`). A failed statement
   * aborts the transaction even if `fn` catches its error, on both databases;
   * `tx.transaction()` opens a savepoint whose rollback recovers from it.
   */
  transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T>;
}

export interface Migration {
  /** Strictly increasing, never reused. */
  version: number;
  /** Short kebab-case description, recorded with the version. */
  name: string;
  /** The SQL to apply; one string when both dialects accept it. */
  up: string | { sqlite: string; postgres: string };
}

export interface AppliedMigration {
  version: number;
  name: string;
  appliedAt: string;
}

export interface Store extends Db {
  /** A redacted description of where the data lives, safe to log. */
  readonly location: string;
  /** Applies pending migrations in order; safe to run from several instances at once. */
  migrate(): Promise<AppliedMigration[]>;
  appliedMigrations(): Promise<AppliedMigration[]>;
  /** Resolves when the database answers a trivial query; rejects otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
