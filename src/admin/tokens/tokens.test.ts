import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { migrations } from '../../store/index.js';
import { type StoreFixture, storeBackends } from '../../test-support/stores.js';
import { runAdminCommand } from './cli.js';
import { ADMIN_TOKEN_LENGTH, generateAdminToken, isAdminTokenId, parseAdminToken } from './format.js';
import { AdminTokenError, createAdminTokenStore, roleAllows } from './store.js';

const PEPPER = 'a-pepper-of-at-least-sixteen-bytes';

describe('the admin token format', () => {
  it('has a pcla_ prefix, a public adt_ id and a checksum that catches a typo', () => {
    const { id, token } = generateAdminToken();
    assert.equal(token.length, ADMIN_TOKEN_LENGTH);
    assert.match(token, /^pcla_[0-9A-Za-z]{16}_[0-9A-Za-z]{49}$/);
    assert.ok(isAdminTokenId(id));
    assert.equal(parseAdminToken(token)?.id, id);
    const last = token.at(-1) === 'A' ? 'B' : 'A';
    assert.equal(parseAdminToken(token.slice(0, -1) + last), undefined);
    assert.equal(parseAdminToken(`${token}x`), undefined);
    assert.equal(parseAdminToken(`pcl_${token.slice(5)}`), undefined);
  });

  it('orders the roles viewer < operator < admin', () => {
    assert.ok(roleAllows('admin', 'operator') && roleAllows('operator', 'viewer'));
    assert.ok(!roleAllows('viewer', 'operator') && !roleAllows('operator', 'admin'));
  });
});

for (const backend of storeBackends(migrations, 'portcullis-admin-tokens-')) {
  describe(`admin tokens on ${backend.name}`, { skip: backend.skip }, () => {
    let fixture: StoreFixture;
    before(async () => {
      fixture = await backend.fresh();
    });
    after(async () => {
      await fixture?.cleanup();
    });

    it('verify the token made and refuse a wrong secret, an unknown id and a revoked token', async () => {
      const tokens = createAdminTokenStore(fixture.store, { pepper: PEPPER });
      const { record, token } = await tokens.create({ name: 'ops', role: 'operator', createdBy: 'cli' });
      const ok = await tokens.verify(token);
      assert.ok('record' in ok && ok.record.role === 'operator');

      const other = generateAdminToken().token;
      assert.deepEqual(await tokens.verify(other), { failure: 'unknown', id: parseAdminToken(other)!.id });
      const forged = `${token.slice(0, 22)}${other.slice(22)}`;
      const wrong = await tokens.verify(forged);
      assert.ok('failure' in wrong && ['mismatch', 'malformed'].includes(wrong.failure));
      assert.deepEqual(await tokens.verify('pcla_nonsense'), { failure: 'malformed', id: undefined });

      // Another instance on the same database, with the same pepper, accepts it too.
      const elsewhere = createAdminTokenStore(await fixture.openAnother(), { pepper: PEPPER });
      assert.ok('record' in (await elsewhere.verify(token)));
      // A different pepper (a copy of the database elsewhere) cannot use the digest.
      const stolen = createAdminTokenStore(fixture.store, { pepper: 'another-pepper-of-16-bytes!' });
      assert.equal(((await stolen.verify(token)) as { failure?: string }).failure, 'mismatch');

      assert.equal((await tokens.revoke(record.id)).alreadyRevoked, false);
      assert.equal((await tokens.revoke(record.id)).alreadyRevoked, true);
      assert.deepEqual(await tokens.verify(token), { failure: 'revoked', id: record.id });
    });

    it('store only a digest, never the token or its secret', async () => {
      const tokens = createAdminTokenStore(fixture.store, { pepper: PEPPER });
      const { token } = await tokens.create({ name: 'dump', role: 'viewer', createdBy: 'cli' });
      const rows = await fixture.store.query('select * from admin_tokens');
      const text = JSON.stringify(rows);
      assert.ok(!text.includes(parseAdminToken(token)!.secret));
      assert.ok((await tokens.list()).every((r) => !JSON.stringify(r).includes('digest')));
    });

    it('refuse a bad name or role', async () => {
      const tokens = createAdminTokenStore(fixture.store, { pepper: PEPPER });
      await assert.rejects(
        tokens.create({ name: 'a\nb', role: 'viewer', createdBy: 'cli' }),
        (e: unknown) => e instanceof AdminTokenError && e.code === 'admin_tokens.invalid_input',
      );
      await assert.rejects(
        tokens.create({ name: 'x', role: 'root' as 'admin', createdBy: 'cli' }),
        (e: unknown) => e instanceof AdminTokenError,
      );
      await assert.rejects(
        tokens.revoke('adt_AAAAAAAAAAAAAAAA'),
        (e: unknown) => e instanceof AdminTokenError && e.code === 'admin_tokens.not_found',
      );
    });
  });
}

describe('portcullis admin tokens', () => {
  let dir: string;
  const run = async (args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runAdminCommand(args, {
      out: (s) => out.push(s),
      err: (s) => err.push(s),
      env: { PORTCULLIS_DATA: dir, PORTCULLIS_CONFIG: '' },
    });
    return { code, out: out.join('\n'), err: err.join('\n') };
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-admin-cli-'));
    writeFileSync(join(dir, 'unused'), '');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('creates a token printed once, lists it without the secret, and revokes it', async () => {
    const created = await run(['tokens', 'create', '--role', 'operator', '--name', 'oncall']);
    assert.equal(created.code, 0, created.err);
    assert.match(created.out, /^pcla_\S+$/);
    assert.match(created.err, /cannot be shown again/);
    const id = parseAdminToken(created.out)!.id;

    const listed = await run(['tokens', 'list']);
    assert.match(listed.out, new RegExp(`${id}\\s+oncall\\s+operator`));
    assert.ok(!listed.out.includes(created.out));
    const json = await run(['tokens', 'list', '--json']);
    assert.deepEqual(
      (JSON.parse(json.out) as { id: string; status: string }[]).map((t) => [t.id, t.status]),
      [[id, 'active']],
    );

    const revoked = await run(['tokens', 'revoke', id]);
    assert.equal(revoked.code, 0, revoked.err);
    assert.match((await run(['tokens', 'list'])).out, /revoked/);
  });

  it('refuses an unknown role or command with the usage and exit code 2', async () => {
    const bad = await run(['tokens', 'create', '--role', 'root']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--role must be one of viewer, operator, admin/);
    assert.equal((await run(['keys'])).code, 2);
    assert.equal((await run(['tokens', 'revoke', 'adt_AAAAAAAAAAAAAAAA'])).code, 1);
  });
});
