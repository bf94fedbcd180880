/** Stable codes of the errors the store layer raises itself (driver errors pass through unchanged). */
export type StoreErrorCode =
  | 'store.unsupported_url'
  | 'store.invalid_options'
  | 'store.invalid_params'
  | 'store.invalid_migrations'
  | 'store.migration_mismatch'
  | 'store.migration_failed'
  | 'store.closed'
  | 'store.busy'
  | 'store.transaction_finished'
  | 'store.transaction_aborted';

/**
 * An error raised by the store layer itself, as opposed to one the database
 * reported. The message is meant for operators (logs, start-up failures), not
 * for API clients.
 */
export class StoreError extends Error {
  override readonly name = 'StoreError';

  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
