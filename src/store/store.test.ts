import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import pg from 'pg';
import { postgresSkipMessage, requirePostgres, testPostgresUrl } from '../test-support/postgres.js';
import { openPostgresStore, openSqliteStore, openStore, StoreError } from './index.js';
import { migrations } from './migrations/index.js';
import type { PostgresStoreOptions } from './postgres.js';
import type { SqliteStoreOptions } from './sqlite.js';
import type { Dialect, Migration, Store } from './types.js';

// The contract suite runs its own migrations, so features adding theirs to
// the registry do not change it; the registry is checked separately below.
const testMigrations: Migration[] = [
  migrations[0]!,
  {
    version: 2,
    name: 'create-counters',
    up: 'create table counters (id integer primary key, value integer not null); insert into counters (id, value) values (1, 0)',
  },
  { version: 3, name: 'create-runs', up: 'create table runs (migration integer not null)' },
  { version: 4, name: 'record-run', up: 'insert into runs (migration) values (4)' },
  {
    version: 5,
    name: 'create-things',
    up: {
      sqlite: 'create table things (id integer primary key, name text not null unique, at text, data blob)',
      postgres:
        'create table things (id integer primary key, name text not null unique, at text, data bytea)',
    },
  },
];

type Options = SqliteStoreOptions & PostgresStoreOptions;

/** A fresh, empty database that several store instances can open. */
interface Fixture {
  open(migrationList?: Migration[], opts?: Options): Store;
  cleanup(): Promise<void>;
}

interface Backend {
  name: string;
  dialect: Dialect;
  skip: string | false;
  fresh(): Promise<Fixture>;
}

const pgAvailable = (await requirePostgres()) !== undefined;

const backends: Backend[] = [
  {
    name: 'SQLite',
    dialect: 'sqlite',
    skip: false,
    async fresh() {
      const dir = await mkdtemp(join(tmpdir(), 'portcullis-store-'));
      return {
        open: (list = testMigrations, opts = {}) =>
          openSqliteStore(join(dir, 'data', 'portcullis.db'), list, opts),
        cleanup: () => rm(dir, { recursive: true, force: true }),
      };
    },
  },
  {
    name: 'PostgreSQL',
    dialect: 'postgres',
    skip: pgAvailable ? false : postgresSkipMessage(),
    async fresh() {
      const target = await requirePostgres();
      if (!target) throw new Error(postgresSkipMessage());
      return {
        open: (list = testMigrations, opts = {}) =>
          openPostgresStore(target.url, list, { schema: target.schema, ...opts }),
        cleanup: () => target.drop(),
      };
    },
  },
];

const isStoreError = (code: string, message?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof StoreError, `expected a StoreError, got ${String(err)}`);
  assert.equal(err.code, code);
  if (message) assert.match(err.message, message);
  return true;
};

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

