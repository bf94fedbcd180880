import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CLIENT_ID_PATTERN, ClientRepository, hashClientSecret, verifyClientSecret } from './clients.js';
import { IssuerError } from './errors.js';
import { backends, type Fixture } from './test-support/fixtures.js';

for (const backend of backends) {
  describe(`the client repository on ${backend.name}`, { skip: backend.skip }, () => {
    let fixture: Fixture;
    let clients: ClientRepository;

    beforeEach(async () => {
      fixture = await backend.fresh();
      clients = new ClientRepository(fixture.store);
    });
    afterEach(() => fixture.cleanup());

    it('creates a client with a cli_ id and a 256-bit secret that verifies', async () => {
      const { client, secret } = await clients.create({
        name: 'billing',
        scopes: ['orders:read', 'orders:write'],
      });
      assert.match(client.id, CLIENT_ID_PATTERN);
      assert.ok(Buffer.from(secret, 'base64url').length >= 32);
      assert.deepEqual(client.scopes, ['orders:read', 'orders:write']);
      const result = await clients.verify(client.id, secret);
      assert.equal(result.ok, true);
      assert.deepEqual(result.ok && result.client, client);
    });

    it('stores only a salted scrypt hash of the secret, never the secret', async () => {
      const { secret } = await clients.create({ name: 'billing', scopes: ['a'] });
      const rows = await fixture.store.query<Record<string, unknown>>('select * from oauth_clients');
      assert.equal(rows.length, 1);
      assert.ok(!JSON.stringify(rows).includes(secret));
      assert.match(
        String(rows[0]!.secret_hash),
        /^\$scrypt\$N=16384,r=8,p=1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/,
      );
    });

    it('lists clients without their secrets or hashes', async () => {
      await clients.create({ name: 'one', scopes: ['a'] });
      await clients.create({ name: 'two', scopes: ['b'], tenant: 'acme' });
      const all = await clients.list();
      assert.deepEqual(
        all.map((c) => [c.name, c.tenant]),
        [
          ['one', undefined],
          ['two', 'acme'],
        ],
      );
      for (const c of all) {
        assert.deepEqual(Object.keys(c).sort(), ['createdAt', 'id', 'name', 'revokedAt', 'scopes', 'tenant']);
      }
    });

    it('rejects a wrong secret, an unknown id and a revoked client, each with its reason', async () => {
      const { client, secret } = await clients.create({ name: 'billing', scopes: ['a'] });
      assert.deepEqual(await clients.verify(client.id, `${secret}x`), { ok: false, reason: 'wrong_secret' });
      assert.deepEqual(await clients.verify('cli_AAAAAAAAAAAAAAAAAAAAAA', secret), {
        ok: false,
        reason: 'unknown_client',
      });
      assert.deepEqual(await clients.verify("cli_' or 1=1 --", secret), {
        ok: false,
        reason: 'unknown_client',
      });
      assert.equal(await clients.revoke(client.id), 'revoked');
      assert.deepEqual(await clients.verify(client.id, secret), { ok: false, reason: 'client_revoked' });
    });

    it('tells a revocation from a repeated one and from an unknown id', async () => {
      const { client } = await clients.create({ name: 'billing', scopes: ['a'] });
      assert.equal(await clients.revoke(client.id), 'revoked');
      assert.equal(await clients.revoke(client.id), 'already_revoked');
      assert.equal(await clients.revoke('cli_nope'), 'not_found');
      assert.ok((await clients.get(client.id))?.revokedAt);
    });

    it('refuses names, scopes and tenants that would corrupt tokens or headers', async () => {
      const bad = [
        { name: '', scopes: ['a'] },
        { name: 'line\nbreak', scopes: ['a'] },
        { name: 'x', scopes: [] },
        { name: 'x', scopes: ['has space'] },
        { name: 'x', scopes: ['quote"d'] },
        { name: 'x', scopes: ['back\\slash'] },
        { name: 'x', scopes: ['a'], tenant: 'with space' },
        { name: 'x', scopes: ['a'], tenant: 'header\r\ninjection' },
      ];
      for (const input of bad) {
        await assert.rejects(clients.create(input), (err) => {
          assert.ok(err instanceof IssuerError);
          assert.equal(err.code, 'issuer.invalid_client_input');
          return true;
        });
      }
      assert.deepEqual(await clients.list(), []);
    });
  });
}

describe('client secret hashing', () => {
  it('salts every hash, so one secret hashes differently twice', async () => {
    const a = await hashClientSecret('same secret');
    const b = await hashClientSecret('same secret');
    assert.notEqual(a, b);
    assert.equal(await verifyClientSecret(a, 'same secret'), true);
    assert.equal(await verifyClientSecret(b, 'same secret'), true);
    assert.equal(await verifyClientSecret(a, 'Same secret'), false);
  });

  it('refuses a tampered hash whose parameters would cost gigabytes, spending only the usual scrypt', async () => {
    const hash = await hashClientSecret('s');
    const huge = hash.replace('N=16384', 'N=1073741824');
    assert.equal(await verifyClientSecret(huge, 's'), false);
    assert.equal(await verifyClientSecret('plain text', 's'), false);
  });

  it('spends a scrypt on an unknown client id, so timing does not reveal which ids exist', async () => {
    const fixture = await backends[0]!.fresh();
    try {
      const clients = new ClientRepository(fixture.store);
      const { client } = await clients.create({ name: 'timing', scopes: ['a'] });
      const time = async (id: string) => {
        const start = performance.now();
        await clients.verify(id, 'wrong');
        return performance.now() - start;
      };
      const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
      const known: number[] = [];
      const unknown: number[] = [];
      for (let i = 0; i < 5; i++) {
        known.push(await time(client.id));
        unknown.push(await time('cli_AAAAAAAAAAAAAAAAAAAAAA'));
        unknown.push(await time('not-even-an-id'));
      }
      // A lookup alone takes well under a millisecond; a scrypt takes tens.
      assert.ok(
        median(unknown) > median(known) * 0.5,
        `unknown ${median(unknown).toFixed(1)} ms vs known ${median(known).toFixed(1)} ms`,
      );
    } finally {
      await fixture.cleanup();
    }
  });
});
