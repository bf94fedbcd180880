import pg from 'pg';
import { StoreError } from './errors.js';
import { readAppliedMigrations, runMigrations, validateMigrations } from './migrations.js';
import {
  abortedError,
  type Connection,
  TransactionHandle,
  type TransactionState,
} from './transaction-handle.js';
import type { AppliedMigration, Db, Migration, RunResult, Store } from './types.js';

/** Options of {@link openPostgresStore}. */
export interface PostgresStoreOptions {
  /**
   * A schema that every pooled connection uses as its `search_path`; created
   * when missing. Lower-case letters, digits and `_` only. Tests use it to give
   * each test its own database.
   */
  schema?: string;
  /** Most connections the pool opens. Default 10. */
  poolSize?: number;
  /** How long to wait for a connection before failing. Default 10000 ms. */
  connectTimeoutMs?: number;
  /**
   * Receives errors of idle or in-transaction connections (a restarted server,
   * a dropped network link), which would otherwise crash the process.
   */
  onError?: (err: Error) => void;
}

const INT8_OID = 20;
/** First key of the two-key advisory lock that serializes migrations (ASCII "PCMG"). */
const MIGRATION_LOCK_CLASS = 0x50434d47;
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * bigint columns and `count(*)` arrive as strings by default; numbers match
 * what SQLite returns. Values beyond 2^53 become BigInts rather than losing
 * precision. Per pool, so other users of `pg` in the process are unaffected.
 */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID && format !== 'binary') {
      return (value: string): number | bigint => {
        const n = Number(value);
        return Number.isSafeInteger(n) ? n : BigInt(value);
      };
    }
    return pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

function toPgValue(value: unknown): unknown {
  // node-postgres would send a Date in the process's local time zone.
  if (value instanceof Date) return value.toISOString();
  return value;
}

/**
 * The URL with its password (in the authority or as a `password` query
 * parameter) replaced by `***`, safe to log.
 */
export function redactPostgresUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***');
    return parsed.toString().replaceAll('%2A%2A%2A', '***');
  } catch {
    return 'postgres://(unparseable URL, not shown)';
  }
}

function queryConfig(sql: string, params: readonly unknown[]): pg.QueryConfig {
  // The extended protocol, even without parameters, refuses several
  // statements in one call, as SQLite does.
  const config: pg.QueryConfig & { queryMode: 'extended' } = {
    text: sql,
    values: params.map(toPgValue),
    queryMode: 'extended',
  };
  return config;
}

/**
 * Opens a pool of connections to the PostgreSQL database at `url`. Nothing
 * connects until the first call; `ping()` checks the server is reachable.
 *
 * Each transaction runs on its own pooled connection, at PostgreSQL's default
 * READ COMMITTED isolation: transactions run concurrently, so a
 * read-modify-write must lock what it reads (e.g. start with an `update` of
 * the row). Parameters: Dates bind as ISO-8601 strings; bigint results are numbers.
 */
export function openPostgresStore(
  url: string,
  migrations: Migration[],
  opts: PostgresStoreOptions = {},
): Store {
  validateMigrations(migrations);
  const { schema, poolSize = 10, connectTimeoutMs = 10_000 } = opts;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new StoreError(
      'store.invalid_options',
      `schema "${schema}" is not allowed: use lower-case letters, digits and "_", starting with a letter or "_"`,
    );
  }
  if (!Number.isSafeInteger(poolSize) || poolSize < 1) {
    throw new StoreError('store.invalid_options', `poolSize must be a positive integer, not ${poolSize}`);
  }
  let hasOptionsParam = false;
  try {
    hasOptionsParam = new URL(url).searchParams.has('options');
  } catch {
    // node-postgres reports an unparseable URL itself, on first use.
  }
  if (schema !== undefined && hasOptionsParam) {
    throw new StoreError(
      'store.invalid_options',
      'the PostgreSQL URL has an "options" parameter, which would override the schema; set search_path there instead of passing a schema',
    );
  }
  const location = redactPostgresUrl(url) + (schema === undefined ? '' : ` (schema ${schema})`);
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: connectTimeoutMs,
    application_name: 'portcullis',
    // A startup parameter rather than a SET after connecting, so no
    // connection can ever be handed out with the wrong search_path.
    options: schema === undefined ? undefined : `-c search_path=${schema}`,
    types,
  });
  return new PostgresStore(pool, location, migrations, schema, opts.onError ?? (() => {}), connectTimeoutMs);
}

class PostgresStore implements Store {
  readonly dialect = 'postgres' as const;
  readonly #pool: pg.Pool;
  readonly #migrations: Migration[];
  readonly #schema: string | undefined;
  readonly #onError: (err: Error) => void;
  readonly #lockTimeoutMs: number;
  #schemaReady: Promise<void> | undefined;
  #closed = false;