for (const backend of backends) {
  describe(`the ${backend.name} store`, { skip: backend.skip }, () => {
    let fixture: Fixture;
    let opened: Store[] = [];
    const open = (list?: Migration[], opts?: Options): Store => {
      const store = fixture.open(list, opts);
      opened.push(store);
      return store;
    };
    const migrated = async (): Promise<Store> => {
      const store = open();
      await store.migrate();
      return store;
    };

    beforeEach(async () => {
      fixture = await backend.fresh();
    });
    afterEach(async () => {
      await Promise.all(opened.map((s) => s.close()));
      opened = [];
      await fixture.cleanup();
    });

    it('reports its dialect', () => {
      assert.equal(open().dialect, backend.dialect);
    });

    describe('migrate', () => {
      it('reports no applied migrations before the first migrate', async () => {
        assert.deepEqual(await open().appliedMigrations(), []);
      });

      it('applies every migration in order and records its version and name', async () => {
        const store = open();
        const applied = await store.migrate();
        assert.deepEqual(
          applied.map((m) => [m.version, m.name]),
          testMigrations.map((m) => [m.version, m.name]),
        );
        const recorded = await store.appliedMigrations();
        assert.deepEqual(recorded, applied);
        for (const m of recorded) assert.equal(new Date(m.appliedAt).toISOString(), m.appliedAt);
        await store.execute('insert into portcullis_meta (key, value) values ($1, $2)', ['k', 'v']);
        assert.deepEqual(await store.query('select key, value from portcullis_meta'), [
          { key: 'k', value: 'v' },
        ]);
      });

      it('applies nothing when run a second time', async () => {
        const store = open();
        await store.migrate();
        assert.deepEqual(await store.migrate(), []);
        assert.equal((await store.appliedMigrations()).length, testMigrations.length);
      });

      it('applies only the migrations added since the last run', async () => {
        await open(testMigrations.slice(0, 2)).migrate();
        const applied = await open().migrate();
        assert.deepEqual(
          applied.map((m) => m.version),
          [3, 4, 5],
        );
      });

      it('applies each migration exactly once when two instances migrate at the same time', async () => {
        const [a, b] = await Promise.all([open().migrate(), open().migrate()]);
        assert.deepEqual(
          [...a, ...b].map((m) => m.version).sort((x, y) => x - y),
          [1, 2, 3, 4, 5],
        );
        const store = open();
        assert.deepEqual(await store.query('select migration from runs'), [{ migration: 4 }]);
        assert.equal((await store.appliedMigrations()).length, 5);
      });

      it('refuses a migration list whose versions are not strictly increasing', () => {
        const list = [testMigrations[0]!, testMigrations[2]!, testMigrations[1]!];
        assert.throws(() => open(list), isStoreError('store.invalid_migrations', /strictly increasing/));
      });

      it('reports clearly a recorded migration whose name differs from this build', async () => {
        await open().migrate();
        const renamed = testMigrations.map((m) => (m.version === 2 ? { ...m, name: 'make-counters' } : m));
        await assert.rejects(
          open(renamed).migrate(),
          isStoreError(
            'store.migration_mismatch',
            /migration 2 as "create-counters" but this build calls it "make-counters": it was migrated by a different build/,
          ),
        );
      });

      it('reports clearly a recorded migration that this build does not have', async () => {
        await open().migrate();
        await assert.rejects(
          open(testMigrations.slice(0, 3)).migrate(),
          isStoreError(
            'store.migration_mismatch',
            /migration 4 "record-run", which this build does not have/,
          ),
        );
      });

      it('rolls back a failing migration entirely and names it', async () => {
        const store = open([
          ...testMigrations,
          { version: 6, name: 'broken', up: 'create table half (x integer); select * from no_such_table' },
        ]);
        await assert.rejects(
          store.migrate(),
          isStoreError('store.migration_failed', /migration 6 "broken" failed/),
        );
        assert.equal((await store.appliedMigrations()).length, 5);
        await assert.rejects(
          store.query('select x from half'),
          backend.dialect === 'sqlite'
            ? { code: 'SQLITE_ERROR', message: /no such table: half/ }
            : { code: '42P01', message: /relation "half" does not exist/ },
        );
      });
    });

    describe('statements', () => {
      it('binds a repeated $1 twice and leaves a literal $1 inside a string alone', async () => {
        const store = open();
        const rows = await store.query(
          `select cast($1 as text) as a, cast($1 as text) as b, '$1' as lit, 'it''s $2' as quoted, cast($2 as text) as c`,
          ['x', 'y'],
        );
        assert.deepEqual(rows, [{ a: 'x', b: 'x', lit: '$1', quoted: "it's $2", c: 'y' }]);
      });

      it('reads $10 as the tenth parameter, not $1 followed by 0', async () => {
        const store = open();
        const params = 'abcdefghij'.split('');
        const all = params.map((_, i) => `cast($${i + 1} as text)`).join(' || ');
        const rows = await store.query(`select ${all} as s, cast($10 as text) as ten`, params);
        assert.deepEqual(rows, [{ s: 'abcdefghij', ten: 'j' }]);
      });

      it('binds booleans and dates the same way on both databases', async () => {
        const store = await migrated();
        const at = new Date('2026-01-02T03:04:05.678Z');
        await store.execute('insert into things (id, name, at) values ($1, $2, $3)', [1, 'a', at]);
        assert.deepEqual(await store.query('select at from things where id = $1', [1]), [
          { at: '2026-01-02T03:04:05.678Z' },
        ]);
        const answer = "select case when $1 then 'yes' else 'no' end as answer";
        assert.deepEqual(await store.query(answer, [true]), [{ answer: 'yes' }]);
        assert.deepEqual(await store.query(answer, [false]), [{ answer: 'no' }]);
      });

      it('returns bytes as a Buffer and counts as a number', async () => {
        const store = await migrated();
        await store.execute('insert into things (id, name, data) values ($1, $2, $3)', [
          1,
          'a',
          Buffer.from([1, 2]),
        ]);
        const [row] = await store.query<{ data: Buffer }>('select data from things');
        assert.deepEqual(row?.data, Buffer.from([1, 2]));
        assert.deepEqual(await store.query('select count(*) as n from things'), [{ n: 1 }]);
      });

      it('reports how many rows a statement changed', async () => {
        const store = await migrated();
        for (const [id, name] of [
          [1, 'a'],
          [2, 'b'],
          [3, 'c'],
        ]) {
          await store.execute('insert into things (id, name) values ($1, $2)', [id, name]);
        }
        assert.deepEqual(await store.execute('update things set at = $1 where id < $2', ['now', 3]), {
          changes: 2,
        });
        assert.deepEqual(await store.execute('delete from things where id = $1', [42]), { changes: 0 });
      });

      it('answers a statement without rows with an empty list', async () => {
        const store = await migrated();
        assert.deepEqual(await store.query('update counters set value = value + 1'), []);
        assert.deepEqual(await store.query('select value from counters'), [{ value: 1 }]);
      });

      it('rejects a parameter count that does not match the placeholders', async () => {
        const store = open();
        await assert.rejects(
          store.query('select cast($1 as text) as a', ['x', 'y']),
          backend.dialect === 'sqlite'
            ? isStoreError('store.invalid_params', /placeholders up to \$1 but 2 parameter\(s\) were given/)
            : {
                code: '08P01',
                message: /bind message supplies 2 parameters, but prepared statement "" requires 1/,
              },
        );
        await assert.rejects(
          store.query('select cast($2 as text) as a', ['x']),
          backend.dialect === 'sqlite'
            ? isStoreError('store.invalid_params', /placeholders up to \$2 but 1 parameter\(s\) were given/)
            : // The server sees $1 unused and cannot type it.
              { code: '42P18', message: /could not determine data type of parameter \$1/ },
        );
      });

      it('rejects several statements in one call', async () => {
        await assert.rejects(
          open().query('select 1; select 2'),
          backend.dialect === 'sqlite'
            ? { name: 'RangeError', message: /contains more than one statement/ }
            : { code: '42601', message: /cannot insert multiple commands into a prepared statement/ },
        );
      });
    });

    describe('transaction', () => {
      it('commits when the callback resolves and returns its value', async () => {
        const store = await migrated();
        const result = await store.transaction(async (tx) => {
          await tx.execute('insert into things (id, name) values ($1, $2)', [1, 'a']);
          return 'done';
        });
        assert.equal(result, 'done');
        assert.deepEqual(await store.query('select name from things'), [{ name: 'a' }]);
      });

      it('rolls back when the callback throws, and rethrows the same error', async () => {
        const store = await migrated();
        const boom = new Error('boom');
        const caught = await store
          .transaction(async (tx) => {
            await tx.execute('insert into things (id, name) values ($1, $2)', [1, 'a']);
            throw boom;
          })
          .catch((err: unknown) => err);
        assert.equal(caught, boom);
        assert.deepEqual(await store.query('select name from things'), []);
      });

      it('loses no update when 20 read-modify-write transactions run at once', async () => {
        const store = await migrated();
        await Promise.all(
          Array.from({ length: 20 }, () =>
            store.transaction(async (tx) => {
              // Touching the row first locks it on PostgreSQL; SQLite serializes anyway.
              await tx.execute('update counters set value = value where id = 1');
              const [row] = await tx.query<{ value: number }>('select value from counters where id = 1');
              await nextTurn();
              await tx.execute('update counters set value = $1 where id = 1', [row!.value + 1]);
            }),
          ),
        );
        assert.deepEqual(await store.query('select value from counters'), [{ value: 20 }]);
      });

      it('rolls back only a nested transaction that throws', async () => {
        const store = await migrated();
        await store.transaction(async (tx) => {
          await tx.execute('insert into things (id, name) values ($1, $2)', [1, 'kept']);
          await assert.rejects(
            tx.transaction(async (inner) => {
              await inner.execute('insert into things (id, name) values ($1, $2)', [2, 'dropped']);
              throw new Error('undo the inner part');
            }),
            /undo the inner part/,
          );
          await tx.execute('insert into things (id, name) values ($1, $2)', [3, 'also kept']);
        });
        assert.deepEqual(await store.query('select name from things order by id'), [
          { name: 'kept' },
          { name: 'also kept' },
        ]);
      });

      it('refuses to commit after a failed statement whose error the callback caught', async () => {
        const store = await migrated();
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.execute('insert into things (id, name) values ($1, $2)', [1, 'a']);
            await tx.execute('insert into things (id, name) values ($1, $2)', [2, 'a']).catch(() => {});
            await assert.rejects(tx.query('select 1'), isStoreError('store.transaction_aborted'));
          }),
          isStoreError('store.transaction_aborted', /rolled back/),
        );
        assert.deepEqual(await store.query('select name from things'), []);
      });

      it('recovers from a failed statement inside a nested transaction', async () => {
        const store = await migrated();
        await store.transaction(async (tx) => {
          await tx.execute('insert into things (id, name) values ($1, $2)', [1, 'a']);
          await assert.rejects(
            tx.transaction((inner) =>
              inner.execute('insert into things (id, name) values ($1, $2)', [2, 'a']),
            ),
            backend.dialect === 'sqlite'
              ? { code: 'SQLITE_CONSTRAINT_UNIQUE', message: /UNIQUE constraint failed: things\.name/ }
              : { code: '23505', message: /duplicate key value violates unique constraint/ },
          );
          await tx.execute('insert into things (id, name) values ($1, $2)', [3, 'b']);
        });
        assert.deepEqual(await store.query('select name from things order by id'), [
          { name: 'a' },
          { name: 'b' },
        ]);
      });

      it('rejects a tx handle used after its transaction finished', async () => {
        const store = await migrated();
        let leaked: Parameters<Parameters<Store['transaction']>[0]>[0] | undefined;
        await store.transaction(async (tx) => {
          leaked = tx;
        });
        await assert.rejects(leaked!.query('select 1'), isStoreError('store.transaction_finished'));
      });
    });

    describe('ping and close', () => {
      it('answers ping, and rejects it once closed', async () => {
        const store = open();
        await store.ping();
        await store.close();
        await assert.rejects(store.ping(), isStoreError('store.closed'));
        await assert.rejects(store.query('select 1'), isStoreError('store.closed'));
        await store.close();
      });
    });
  });
}

