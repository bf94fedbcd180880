import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  mkdirSync,
  openSync,
  realpathSync,
} from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { AsyncMutex } from './async-mutex.js';
import { StoreError } from './errors.js';
import { readAppliedMigrations, runMigrations, validateMigrations } from './migrations.js';
import { toSqlitePositional } from './placeholders.js';
import {
  abortedError,
  type Connection,
  TransactionHandle,
  type TransactionState,
} from './transaction-handle.js';
import type { AppliedMigration, Db, Migration, RunResult, Store } from './types.js';

/** Options of {@link openSqliteStore}. */
export interface SqliteStoreOptions {
  /**
   * How long a statement or transaction waits for another transaction to
   * finish before failing with `store.busy` (and SQLite's `busy_timeout` for
   * other processes). Default 5000 ms.
   */
  busyTimeoutMs?: number;
}

const STATEMENT_CACHE_SIZE = 256;

interface Prepared {
  statement: Database.Statement;
  order: number[];
  highest: number;
}

/**
 * One lock per database file per process, shared by every store opened on it:
 * a second connection in the same process that waited on SQLite's own busy
 * handler would block the event loop, so the transaction it waits for could
 * never finish.
 */
const fileLocks = new Map<string, { mutex: AsyncMutex; users: number }>();

function toSqliteValue(value: unknown): unknown {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (value instanceof Date) return value.toISOString();
  if (value === undefined) return null;
  return value;
}

/**
 * Creates the directory (mode 0700) and the database file (mode 0600) before
 * SQLite does, so the file never exists with wider permissions. An existing
 * file is tightened to 0600; SQLite gives its -wal and -shm files the same mode.
 */
