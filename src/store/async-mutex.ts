/**
 * A first-come, first-served lock for async code.
 *
 * Hand-written because it is a dozen lines and no dependency is allowed for it;
 * the store needs it because better-sqlite3 is synchronous while a
 * transaction's callback is async, so nothing else stops two transactions from
 * interleaving their statements on the one connection.
 */
export class AsyncMutex {
  #held = false;
  readonly #waiters: Array<() => void> = [];

  /** True while someone holds the lock. */
  get held(): boolean {
    return this.#held;
  }

  /**
   * Resolves once the caller holds the lock. With `timeoutMs`, rejects with
   * `onTimeout()` if the lock is not granted in time (the caller then does not
   * hold it and must not release it).
   */
  acquire(timeoutMs?: number, onTimeout?: () => Error): Promise<void> {
    if (!this.#held) {
      this.#held = true;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const grant = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        resolve();
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          const index = this.#waiters.indexOf(grant);
          if (index >= 0) this.#waiters.splice(index, 1);
          reject(onTimeout?.() ?? new Error(`timed out after ${timeoutMs} ms waiting for a lock`));
        }, timeoutMs);
      }
      this.#waiters.push(grant);
    });
  }

  /** Hands the lock to the next waiter, or frees it. */
  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#held = false;
  }
}