describe('the SQLite store, specifically', () => {
  let dir: string;
  const stores: Store[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-sqlite-'));
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
  });
  const open = (path = join(dir, 'portcullis.db'), opts?: SqliteStoreOptions): Store => {
    const store = openSqliteStore(path, testMigrations, opts);
    stores.push(store);
    return store;
  };

  it('creates the database file with mode 0600 in a new directory with mode 0700', async () => {
    const file = join(dir, 'nested', 'data', 'portcullis.db');
    await open(file).migrate();
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'nested', 'data'))).mode & 0o777, 0o700);
  });

  it('tightens an existing database file to mode 0600', async () => {
    const file = join(dir, 'portcullis.db');
    await writeFile(file, '');
    await chmod(file, 0o644);
    await open(file).ping();
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  });

  it('uses WAL mode, enforces foreign keys and sets a busy timeout', async () => {
    const store = open(undefined, { busyTimeoutMs: 1234 });
    assert.deepEqual(await store.query('pragma journal_mode'), [{ journal_mode: 'wal' }]);
    assert.deepEqual(await store.query('pragma busy_timeout'), [{ timeout: 1234 }]);
    await store.execute('create table parent (id integer primary key)');
    await store.execute('create table child (parent integer references parent (id))');
    await assert.rejects(store.execute('insert into child (parent) values ($1)', [1]), /FOREIGN KEY/);
  });

  it('serializes transactions, so even an unlocked read-modify-write loses no update', async () => {
    const store = open();
    await store.migrate();
    await Promise.all(
      Array.from({ length: 20 }, () =>
        store.transaction(async (tx) => {
          const [row] = await tx.query<{ value: number }>('select value from counters where id = 1');
          await nextTurn();
          await tx.execute('update counters set value = $1 where id = 1', [row!.value + 1]);
        }),
      ),
    );
    assert.deepEqual(await store.query('select value from counters'), [{ value: 20 }]);
  });

  it('makes a statement outside the transaction wait until the transaction ends', async () => {
    const store = open();
    await store.migrate();
    const events: string[] = [];
    let entered!: () => void;
    const inside = new Promise<void>((r) => {
      entered = r;
    });
    const tx = store.transaction(async (t) => {
      await t.execute('update counters set value = 7');
      entered();
      await nextTurn();
      await nextTurn();
      events.push('commit');
    });
    await inside;
    const outside = store.query('select value from counters').then((rows) => {
      events.push('outside');
      return rows;
    });
    await tx;
    assert.deepEqual(await outside, [{ value: 7 }]);
    assert.deepEqual(events, ['commit', 'outside']);
  });

  it('fails with store.busy, not a hang, when the store itself is awaited inside its own transaction', async () => {
    const store = open(undefined, { busyTimeoutMs: 100 });
    await assert.rejects(
      store.transaction(() => store.query('select 1')),
      isStoreError('store.busy', /use its tx handle/),
    );
    await store.ping();
  });

  it('lets two instances on the same file in one process take turns', async () => {
    const a = open();
    const b = open();
    await a.migrate();
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? a : b).transaction(async (tx) => {
          const [row] = await tx.query<{ value: number }>('select value from counters');
          await nextTurn();
          await tx.execute('update counters set value = $1', [row!.value + 1]);
        }),
      ),
    );
    assert.deepEqual(await b.query('select value from counters'), [{ value: 10 }]);
  });

  it('refuses a bare ? placeholder', async () => {
    await assert.rejects(open().query('select ?', [1]), isStoreError('store.invalid_params', /\$1, \$2/));
  });

  it('ignores $n inside comments, quoted identifiers and identifiers', async () => {
    const rows = await open().query('select $1 as "col$2", 5 as [br$3] -- $4\n /* $5 */ , 6 as a$7', ['v']);
    assert.deepEqual(rows, [{ col$2: 'v', br$3: 5, a$7: 6 }]);
  });
});

