import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { compactVerify, createLocalJWKSet, SignJWT } from 'jose';
import type { Db } from '../store/types.js';
import { IssuerError } from './errors.js';
import {
  decryptPrivateJwk,
  encryptPrivateJwk,
  KEY_PUBLISH_AHEAD_MS,
  KEY_RETIRE_MARGIN_MS,
  parseMasterKey,
  SigningKeyRing,
  type SigningKeyRingOptions,
} from './keys.js';
import { backends, captureLogger, type Fixture } from './test-support/fixtures.js';

const DAY = 86_400_000;
const TTL = 10 * 60_000;

function isIssuerError(code: string, message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof IssuerError, String(err));
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    return true;
  };
}

describe('the master key', () => {
  it('is 32 bytes of base64 or base64url', () => {
    const key = randomBytes(32);
    assert.deepEqual(parseMasterKey(key.toString('base64')), key);
    assert.deepEqual(parseMasterKey(`${key.toString('base64url')}\n`), key);
  });

  it('is refused with a clear message when short or not base64, never echoing the value', () => {
    for (const bad of [randomBytes(16).toString('base64'), 'not base64 at all!', '']) {
      assert.throws(
        () => parseMasterKey(bad),
        isIssuerError('issuer.invalid_master_key', /32 random bytes in base64/),
      );
      try {
        parseMasterKey(bad);
      } catch (err) {
        if (bad !== '') assert.ok(!(err as Error).message.includes(bad));
      }
    }
  });
});