function prepareFile(file: string): void {
  const dir = dirname(file);
  if (mkdirSync(dir, { recursive: true, mode: 0o700 }) !== undefined) chmodSync(dir, 0o700);
  const fd = openSync(file, constants.O_RDWR | constants.O_CREAT, 0o600);
  try {
    if ((fstatSync(fd).mode & 0o777) !== 0o600) fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens (creating if needed) the SQLite database at `path` (`:memory:` for a
 * private in-memory database), in WAL mode with foreign keys enforced.
 *
 * Statements and transactions of all stores on the same file in this process
 * take turns through one async lock; other processes are kept out by SQLite's
 * locks (`BEGIN IMMEDIATE`, `busy_timeout`). Parameters: booleans bind as 1/0,
 * Dates as ISO-8601 strings, `undefined` as NULL.
 */
export function openSqliteStore(path: string, migrations: Migration[], opts: SqliteStoreOptions = {}): Store {
  validateMigrations(migrations);
  const busyTimeoutMs = opts.busyTimeoutMs ?? 5000;
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new StoreError(
      'store.invalid_options',
      `busyTimeoutMs must be a non-negative integer, not ${busyTimeoutMs}`,
    );
  }
  if (path === ':memory:') {
    return new SqliteStore(
      new Database(':memory:', { timeout: busyTimeoutMs }),
      'sqlite::memory:',
      migrations,
      {
        key: undefined,
        mutex: new AsyncMutex(),
        busyTimeoutMs,
      },
    );
  }
  const file = resolve(path);
  prepareFile(file);
  const key = realpathSync(file);
  let lock = fileLocks.get(key);
  if (!lock) {
    lock = { mutex: new AsyncMutex(), users: 0 };
    fileLocks.set(key, lock);
  }
  lock.users++;
  try {
    return new SqliteStore(new Database(file, { timeout: busyTimeoutMs }), `sqlite:${file}`, migrations, {
      key,
      mutex: lock.mutex,
      busyTimeoutMs,
    });
  } catch (err) {
    releaseFileLock(key);
    throw err;
  }
}

function releaseFileLock(key: string | undefined): void {
  if (key === undefined) return;
  const lock = fileLocks.get(key);
  if (lock && --lock.users === 0) fileLocks.delete(key);
}

class SqliteStore implements Store {
  readonly dialect = 'sqlite' as const;
  readonly #db: Database.Database;
  readonly #migrations: Migration[];
  readonly #key: string | undefined;
  readonly #mutex: AsyncMutex;
  readonly #busyTimeoutMs: number;
  readonly #statements = new Map<string, Prepared>();
  readonly #conn: Connection;
  #closed = false;

  constructor(
    db: Database.Database,
    readonly location: string,
    migrations: Migration[],
    shared: { key: string | undefined; mutex: AsyncMutex; busyTimeoutMs: number },
  ) {
    this.#db = db;
    this.#migrations = migrations;
    this.#key = shared.key;
    this.#mutex = shared.mutex;
    this.#busyTimeoutMs = shared.busyTimeoutMs;
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('foreign_keys = ON');
    } catch (err) {
      db.close();
      throw err;
    }
    this.#conn = {
      query: async <T>(sql: string, params: readonly unknown[]) => this.#query<T>(sql, params),
      execute: async (sql, params) => this.#execute(sql, params),
      exec: async (sql) => {
        this.#db.exec(sql);
      },
    };
  }

  query<T = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return this.#outsideTransaction(() => this.#query<T>(sql, params));
  }

  execute(sql: string, params: readonly unknown[] = []): Promise<RunResult> {
    return this.#outsideTransaction(() => this.#execute(sql, params));
  }

  transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
    return this.#transaction(fn);
  }

  async #transaction<T>(fn: (tx: TransactionHandle) => Promise<T>): Promise<T> {
    this.#checkOpen();
    await this.#acquire();
    try {
      this.#checkOpen();
      return await this.#inTransaction(fn);
    } finally {
      this.#mutex.release();
    }
  }

  migrate(): Promise<AppliedMigration[]> {
    return runMigrations(
      { dialect: 'sqlite', lockedTransaction: (fn) => this.#transaction(fn) },
      this.#migrations,
    );
  }

  appliedMigrations(): Promise<AppliedMigration[]> {
    return readAppliedMigrations(this);
  }

  async ping(): Promise<void> {
    await this.query('select 1');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Waits, without a deadline, for transactions already queued to finish.
    await this.#mutex.acquire();
    try {
      this.#statements.clear();
      this.#db.close();
    } finally {
      this.#mutex.release();
      releaseFileLock(this.#key);
    }
  }

  async #inTransaction<T>(fn: (tx: TransactionHandle) => Promise<T>): Promise<T> {
    const db = this.#db;
    db.exec('BEGIN IMMEDIATE');
    const state: TransactionState = { failure: undefined };
    const tx = new TransactionHandle('sqlite', this.#conn, state, 0, this.#busyTimeoutMs);
    let result: T;
    try {
      result = await fn(tx);
    } catch (err) {
      tx.finish();
      this.#rollback();
      throw err;
    }
    tx.finish();
    if (state.failure !== undefined) {
      this.#rollback();
      throw abortedError('transaction', state.failure);
    }
    if (!db.inTransaction) {
      throw new StoreError(
        'store.transaction_aborted',
        'SQLite rolled the transaction back before it could commit',
      );
    }
    try {
      db.exec('COMMIT');
    } catch (err) {
      this.#rollback();
      throw err;
    }
    return result;
  }

  #rollback(): void {
    // SQLite rolls back by itself after some errors (SQLITE_FULL, SQLITE_IOERR …).
    if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
  }

  /** Runs a synchronous statement once no transaction holds the connection. */
  async #outsideTransaction<T>(op: () => T): Promise<T> {
    this.#checkOpen();
    // better-sqlite3 is synchronous, so with the lock free nothing can interleave.
    if (!this.#mutex.held) return op();
    await this.#acquire();
    try {
      this.#checkOpen();
      return op();
    } finally {
      this.#mutex.release();
    }
  }

  #acquire(): Promise<void> {
    return this.#mutex.acquire(
      this.#busyTimeoutMs,
      () =>
        new StoreError(
          'store.busy',
          `timed out after ${this.#busyTimeoutMs} ms waiting for a transaction on ${this.location} to finish (inside a transaction() callback, use its tx handle: a call on the store itself waits for the transaction that is waiting for it)`,
        ),
    );
  }

  #checkOpen(): void {
    if (this.#closed) throw new StoreError('store.closed', `the store at ${this.location} is closed`);
  }

  #prepare(sql: string, params: readonly unknown[]): { prepared: Prepared; args: unknown[] } {
    let prepared = this.#statements.get(sql);
    if (prepared) {
      // Re-insert to keep the map in least-recently-used order.
      this.#statements.delete(sql);
    } else {
      const rewritten = toSqlitePositional(sql);
      prepared = {
        statement: this.#db.prepare(rewritten.sql),
        order: rewritten.order,
        highest: rewritten.highest,
      };
      if (this.#statements.size >= STATEMENT_CACHE_SIZE) {
        const oldest = this.#statements.keys().next().value;
        if (oldest !== undefined) this.#statements.delete(oldest);
      }
    }
    this.#statements.set(sql, prepared);
    if (params.length !== prepared.highest) {
      throw new StoreError(
        'store.invalid_params',
        `the statement uses ${prepared.highest === 0 ? 'no placeholders' : `placeholders up to $${prepared.highest}`} but ${params.length} parameter(s) were given`,
      );
    }
    return { prepared, args: prepared.order.map((n) => toSqliteValue(params[n - 1])) };
  }

  #query<T>(sql: string, params: readonly unknown[]): T[] {
    const { prepared, args } = this.#prepare(sql, params);
    if (prepared.statement.reader) return prepared.statement.all(...args) as T[];
    // PostgreSQL answers a statement without rows with no rows; so does this.
    prepared.statement.run(...args);
    return [];
  }

  #execute(sql: string, params: readonly unknown[]): RunResult {
    const { prepared, args } = this.#prepare(sql, params);
    return { changes: prepared.statement.run(...args).changes };
  }
}
