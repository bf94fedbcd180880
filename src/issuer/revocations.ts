/**
 * Revoked access tokens (RFC 7009), by `jti`, kept until they would have
 * expired anyway. The verifier asks on every request, so the answer comes
 * from memory: the table is loaded at start, this instance's revocations are
 * added at once, and other instances' are picked up by {@link RevocationList.sync}
 * (every few seconds): that interval bounds how long a token revoked
 * elsewhere stays usable here.
 */
import type { Db } from '../store/types.js';

/** In-memory view of `revoked_tokens`. */
export class RevocationList {
  readonly #db: Db;
  readonly #now: () => number;
  /** jti → expiry (ms). Entries leave only by expiring: a revocation is never undone. */
  readonly #revoked = new Map<string, number>();

  private constructor(db: Db, now: () => number) {
    this.#db = db;
    this.#now = now;
  }

  /** Loads the unexpired revocations. */
  static async open(db: Db, now: () => number = Date.now): Promise<RevocationList> {
    const list = new RevocationList(db, now);
    await list.sync();
    return list;
  }

  /** Whether the token id has been revoked (and has not expired since). O(1), no I/O. */
  has(jti: string): boolean {
    const exp = this.#revoked.get(jti);
    return exp !== undefined && exp > this.#now();
  }

  /** Records a revocation in the table and, at once, in this instance's memory. */
  async add(jti: string, clientId: string, expiresAtMs: number): Promise<void> {
    await this.#db.execute(
      'insert into revoked_tokens (jti, client_id, expires_at) values ($1, $2, $3) on conflict do nothing',
      [jti, clientId, new Date(expiresAtMs).toISOString()],
    );
    this.#revoked.set(jti, expiresAtMs);
  }

  /**
   * Merges the table into memory (adding, never replacing, so a revocation
   * made here while the query ran is not lost), forgets expired entries, and
   * deletes expired rows.
   */
  async sync(): Promise<void> {
    const now = this.#now();
    const cutoff = new Date(now).toISOString();
    const rows = await this.#db.query<{ jti: string; expires_at: string }>(
      'select jti, expires_at from revoked_tokens where expires_at > $1',
      [cutoff],
    );
    for (const row of rows) this.#revoked.set(row.jti, Date.parse(row.expires_at));
    for (const [jti, exp] of this.#revoked) if (exp <= now) this.#revoked.delete(jti);
    await this.#db.execute('delete from revoked_tokens where expires_at <= $1', [cutoff]);
  }

  /** Entries held in memory (for tests and metrics). */
  get size(): number {
    return this.#revoked.size;
  }
}