describe('the PostgreSQL store, specifically', { skip: pgAvailable ? false : postgresSkipMessage() }, () => {
  const closedPort = async (): Promise<number> => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = server.address();
    await new Promise<void>((r) => server.close(() => r()));
    assert.ok(address && typeof address === 'object');
    return address.port;
  };

  it('rejects ping, without crashing, when the server is unreachable', async () => {
    const errors: Error[] = [];
    const port = await closedPort();
    const store = openPostgresStore(`postgres://postgres@127.0.0.1:${port}/test`, testMigrations, {
      connectTimeoutMs: 2000,
      onError: (err) => errors.push(err),
    });
    try {
      await assert.rejects(store.ping(), /ECONNREFUSED/);
      await assert.rejects(store.migrate(), /ECONNREFUSED/);
    } finally {
      await store.close();
    }
  });

  it('redacts the password from its location', async () => {
    const store = openPostgresStore(
      'postgres://app:s3cret@db.example:5433/gw?password=other',
      testMigrations,
      {
        schema: 'gw',
      },
    );
    try {
      assert.equal(store.location, 'postgres://app:***@db.example:5433/gw?password=*** (schema gw)');
    } finally {
      await store.close();
    }
  });

  it('reports through onError a connection the server drops, idle or inside a transaction', async () => {
    const target = await requirePostgres();
    assert.ok(target);
    const errors: Error[] = [];
    const store = openPostgresStore(target.url, testMigrations, {
      schema: target.schema,
      onError: (err) => errors.push(err),
    });
    const admin = new pg.Client({ connectionString: testPostgresUrl() });
    await admin.connect();
    try {
      const [idle] = await store.query<{ pid: number }>('select pg_backend_pid() as pid');
      await admin.query('select pg_terminate_backend($1)', [idle!.pid]);
      for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(errors.length, 1);

      await assert.rejects(
        store.transaction(async (tx) => {
          const [busy] = await tx.query<{ pid: number }>('select pg_backend_pid() as pid');
          await admin.query('select pg_terminate_backend($1)', [busy!.pid]);
          for (let i = 0; i < 100 && errors.length === 1; i++) await new Promise((r) => setTimeout(r, 20));
          await tx.query('select 1');
        }),
        // pg refuses the dead client; if its error event is still in flight, the server's own notice.
        /Client has encountered a connection error and is not queryable|terminating connection due to administrator command|Connection terminated unexpectedly/,
      );
      // A connection dropped mid-transaction may report twice (the server's
      // notice, then the closed socket); what matters is that none is lost.
      assert.ok(errors.length >= 2);
      for (const err of errors) assert.match(err.message, /terminat/i);
      await store.ping();
    } finally {
      await admin.end();
      await store.close();
      await target.drop();
    }
  });
});