  constructor(
    pool: pg.Pool,
    readonly location: string,
    migrations: Migration[],
    schema: string | undefined,
    onError: (err: Error) => void,
    lockTimeoutMs: number,
  ) {
    this.#pool = pool;
    this.#migrations = migrations;
    this.#schema = schema;
    this.#lockTimeoutMs = lockTimeoutMs;
    this.#onError = (err) => {
      try {
        onError(err);
      } catch {
        // A failing error reporter must not turn a reported error into a crash.
      }
    };
    pool.on('error', this.#onError);
  }

  async query<T = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    await this.#ready();
    const result = await this.#pool.query(queryConfig(sql, params));
    return result.rows as T[];
  }

  async execute(sql: string, params: readonly unknown[] = []): Promise<RunResult> {
    await this.#ready();
    const result = await this.#pool.query(queryConfig(sql, params));
    return { changes: result.rowCount ?? 0 };
  }

  transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
    return this.#transaction(fn);
  }

  migrate(): Promise<AppliedMigration[]> {
    return runMigrations(
      {
        dialect: 'postgres',
        lockedTransaction: (fn) =>
          this.#transaction(async (tx) => {
            // Per schema, so isolated test schemas do not wait for each other.
            await tx.query("select pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))", [
              MIGRATION_LOCK_CLASS,
            ]);
            return fn(tx);
          }),
      },
      this.#migrations,
    );
  }

  async appliedMigrations(): Promise<AppliedMigration[]> {
    await this.#ready();
    return readAppliedMigrations(this);
  }

  async ping(): Promise<void> {
    this.#checkOpen();
    await this.#pool.query('select 1');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  async #transaction<T>(fn: (tx: TransactionHandle) => Promise<T>): Promise<T> {
    await this.#ready();
    const client = await this.#pool.connect();
    // pg-pool listens for errors only on idle connections; one that fails while
    // checked out here would otherwise raise an unhandled 'error' event.
    client.on('error', this.#onError);
    let broken: Error | undefined;
    // A failed BEGIN, COMMIT or ROLLBACK leaves the connection in an unknown
    // state, so it is discarded instead of going back to the pool.
    const control = async (sql: string): Promise<pg.QueryResult> => {
      try {
        return await client.query(sql);
      } catch (err) {
        broken = err instanceof Error ? err : new Error(String(err));
        throw err;
      }
    };
    try {
      await control('begin');
      const conn: Connection = {
        query: async <R>(sql: string, params: readonly unknown[]) =>
          (await client.query(queryConfig(sql, params))).rows as R[],
        execute: async (sql, params) => ({
          changes: (await client.query(queryConfig(sql, params))).rowCount ?? 0,
        }),
        exec: async (sql) => {
          await client.query(sql);
        },
      };
      const state: TransactionState = { failure: undefined };
      const tx = new TransactionHandle('postgres', conn, state, 0, this.#lockTimeoutMs);
      let result: T;
      try {
        result = await fn(tx);
      } catch (err) {
        tx.finish();
        // If the rollback fails too, the callback's error is the one to report.
        await control('rollback').catch(() => {});
        throw err;
      }
      tx.finish();
      if (state.failure !== undefined) {
        await control('rollback');
        throw abortedError('transaction', state.failure);
      }
      const commit = await control('commit');
      // PostgreSQL answers COMMIT of a failed transaction with ROLLBACK, not an error.
      if (commit.command === 'ROLLBACK') {
        throw new StoreError(
          'store.transaction_aborted',
          'PostgreSQL rolled the transaction back instead of committing it',
        );
      }
      return result;
    } finally {
      client.off('error', this.#onError);
      client.release(broken);
    }
  }

  /** Refuses calls after close() and creates the schema, once, before first use. */
  #ready(): Promise<void> {
    this.#checkOpen();
    const schema = this.#schema;
    if (schema === undefined) return Promise.resolve();
    this.#schemaReady ??= (async () => {
      // Checked first because CREATE SCHEMA IF NOT EXISTS needs the CREATE
      // privilege even when the schema exists.
      const found = await this.#pool.query('select 1 from pg_namespace where nspname = $1', [schema]);
      if (found.rowCount) return;
      try {
        await this.#pool.query(`create schema if not exists ${schema}`);
      } catch (err) {
        // Another instance created it between the check and the create.
        const code = (err as { code?: string }).code;
        if (code !== '42P06' && code !== '23505') throw err;
      }
    })().catch((err: unknown) => {
      this.#schemaReady = undefined;
      throw err;
    });
    return this.#schemaReady;
  }

  #checkOpen(): void {
    if (this.#closed) throw new StoreError('store.closed', `the store at ${this.location} is closed`);
  }
}
