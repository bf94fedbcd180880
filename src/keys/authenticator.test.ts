import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuthFailure, AuthUnavailable } from '../auth/types.js';
import { migrations, openPostgresStore, openSqliteStore, type Store } from '../store/index.js';
import type { Db } from '../store/types.js';
import { postgresSkipMessage, requirePostgres } from '../test-support/postgres.js';
import { type ApiKeyAuthenticator, createApiKeyAuthenticator, resolvePepper } from './authenticator.js';
import { formatApiKey, generateApiKey, parseApiKey } from './format.js';
import {
  ApiKeyError,
  type ApiKeyStore,
  createApiKeyStore,
  digestSecret,
  TOUCH_INTERVAL_MS,
} from './store.js';

const PEPPER = randomBytes(32).toString('base64');
const TTL = 30_000;
const START = Date.parse('2030-01-01T00:00:00.000Z');

interface Backend {
  name: string;
  skip: string | false;
  open(): Promise<{ store: Store; cleanup(): Promise<void> }>;
}

const pgAvailable = (await requirePostgres()) !== undefined;

const backends: Backend[] = [
  {
    name: 'SQLite',
    skip: false,
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'portcullis-keys-'));
      const store = openSqliteStore(join(dir, 'portcullis.db'), migrations);
      return { store, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'PostgreSQL',
    skip: pgAvailable ? false : postgresSkipMessage(),
    async open() {
      const target = await requirePostgres();
      if (!target) throw new Error(postgresSkipMessage());
      return {
        store: openPostgresStore(target.url, migrations, { schema: target.schema }),
        cleanup: target.drop,
      };
    },
  },
];

/** A Db that counts the statements it passes on. */
function counting(db: Db): Db & { calls: number } {
  const counter = {
    calls: 0,
    dialect: db.dialect,
    query<T>(sql: string, params?: readonly unknown[]) {
      counter.calls++;
      return db.query<T>(sql, params);
    },
    execute(sql: string, params?: readonly unknown[]) {
      counter.calls++;
      return db.execute(sql, params);
    },
    transaction<T>(fn: (tx: Db) => Promise<T>) {
      counter.calls++;
      return db.transaction(fn);
    },
  };
  return counter;
}

const failsWith = (reason: string, id?: string) => (err: unknown) => {
  assert.ok(err instanceof AuthFailure, `expected an AuthFailure, got ${String(err)}`);
  assert.equal(err.reason, reason);
  assert.equal(err.credentialId, id);
  return true;
};

