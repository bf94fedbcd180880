/** Stores with the alerts migration for tests: SQLite in a temp folder, and PostgreSQL when it is reachable. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrations, openPostgresStore, openSqliteStore, type Store } from '../../store/index.js';
import { postgresSkipMessage, requirePostgres } from '../../test-support/postgres.js';
import { withAlertsMigration } from '../cli.js';

export interface Backend {
  name: string;
  skip: string | false;
  open(): Promise<{ store: Store; cleanup(): Promise<void> }>;
}

/** A migrated SQLite store in a fresh folder. */
export async function openTestSqlite(): Promise<{ store: Store; dataDir: string; cleanup(): Promise<void> }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-alerts-'));
  const store = openSqliteStore(join(dataDir, 'portcullis.db'), withAlertsMigration(migrations));
  await store.migrate();
  return {
    store,
    dataDir,
    async cleanup() {
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** SQLite, and PostgreSQL (skipped with a reason when unreachable outside CI). */
export async function backends(): Promise<Backend[]> {
  const pgAvailable = (await requirePostgres()) !== undefined;
  return [
    {
      name: 'SQLite',
      skip: false,
      async open() {
        const { store, cleanup } = await openTestSqlite();
        return { store, cleanup };
      },
    },
    {
      name: 'PostgreSQL',
      skip: pgAvailable ? false : postgresSkipMessage(),
      async open() {
        const target = await requirePostgres();
        if (!target) throw new Error(postgresSkipMessage());
        const store = openPostgresStore(target.url, withAlertsMigration(migrations), {
          schema: target.schema,
        });
        await store.migrate();
        return {
          store,
          async cleanup() {
            await store.close();
            await target.drop();
          },
        };
      },
    },
  ];
}
