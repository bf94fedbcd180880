import { join, resolve } from 'node:path';
import { StoreError } from './errors.js';
import { migrations as allMigrations } from './migrations/index.js';
import { openPostgresStore } from './postgres.js';
import { openSqliteStore } from './sqlite.js';
import type { Migration, Store } from './types.js';

export { StoreError, type StoreErrorCode } from './errors.js';
export { migrations } from './migrations/index.js';
export { validateMigrations } from './migrations.js';
export { openPostgresStore, type PostgresStoreOptions, redactPostgresUrl } from './postgres.js';
export { openSqliteStore, type SqliteStoreOptions } from './sqlite.js';
export type * from './types.js';

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /**
   * Where the data lives:
   * - absent: SQLite at `<dataDir>/portcullis.db`;
   * - `sqlite:PATH`: SQLite at PATH; a relative PATH is resolved against the
   *   process's working directory (not `dataDir`); `sqlite:///abs/path` and
   *   `sqlite::memory:` also work;
   * - `postgres://…` or `postgresql://…`: PostgreSQL.
   */
  url?: string;
  /** The data folder, for the default SQLite database. */
  dataDir: string;
  /** Defaults to every migration of this build. */
  migrations?: Migration[];
  /** Receives PostgreSQL connection errors that happen outside any call. */
  onError?: (err: Error) => void;
}

const ACCEPTED = 'sqlite:PATH, postgres://… or postgresql://… (or no URL, for SQLite in the data folder)';

/**
 * Opens the store described by `opts`. It does not connect eagerly nor
 * migrate: call `migrate()` (and `ping()` to check a server is reachable).
 *
 * @throws StoreError `store.unsupported_url` for any other URL; the message
 * names the scheme and the accepted ones, never the rest of the URL, which
 * may hold a password.
 */
export async function openStore(opts: OpenStoreOptions): Promise<Store> {
  const migrations = opts.migrations ?? allMigrations;
  const { url } = opts;
  if (url === undefined) return openSqliteStore(join(opts.dataDir, 'portcullis.db'), migrations);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'sqlite') return openSqliteStore(sqlitePath(url.slice('sqlite:'.length)), migrations);
  if ((scheme === 'postgres' || scheme === 'postgresql') && url.slice(scheme.length + 1).startsWith('//')) {
    return openPostgresStore(url, migrations, opts.onError ? { onError: opts.onError } : {});
  }
  throw new StoreError(
    'store.unsupported_url',
    scheme === undefined
      ? `the store URL has no scheme; accepted: ${ACCEPTED}`
      : `the store URL scheme "${scheme}:" is not supported; accepted: ${ACCEPTED}`,
  );
}

function sqlitePath(rest: string): string {
  if (rest === ':memory:') return rest;
  if (rest.startsWith('//')) {
    // sqlite:///abs/path is the URL form of an absolute path; a host is meaningless.
    if (!rest.startsWith('///')) {
      throw new StoreError(
        'store.unsupported_url',
        'a sqlite: URL takes a path (sqlite:data/portcullis.db or sqlite:///var/lib/portcullis.db), not a host',
      );
    }
    return rest.slice(2);
  }
  if (rest === '')
    throw new StoreError('store.unsupported_url', 'the sqlite: URL has no path, as in sqlite:PATH');
  return resolve(rest);
}
