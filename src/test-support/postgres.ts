import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The PostgreSQL the tests use unless `PORTCULLIS_TEST_PG_URL` says otherwise. */
export const DEFAULT_TEST_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';

/** A private schema in the test PostgreSQL. */
export interface TestPostgres {
  url: string;
  /** A fresh `pc_test_<random>` name; the store creates the schema on first use. */
  schema: string;
  /** Drops the schema and everything in it. */
  drop(): Promise<void>;
}

/** The test PostgreSQL's URL. */
export function testPostgresUrl(): string {
  return process.env.PORTCULLIS_TEST_PG_URL || DEFAULT_TEST_POSTGRES_URL;
}

function hostPort(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '5432'}`;
  } catch {
    return 'the configured URL';
  }
}

/** The reason to give when skipping a test because PostgreSQL is absent. */
export function postgresSkipMessage(): string {
  return `PostgreSQL not reachable at ${hostPort(testPostgresUrl())} — skipped (required when CI=true)`;
}

let probe: Promise<Error | undefined> | undefined;

/** Connects once per process, within ~2 s; resolves to the failure, if any. */
function probePostgres(url: string): Promise<Error | undefined> {
  probe ??= (async () => {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('select 1');
      return undefined;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return probe;
}

/**
 * A fresh schema in the test PostgreSQL, or `undefined` when it is not
 * reachable, so the caller can skip with {@link postgresSkipMessage}.
 *
 * @throws Error when PostgreSQL is not reachable and `CI=true`: there, a
 * skipped PostgreSQL test would hide a broken backend.
 */
export async function requirePostgres(): Promise<TestPostgres | undefined> {
  const url = testPostgresUrl();
  const failure = await probePostgres(url);
  if (failure) {
    if (process.env.CI === 'true') {
      throw new Error(
        `PostgreSQL is required when CI=true but is not reachable at ${hostPort(url)}: ${failure.message}`,
        { cause: failure },
      );
    }
    return undefined;
  }
  const schema = `pc_test_${randomBytes(6).toString('hex')}`;
  return {
    url,
    schema,
    async drop() {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.query(`drop schema if exists ${schema} cascade`);
      } finally {
        await client.end().catch(() => {});
      }
    },
  };
}