for (const backend of backends) {
  describe(`API keys on ${backend.name}`, { skip: backend.skip }, () => {
    let store: Store;
    let cleanup: () => Promise<void>;
    let clock = START;
    const now = () => clock;
    const warnings: string[] = [];
    const logger = { warn: (_: Record<string, unknown>, message: string) => void warnings.push(message) };
    let keys: ApiKeyStore;
    const authenticators: ApiKeyAuthenticator[] = [];

    function authenticator(options: { cacheSize?: number; db?: Db; pepper?: string } = {}) {
      const a = createApiKeyAuthenticator({
        settings: { cacheSize: options.cacheSize ?? 100, cacheTtlMs: TTL },
        pepper: options.pepper ?? PEPPER,
        db: options.db ?? store,
        logger,
        now,
      });
      authenticators.push(a);
      return a;
    }

    const create = (input: { scopes?: string[]; tenant?: string; expiresAt?: number } = {}) =>
      keys.create({ name: 'billing job', scopes: input.scopes ?? ['orders:read'], ...input });

    before(async () => {
      ({ store, cleanup } = await backend.open());
      await store.migrate();
      keys = createApiKeyStore(store, { pepper: PEPPER, logger, now });
    });

    after(async () => {
      await Promise.all(authenticators.map((a) => a.settle()));
      await keys.settle();
      await store.close();
      await cleanup();
      assert.deepEqual(warnings, []);
    });

    it('accepts a valid key and returns its principal', async () => {
      const { key, record } = await create({ scopes: ['orders:read', 'orders:write'], tenant: 'acme' });
      const principal = await authenticator().authenticate(key);
      assert.deepEqual(principal, {
        kind: 'api_key',
        id: record.id,
        scopes: ['orders:read', 'orders:write'],
        roles: [],
        claims: { name: 'billing job' },
        tenant: 'acme',
      });
      assert.match(principal.id, /^key_/);
    });

    it('rejects a wrong secret behind a valid id and checksum as a mismatch', async () => {
      const { key, record } = await create();
      const forged = formatApiKey(record.id, generateApiKey().secret);
      assert.notEqual(parseApiKey(forged), undefined, 'the forged key must pass the format check');
      const auth = authenticator();
      await assert.rejects(auth.authenticate(forged), failsWith('key_mismatch', record.id));
      // The real key still works afterwards, cached or not.
      assert.equal((await auth.authenticate(key)).id, record.id);
      await assert.rejects(auth.authenticate(forged), failsWith('key_mismatch', record.id));
    });

    it('keeps no usable secret in the store: no column holds the key or secret, and the digest needs the pepper', async () => {
      const { key, record } = await create();
      const { secret } = parseApiKey(key)!;
      const rows = await store.query<Record<string, unknown>>('select * from api_keys where id = $1', [
        record.id,
      ]);
      assert.equal(rows.length, 1);
      const row = rows[0]!;
      const values = Object.values(row).map((v) => (Buffer.isBuffer(v) ? v.toString('latin1') : String(v)));
      for (const value of values) {
        assert.ok(!value.includes(secret), 'a column holds the secret');
        assert.ok(!value.includes(key.slice(-20)), 'a column holds part of the key');
        assert.ok(!value.includes(secret.slice(0, 16)), 'a column holds part of the secret');
      }
      // Not an unkeyed hash, and not keyed by anything but the pepper.
      const digest = String(row.digest);
      assert.equal(
        digest,
        digestSecret(PEPPER, secret).toString('hex'),
        'the digest is the HMAC under the pepper',
      );
      assert.notEqual(digest, createHash('sha256').update(secret).digest('hex'));
      assert.notEqual(digest, digestSecret(randomBytes(32).toString('base64'), secret).toString('hex'));
      // Whoever has the whole database but not the pepper cannot use the key.
      const withoutPepper = authenticator({ pepper: randomBytes(32).toString('base64') });
      await assert.rejects(withoutPepper.authenticate(key), failsWith('key_mismatch', record.id));
    });

    it('rejects a key with a bad checksum without any store lookup', async () => {
      const { key } = await create();
      const db = counting(store);
      const auth = authenticator({ db });
      const last = key.at(-1) === 'a' ? 'b' : 'a';
      await assert.rejects(auth.authenticate(`${key.slice(0, -1)}${last}`), failsWith('malformed_key'));
      await assert.rejects(auth.authenticate(key.slice(0, -1)), failsWith('malformed_key'));
      await assert.rejects(auth.authenticate('x'.repeat(1_000_000)), failsWith('malformed_key'));
      await assert.rejects(auth.authenticate(''), failsWith('malformed_key'));
      assert.equal(auth.keyId(`${key.slice(0, -1)}${last}`), undefined);
      assert.equal(auth.keyId(key), parseApiKey(key)!.id);
      assert.equal(db.calls, 0);
      assert.equal(auth.stats.storeLookups, 0);
    });

    it('stops accepting a revoked key on the next request, even with a warm cache, once invalidated', async () => {
      const { key, record } = await create();
      const auth = authenticator();
      await auth.authenticate(key);
      await keys.revoke(record.id);
      auth.invalidate(record.id);
      await assert.rejects(auth.authenticate(key), failsWith('key_revoked', record.id));
    });

    it('lets another instance serve a revoked key from its cache for at most cacheTtlMs', async () => {
      const { key, record } = await create();
      const other = authenticator();
      await other.authenticate(key);
      await keys.revoke(record.id);
      clock += TTL - 1;
      assert.equal((await other.authenticate(key)).id, record.id, 'still cached: the documented bound');
      clock += 1;
      await assert.rejects(other.authenticate(key), failsWith('key_revoked', record.id));
    });

    it('rotates: old and new keys both work during the overlap, then only the new one', async () => {
      const { key: oldKey, record: old } = await create({ scopes: ['a', 'b'], tenant: 't1' });
      const auth = authenticator();
      await auth.authenticate(oldKey);
      const { key: newKey, next, previous } = await keys.rotate(old.id, { overlapMs: 3_600_000 });
      auth.invalidate(old.id);
      assert.deepEqual([next.name, next.scopes, next.tenant], [old.name, old.scopes, old.tenant]);
      assert.equal(previous.replacedBy, next.id);
      assert.equal(previous.expiresAt, clock + 3_600_000);
      assert.equal((await auth.authenticate(oldKey)).id, old.id);
      assert.equal((await auth.authenticate(newKey)).id, next.id);
      clock += 3_600_000;
      await assert.rejects(auth.authenticate(oldKey), failsWith('key_expired', old.id));
      assert.equal((await auth.authenticate(newKey)).id, next.id);
      await assert.rejects(keys.rotate(old.id, { overlapMs: 0 }), (err: unknown) => {
        assert.ok(err instanceof ApiKeyError);
        assert.equal(err.code, 'keys.expired');
        assert.equal(err.message, `${old.id} has expired`);
        return true;
      });
    });

    it('never lengthens the old key’s life on rotation, and refuses to rotate a key twice', async () => {
      const { record: old } = await create({ expiresAt: clock + 60_000 });
      const { previous, next } = await keys.rotate(old.id, { overlapMs: 3_600_000 });
      assert.equal(previous.expiresAt, clock + 60_000);
      assert.equal(next.expiresAt, clock + 60_000, 'the successor gets the same lifetime, from now');
      await assert.rejects(keys.rotate(old.id, { overlapMs: 0 }), /already replaced by/);
    });

    it('stops an old key at once when rotated with no overlap', async () => {
      const { key, record } = await create();
      const auth = authenticator();
      await auth.authenticate(key);
      await keys.rotate(record.id, { overlapMs: 0 });
      auth.invalidate(record.id);
      await assert.rejects(auth.authenticate(key), failsWith('key_expired', record.id));
    });

    it('refuses to rotate a revoked key', async () => {
      const { record } = await create();
      await keys.revoke(record.id);
      await assert.rejects(keys.rotate(record.id, { overlapMs: 0 }), /is revoked/);
    });

    it('rejects an expired key at use time, even while it is cached', async () => {
      const { key, record } = await create({ expiresAt: clock + 10_000 });
      const auth = authenticator();
      await auth.authenticate(key);
      clock += 10_000;
      const lookups = auth.stats.storeLookups;
      await assert.rejects(auth.authenticate(key), failsWith('key_expired', record.id));
      assert.equal(auth.stats.storeLookups, lookups, 'answered from the cache');
    });

    it('looks an unknown id up once per cache ttl (negative caching)', async () => {
      const { key, id } = generateApiKey();
      const db = counting(store);
      const auth = authenticator({ db });
      await assert.rejects(auth.authenticate(key), failsWith('key_unknown', id));
      await assert.rejects(auth.authenticate(key), failsWith('key_unknown', id));
      await assert.rejects(auth.authenticate(key), failsWith('key_unknown', id));
      assert.equal(db.calls, 1);
      clock += TTL;
      await assert.rejects(auth.authenticate(key), failsWith('key_unknown', id));
      assert.equal(db.calls, 2);
    });

    it('looks a key up once for many simultaneous requests', async () => {
      const { key } = await create();
      const auth = authenticator();
      await Promise.all(Array.from({ length: 10 }, () => auth.authenticate(key)));
      assert.equal(auth.stats.storeLookups, 1);
    });

    it('never holds more than cacheSize entries, and made-up ids never push real keys out', async () => {
      const auth = authenticator({ cacheSize: 4 });
      const created = await Promise.all(Array.from({ length: 6 }, () => create()));
      for (const { key } of created) {
        await auth.authenticate(key);
        assert.ok(auth.stats.cachedKeys + auth.stats.cachedUnknown <= 4);
      }
      for (let i = 0; i < 20; i++) {
        const made = generateApiKey();
        await assert.rejects(auth.authenticate(made.key), failsWith('key_unknown', made.id));
        assert.ok(auth.stats.cachedKeys + auth.stats.cachedUnknown <= 4);
      }
      assert.equal(auth.stats.cachedKeys, 3, 'unknown ids displace at most a quarter of the cache');
      assert.equal(auth.stats.cachedUnknown, 1);
      // The most recently used real keys are still answered from the cache.
      const lookups = auth.stats.storeLookups;
      for (const { key } of created.slice(-3)) await auth.authenticate(key);
      assert.equal(auth.stats.storeLookups, lookups);
    });

    it('caches nothing when cacheSize is 0', async () => {
      const { key } = await create();
      const auth = authenticator({ cacheSize: 0 });
      await auth.authenticate(key);
      await auth.authenticate(key);
      assert.equal(auth.stats.storeLookups, 2);
      assert.equal(auth.stats.cachedKeys, 0);
    });

    it('records last use, at most once a minute per key', async () => {
      const { key, record } = await create();
      const auth = authenticator();
      const lastUsed = async () => {
        await auth.settle();
        return (await keys.get(record.id))!.lastUsedAt;
      };
      assert.equal(await lastUsed(), undefined);
      const first = clock;
      await auth.authenticate(key);
      assert.equal(await lastUsed(), first);
      clock += TOUCH_INTERVAL_MS - 1;
      await auth.authenticate(key);
      assert.equal(await lastUsed(), first, 'throttled');
      clock += 1;
      await auth.authenticate(key);
      assert.equal(await lastUsed(), clock);
      // Another instance within the minute does not write either.
      const second = clock;
      clock += 1000;
      await authenticator().authenticate(key);
      assert.equal(await lastUsed(), second);
    });

    it('lists keys without secrets or digests', async () => {
      const { key, record } = await create();
      const listed = await keys.list();
      const mine = listed.find((r) => r.id === record.id);
      assert.deepEqual(mine, record);
      const text = JSON.stringify(listed);
      assert.ok(!text.includes(parseApiKey(key)!.secret));
      assert.ok(!text.includes('digest'));
    });
  });
}

