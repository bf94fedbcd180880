/**
 * Requests in flight, per key and in total, on this instance. An entry
 * exists only while its key has a request in flight, so the table never
 * holds more keys than there are requests in flight.
 *
 * In flight is a property of one process: with several instances each one
 * enforces its own `max` (a shared count would need leases that survive a
 * crashed instance, and a second Redis round trip per request).
 */
export class InFlight {
  private readonly counts = new Map<string, number>();
  /** Requests in flight over every key. */
  total = 0;

  get keys(): number {
    return this.counts.size;
  }

  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** Adds one request of `key` unless `max` are already in flight; returns whether it did. */
  tryAcquire(key: string, max: number): boolean {
    const n = this.counts.get(key) ?? 0;
    if (n >= max) return false;
    this.counts.set(key, n + 1);
    this.total++;
    return true;
  }

  /** Adds one request whatever the count (shadow mode). */
  acquire(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.total++;
  }

  release(key: string): void {
    const n = this.counts.get(key);
    if (n === undefined) return;
    if (n <= 1) this.counts.delete(key);
    else this.counts.set(key, n - 1);
    this.total--;
  }
}
