/** Fresh, migrated stores on each backend, for the test suites that run against both. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPostgresStore, openSqliteStore } from '../store/index.js';
import type { Migration, Store } from '../store/types.js';
import { postgresSkipMessage, requirePostgres } from './postgres.js';

/** A fresh, migrated database that several store instances ("gateway instances") can open. */
export interface StoreFixture {
  /** The data folder (secrets live there). */
  dataDir: string;
  /** The first store, migrated. */
  store: Store;
  /** Another store on the same database, as a second gateway instance would open. */
  openAnother(): Promise<Store>;
  cleanup(): Promise<void>;
}

export interface StoreBackend {
  name: string;
  /** The skip reason, or false. */
  skip: string | false;
  fresh(): Promise<StoreFixture>;
}

const pgAvailable = (await requirePostgres()) !== undefined;

/** Opens stores through `open`, migrates each, and closes them all on cleanup. */
async function freshFixture(
  dataDir: string,
  open: () => Store,
  dropDatabase?: () => Promise<void>,
): Promise<StoreFixture> {
  const stores: Store[] = [];
  const openAnother = async () => {
    const store = open();
    stores.push(store);
    await store.migrate();
    return store;
  };
  const store = await openAnother();
  return {
    dataDir,
    store,
    openAnother,
    async cleanup() {
      for (const s of stores) await s.close();
      await dropDatabase?.();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * SQLite in a temp folder, and the test PostgreSQL in a private schema
 * (skipped when absent, unless CI=true), both migrated with `migrations`.
 * `prefix` names the temp folders, e.g. `portcullis-audit-`.
 */
export function storeBackends(migrations: Migration[], prefix: string): StoreBackend[] {
  return [
    {
      name: 'SQLite',
      skip: false,
      async fresh() {
        const dataDir = await mkdtemp(join(tmpdir(), prefix));
        return freshFixture(dataDir, () => openSqliteStore(join(dataDir, 'portcullis.db'), migrations));
      },
    },
    {
      name: 'PostgreSQL',
      skip: pgAvailable ? false : postgresSkipMessage(),
      async fresh() {
        const target = await requirePostgres();
        if (!target) throw new Error(postgresSkipMessage());
        const dataDir = await mkdtemp(join(tmpdir(), prefix));
        return freshFixture(
          dataDir,
          () => openPostgresStore(target.url, migrations, { schema: target.schema, poolSize: 4 }),
          () => target.drop(),
        );
      },
    },
  ];
}