describe('the API key authenticator without a database', () => {
  it('answers "unavailable" when the store fails, and does not cache the failure', async () => {
    let fail = true;
    const db: Db = {
      dialect: 'sqlite',
      async query<T>() {
        if (fail) throw new Error('connection refused');
        return [] as T[];
      },
      execute: async () => ({ changes: 0 }),
      transaction: (fn) => fn(db),
    };
    const auth = createApiKeyAuthenticator({
      settings: { cacheSize: 10, cacheTtlMs: TTL },
      pepper: PEPPER,
      db,
      logger: { warn: () => {} },
    });
    const { key, id } = generateApiKey();
    await assert.rejects(auth.authenticate(key), (err: unknown) => {
      assert.ok(err instanceof AuthUnavailable);
      assert.equal(err.reason, 'key_store_unavailable');
      assert.equal(err.status, 503);
      return true;
    });
    fail = false;
    await assert.rejects(auth.authenticate(key), failsWith('key_unknown', id));
  });

  it('refuses a pepper shorter than 16 bytes', () => {
    const db = { dialect: 'sqlite' } as Db;
    assert.throws(
      () =>
        createApiKeyAuthenticator({
          settings: { cacheSize: 10, cacheTtlMs: TTL },
          pepper: 'short',
          db,
          logger: { warn: () => {} },
        }),
      /at least 16 bytes/,
    );
  });

  it('takes the configured pepper, else the one generated in the data folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-pepper-'));
    try {
      const settings = { header: 'x-api-key', queryParam: 'api_key', cacheSize: 1, cacheTtlMs: 1 };
      assert.equal(
        resolvePepper({ ...settings, pepper: 'from-config-0123456789' }, dir),
        'from-config-0123456789',
      );
      const generated = resolvePepper(undefined, dir);
      assert.ok(Buffer.from(generated, 'base64').length >= 32);
      assert.equal(resolvePepper({ ...settings, pepper: undefined }, dir), generated);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