describe('openStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-open-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('throws for an unsupported scheme, naming the accepted ones and not the URL', async () => {
    await assert.rejects(
      openStore({ url: 'mysql://root:hunter2@db/portcullis', dataDir: dir }),
      (err: unknown) => {
        assert.ok(err instanceof StoreError);
        assert.equal(err.code, 'store.unsupported_url');
        assert.match(err.message, /"mysql:"/);
        assert.match(err.message, /sqlite:PATH, postgres:\/\/… or postgresql:\/\//);
        assert.doesNotMatch(err.message, /hunter2/);
        return true;
      },
    );
    await assert.rejects(openStore({ url: 'portcullis.db', dataDir: dir }), /has no scheme/);
  });

  it('opens SQLite at <dataDir>/portcullis.db when no URL is given, without migrating', async () => {
    const dataDir = join(dir, 'data');
    const store = await openStore({ dataDir });
    try {
      assert.equal(store.dialect, 'sqlite');
      assert.equal(store.location, `sqlite:${join(dataDir, 'portcullis.db')}`);
      assert.deepEqual(await store.appliedMigrations(), []);
      assert.deepEqual(
        (await store.migrate()).map((m) => m.name),
        migrations.map((m) => m.name),
      );
    } finally {
      await store.close();
    }
  });

  it('resolves a relative sqlite: path against the working directory, not the data folder', async () => {
    const rel = relative(process.cwd(), join(dir, 'rel.db'));
    const store = await openStore({ url: `sqlite:${rel}`, dataDir: join(dir, 'elsewhere') });
    try {
      assert.equal(store.location, `sqlite:${join(dir, 'rel.db')}`);
    } finally {
      await store.close();
    }
    const absolute = await openStore({ url: `sqlite://${join(dir, 'abs.db')}`, dataDir: dir });
    await absolute.close();
    assert.equal(absolute.location, `sqlite:${join(dir, 'abs.db')}`);
  });

  it('opens PostgreSQL for postgres:// and postgresql:// URLs, without connecting', async () => {
    for (const url of ['postgres://u:p@127.0.0.1:1/x', 'postgresql://u:p@127.0.0.1:1/x']) {
      const store = await openStore({ url, dataDir: dir });
      assert.equal(store.dialect, 'postgres');
      assert.doesNotMatch(store.location, /:p@/);
      await store.close();
    }
  });
});

describe('the migration registry', () => {
  it('applies on an empty SQLite database', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-registry-'));
    try {
      const store = await openStore({ dataDir: dir });
      const applied = await store.migrate();
      assert.deepEqual(
        applied.map((m) => m.version),
        migrations.map((m) => m.version),
      );
      await store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('applies on an empty PostgreSQL schema', async (t) => {
    const pgTest = await requirePostgres();
    if (!pgTest) return t.skip(postgresSkipMessage());
    const store = openPostgresStore(pgTest.url, migrations, { schema: pgTest.schema });
    try {
      assert.equal((await store.migrate()).length, migrations.length);
    } finally {
      await store.close();
      await pgTest.drop();
    }
  });
});