describe('private key encryption', () => {
  const master = randomBytes(32);
  const jwk = { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'secret-d' };

  it('round-trips under the same master key and kid', () => {
    const blob = encryptPrivateJwk(master, 'kid-1', jwk);
    assert.match(blob, /^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    assert.ok(!blob.includes('secret-d'));
    assert.deepEqual(decryptPrivateJwk(master, 'kid-1', blob), jwk);
  });

  it('uses a fresh IV every time', () => {
    assert.notEqual(encryptPrivateJwk(master, 'k', jwk), encryptPrivateJwk(master, 'k', jwk));
  });

  it('fails authentication under another master key', () => {
    const blob = encryptPrivateJwk(master, 'kid-1', jwk);
    assert.throws(
      () => decryptPrivateJwk(randomBytes(32), 'kid-1', blob),
      isIssuerError('issuer.master_key_mismatch', /master key cannot decrypt signing key kid-1/),
    );
  });

  it('fails authentication when a ciphertext is moved to another kid (the kid is authenticated data)', () => {
    const blob = encryptPrivateJwk(master, 'kid-1', jwk);
    assert.throws(
      () => decryptPrivateJwk(master, 'kid-2', blob),
      isIssuerError('issuer.master_key_mismatch'),
    );
  });

  it('fails authentication when one bit of the ciphertext changes', () => {
    const [v, iv, ct, tag] = encryptPrivateJwk(master, 'kid-1', jwk).split('.');
    const bytes = Buffer.from(ct!, 'base64url');
    bytes[0]! ^= 1;
    const altered = [v, iv, bytes.toString('base64url'), tag].join('.');
    assert.throws(
      () => decryptPrivateJwk(master, 'kid-1', altered),
      isIssuerError('issuer.master_key_mismatch'),
    );
  });
});

for (const backend of backends) {
  describe(`the signing key ring on ${backend.name}`, { skip: backend.skip }, () => {
    let fixture: Fixture;
    let clock: number;
    let master: Buffer;
    const options = (db = fixture.store, masterKey = master): SigningKeyRingOptions => ({
      db,
      masterKey,
      keyRotationMs: DAY,
      tokenTtlMs: TTL,
      logger: captureLogger().logger,
      now: () => clock,
    });

    beforeEach(async () => {
      fixture = await backend.fresh();
      clock = Date.parse('2030-01-01T00:00:00Z');
      master = randomBytes(32);
    });
    afterEach(() => fixture.cleanup());

    it('creates one key on first start that signs at once and is published', async () => {
      const ring = await SigningKeyRing.open(options());
      const { kid } = ring.signingKey();
      assert.deepEqual(
        ring.keySet().keys.map((k) => [k.kid, k.alg, k.use, k.kty, k.crv]),
        [[kid, 'ES256', 'sig', 'EC', 'P-256']],
      );
      assert.equal(ring.keySet().keys[0]!.d, undefined);
    });

    it('keeps no plaintext private key material in the table', async () => {
      await SigningKeyRing.open(options());
      const rows = await fixture.store.query<Record<string, unknown>>('select * from signing_keys');
      const text = JSON.stringify(rows);
      assert.ok(!text.includes('"d"'), 'a "d" member is stored');
      const row = rows[0]!;
      const { d } = decryptPrivateJwk(master, String(row.kid), String(row.private_jwk_encrypted));
      assert.ok(typeof d === 'string' && d.length > 0);
      assert.ok(!text.includes(d), 'the private scalar is stored in plaintext');
    });

    it('signs with a key that verifies against its published key set', async () => {
      const ring = await SigningKeyRing.open(options());
      const { kid, key } = ring.signingKey();
      const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid }).sign(key);
      const verified = await compactVerify(jwt, createLocalJWKSet(ring.keySet()));
      assert.equal(verified.protectedHeader.kid, kid);
    });

    it('creates a single key when several instances start at once on an empty table', async () => {
      const stores = [fixture.store, ...(await Promise.all([1, 2, 3, 4].map(() => fixture.openAnother())))];
      const rings = await Promise.all(stores.map((db) => SigningKeyRing.open(options(db))));
      const [{ n }] = (await fixture.store.query<{ n: number }>(
        'select count(*) as n from signing_keys',
      )) as [{ n: number }];
      assert.equal(Number(n), 1);
      assert.equal(new Set(rings.map((r) => r.signingKey().kid)).size, 1);
    });

    it('creates a single replacement when several instances rotate at once', async () => {
      const stores = [fixture.store, ...(await Promise.all([1, 2, 3].map(() => fixture.openAnother())))];
      const rings = [];
      for (const db of stores) rings.push(await SigningKeyRing.open(options(db)));
      clock += DAY;
      await Promise.all(rings.map((r) => r.sync()));
      await Promise.all(rings.map((r) => r.sync()));
      const keys = await fixture.store.query<{ kid: string }>('select kid from signing_keys');
      assert.equal(keys.length, 2);
      for (const ring of rings) assert.equal(ring.keySet().keys.length, 2);
    });

    it('creates a single replacement when a peer rotates while this instance is between reading and inserting', async () => {
      const slowStore = await fixture.openAnother();
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      let holding = false;
      // The slow instance stops after reading the keys (the rotation is due) until the fast one has rotated.
      const query: Db['query'] = async (sql, params) => {
        const rows = await slowStore.query(sql, params);
        if (holding && sql.includes('where retired_at is null')) {
          holding = false;
          await gate;
        }
        return rows as never;
      };
      // Methods bound to the store itself: its private fields are not the proxy's.
      const slow = new Proxy(slowStore, {
        get(target, name) {
          if (name === 'query') return query;
          const value: unknown = Reflect.get(target, name, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const fast = await SigningKeyRing.open(options());
      const late = await SigningKeyRing.open(options(slow));
      clock += DAY;
      holding = true;
      const lateSync = late.sync();
      await fast.sync();
      release();
      await lateSync;
      const keys = await fixture.store.query<{ kid: string }>('select kid from signing_keys');
      assert.equal(keys.length, 2, 'one replacement, not one per instance');
      await fast.sync();
      assert.deepEqual(
        late.keySet().keys.map((k) => k.kid),
        fast.keySet().keys.map((k) => k.kid),
      );
    });

    it('publishes a new key before it signs, keeps the old one until its tokens expire, then destroys it', async () => {
      const ring = await SigningKeyRing.open(options());
      const first = ring.signingKey().kid;

      clock += DAY;
      await ring.sync();
      assert.equal(ring.keySet().keys.length, 2, 'the next key is published');
      assert.equal(ring.signingKey().kid, first, 'but does not sign yet');

      clock += KEY_PUBLISH_AHEAD_MS;
      const second = ring.signingKey().kid;
      assert.notEqual(second, first);

      clock += TTL + KEY_RETIRE_MARGIN_MS - 1;
      await ring.sync();
      assert.deepEqual(
        ring.keySet().keys.map((k) => k.kid),
        [first, second],
        'still published one ms before',
      );

      clock += 1;
      await ring.sync();
      assert.deepEqual(
        ring.keySet().keys.map((k) => k.kid),
        [second],
      );
      const [retired] = await fixture.store.query<{
        retired_at: string | null;
        private_jwk_encrypted: string | null;
      }>('select retired_at, private_jwk_encrypted from signing_keys where kid = $1', [first]);
      assert.ok(retired?.retired_at);
      assert.equal(retired.private_jwk_encrypted, null, 'the private half of a retired key is destroyed');
    });

    it('refuses to start under another master key, with a message that says so', async () => {
      await SigningKeyRing.open(options());
      await assert.rejects(
        SigningKeyRing.open(options(fixture.store, randomBytes(32))),
        isIssuerError('issuer.master_key_mismatch', /auth\.issuer\.master_key is not the key/),
      );
    });

    it('keeps signing when a peer adds a key it cannot decrypt, and logs it', async () => {
      const captured = captureLogger();
      const ring = await SigningKeyRing.open({ ...options(), logger: captured.logger });
      const first = ring.signingKey().kid;
      const peer = await SigningKeyRing.open(options(await fixture.openAnother(), randomBytes(32))).catch(
        (err: unknown) => err,
      );
      assert.ok(peer instanceof IssuerError, 'the misconfigured peer does not start');
      clock += 60_000;
      // A key that a peer with another master key did manage to add (here by hand):
      const foreign = encryptPrivateJwk(randomBytes(32), 'foreign', { kty: 'EC' });
      await fixture.store.execute(
        `insert into signing_keys (kid, generation, alg, public_jwk, private_jwk_encrypted, created_at, activates_at)
         values ('foreign', 99, 'ES256', '{"kty":"EC","kid":"foreign"}', $1, $2, $2)`,
        [foreign, new Date(clock).toISOString()],
      );
      await ring.sync();
      assert.equal(ring.signingKey().kid, first);
      assert.match(captured.text(), /cannot be decrypted/);
      assert.deepEqual(
        ring.keySet().keys.map((k) => k.kid),
        [first, 'foreign'],
        'both stay published, so tokens of either verify',
      );
    });
  });
}
