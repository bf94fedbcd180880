import { AsyncMutex } from './async-mutex.js';
import { StoreError } from './errors.js';
import type { Db, Dialect, RunResult } from './types.js';

/** One database connection that already has a transaction open on it. */
export interface Connection {
  query<T>(sql: string, params: readonly unknown[]): Promise<T[]>;
  execute(sql: string, params: readonly unknown[]): Promise<RunResult>;
  /** Runs a script of one or more statements without parameters. */
  exec(sql: string): Promise<void>;
}

/** A transaction handle that can also run parameterless scripts (migrations). */
export interface ScriptDb extends Db {
  exec(sql: string): Promise<void>;
}

/** State shared by a transaction and its nested (savepoint) transactions. */
export interface TransactionState {
  /** The first statement error of the transaction, until a savepoint rollback clears it. */
  failure: unknown;
}

const finished = (): StoreError =>
  new StoreError(
    'store.transaction_finished',
    'this transaction has already finished; the tx handle may only be used inside its transaction() callback',
  );

/**
 * The `tx` passed to a `transaction()` callback, the same for both backends.
 *
 * Once a statement fails, later statements are refused and the transaction
 * cannot commit, on SQLite as on PostgreSQL (where the server enforces it):
 * otherwise a callback that catches a statement error would silently commit
 * half its writes on SQLite and silently roll back on PostgreSQL. A nested
 * `transaction()` is a savepoint, and rolling one back clears the failure.
 */
export class TransactionHandle implements ScriptDb {
  #open = true;
  readonly #nested = new AsyncMutex();

  constructor(
    readonly dialect: Dialect,
    private readonly conn: Connection,
    private readonly state: TransactionState,
    private readonly depth: number,
    private readonly lockTimeoutMs: number,
  ) {}

  /** Marks the handle finished; later calls on it reject. */
  finish(): void {
    this.#open = false;
  }

  query<T = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return this.#run(() => this.conn.query<T>(sql, params));
  }

  execute(sql: string, params: readonly unknown[] = []): Promise<RunResult> {
    return this.#run(() => this.conn.execute(sql, params));
  }

  exec(sql: string): Promise<void> {
    return this.#run(() => this.conn.exec(sql));
  }

  async transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
    if (!this.#open) throw finished();
    this.#refuseIfFailed();
    // Savepoints nest like a stack, so sibling nested transactions take turns.
    await this.#nested.acquire(
      this.lockTimeoutMs,
      () =>
        new StoreError(
          'store.busy',
          `timed out after ${this.lockTimeoutMs} ms waiting for another nested transaction on the same tx handle`,
        ),
    );
    try {
      if (!this.#open) throw finished();
      const savepoint = `portcullis_sp_${this.depth + 1}`;
      await this.#run(() => this.conn.exec(`savepoint ${savepoint}`));
      const child = new TransactionHandle(
        this.dialect,
        this.conn,
        this.state,
        this.depth + 1,
        this.lockTimeoutMs,
      );
      let result: T;
      try {
        result = await fn(child);
      } catch (err) {
        child.finish();
        try {
          await this.conn.exec(`rollback to savepoint ${savepoint}`);
          await this.conn.exec(`release savepoint ${savepoint}`);
          this.state.failure = undefined;
        } catch (rollbackErr) {
          // The connection is unusable; the caller's error matters more, and
          // the recorded failure makes the outer transaction roll back.
          this.state.failure ??= rollbackErr;
        }
        throw err;
      }
      child.finish();
      if (this.state.failure !== undefined) {
        await this.conn.exec(`rollback to savepoint ${savepoint}`);
        await this.conn.exec(`release savepoint ${savepoint}`);
        const cause = this.state.failure;
        this.state.failure = undefined;
        throw abortedError('nested transaction', cause);
      }
      await this.#run(() => this.conn.exec(`release savepoint ${savepoint}`));
      return result;
    } finally {
      this.#nested.release();
    }
  }

  async #run<T>(op: () => Promise<T>): Promise<T> {
    if (!this.#open) throw finished();
    this.#refuseIfFailed();
    try {
      return await op();
    } catch (err) {
      this.state.failure ??= err;
      throw err;
    }
  }

  #refuseIfFailed(): void {
    if (this.state.failure !== undefined) {
      throw new StoreError(
        'store.transaction_aborted',
        'an earlier statement in this transaction failed, so no further statements run; let the error propagate, or wrap the statement that may fail in a nested transaction()',
        { cause: this.state.failure },
      );
    }
  }
}

/** The error a transaction reports when it could not commit because a statement in it failed. */
export function abortedError(what: string, cause: unknown): StoreError {
  return new StoreError(
    'store.transaction_aborted',
    `the ${what} was rolled back: a statement in it failed and the error was caught inside the callback`,
    { cause },
  );
}
