import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { openStore } from '../store/index.js';
import { runClientsCommand } from './cli.js';
import { ClientRepository } from './clients.js';

interface Run {
  code: number;
  out: string;
  err: string;
}

describe('portcullis clients', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-clients-cli-'));
    env = { PORTCULLIS_DATA: join(dir, 'data') };
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function run(...argv: string[]): Promise<Run> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runClientsCommand(argv, { out: (s) => out.push(s), err: (s) => err.push(s), env });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  /** Verifies credentials against the data folder's store, as the gateway would. */
  async function verify(id: string, secret: string, url?: string) {
    const store = await openStore({ dataDir: join(dir, 'data'), ...(url ? { url } : {}) });
    try {
      return await new ClientRepository(store).verify(id, secret);
    } finally {
      await store.close();
    }
  }

  it('creates a client in the data folder and shows its secret once, with a line to store it now', async () => {
    const created = await run('create', '--name', 'billing', '--scopes', 'orders:read, orders:write');
    assert.equal(created.code, 0, created.err);
    const id = /client_id:\s+(cli_\S+)/.exec(created.out)?.[1];
    const secret = /client_secret:\s+(\S+)/.exec(created.out)?.[1];
    assert.ok(id && secret, created.out);
    assert.match(created.out, /Store the client secret now: it is shown only this once/);
    assert.match(created.out, /scopes: orders:read orders:write/);
    assert.equal((await verify(id, secret)).ok, true);

    const listed = await run('list');
    assert.equal(listed.code, 0);
    assert.match(
      listed.out,
      new RegExp(`${id}\\s+billing\\s+orders:read orders:write\\s+-\\s+\\S+\\s+active`),
    );
    assert.ok(!listed.out.includes(secret));
  });

  it('accepts a leading "clients" as main passes it', async () => {
    const created = await run('clients', 'create', '--name', 'x', '--scopes', 'a');
    assert.equal(created.code, 0, created.err);
  });

  it('prints machine-readable JSON for create and list, the secret only in create', async () => {
    const created = await run('create', '--name', 'jobs', '--scopes', 'a,b', '--tenant', 'acme', '--json');
    assert.equal(created.code, 0, created.err);
    const made = JSON.parse(created.out) as { client_id: string; client_secret: string; tenant: string };
    assert.equal(made.tenant, 'acme');
    const listed = await run('list', '--json');
    const all = JSON.parse(listed.out) as Record<string, unknown>[];
    assert.deepEqual(all, [
      {
        client_id: made.client_id,
        name: 'jobs',
        scopes: ['a', 'b'],
        tenant: 'acme',
        created_at: all[0]!.created_at,
        revoked_at: null,
      },
    ]);
    assert.ok(!listed.out.includes(made.client_secret));
  });

  it('revokes a client, which then fails to authenticate', async () => {
    const made = JSON.parse((await run('create', '--name', 'x', '--scopes', 'a', '--json')).out) as {
      client_id: string;
      client_secret: string;
    };
    const revoked = await run('revoke', made.client_id);
    assert.equal(revoked.code, 0, revoked.err);
    assert.match(revoked.out, /Revoked client .*tokens already issued to it are refused/);
    assert.deepEqual(await verify(made.client_id, made.client_secret), {
      ok: false,
      reason: 'client_revoked',
    });
    assert.match((await run('list')).out, /revoked \d{4}-/);
    assert.equal((await run('revoke', made.client_id)).code, 0);
  });

  it('fails with exit code 1 when revoking an unknown client', async () => {
    const result = await run('revoke', 'cli_AAAAAAAAAAAAAAAAAAAAAA');
    assert.equal(result.code, 1);
    assert.match(result.err, /no client with id/);
  });

  it('says how to create a client when there is none', async () => {
    assert.match((await run('list')).out, /No clients/);
  });

  it('exits 2 with the usage on a usage mistake, before touching the store', async () => {
    const mistakes = [
      [],
      ['frobnicate'],
      ['create', '--scopes', 'a'],
      ['create', '--name', 'x'],
      ['create', '--name', 'x', '--scopes', 'a', 'extra'],
      ['create', '--name', 'x', '--scopes', 'has space'],
      ['create', '--name', 'x', '--scopes', ','],
      ['list', '--name', 'x'],
      ['revoke'],
      ['revoke', 'a', 'b'],
      ['list', '--unknown'],
    ];
    for (const argv of mistakes) {
      const result = await run(...argv);
      assert.equal(result.code, 2, `${argv.join(' ')}: ${result.err}`);
      assert.ok(result.err !== '', argv.join(' '));
    }
  });

  it('uses the store and issuer URL of --config', async () => {
    const db = join(dir, 'elsewhere.db');
    const config = join(dir, 'portcullis.yaml');
    await writeFile(
      config,
      `upstreams:
  app:
    url: http://127.0.0.1:3000
routes:
  - path: /items
    methods: [GET]
    upstream: app
    auth: none
store:
  url: sqlite:${db}
auth:
  issuer:
    issuer: https://gateway.example.com
`,
    );
    const created = await run('create', '--name', 'x', '--scopes', 'a', '--config', config);
    assert.equal(created.code, 0, created.err);
    assert.match(created.out, /Token endpoint: https:\/\/gateway\.example\.com\/oauth2\/token/);
    const id = /client_id:\s+(cli_\S+)/.exec(created.out)![1]!;
    const secret = /client_secret:\s+(\S+)/.exec(created.out)![1]!;
    assert.equal((await verify(id, secret, `sqlite:${db}`)).ok, true);
    assert.match((await run('list')).out, /No clients/, 'the default data folder was not used');
    assert.match((await run('revoke', id, '--config', config)).out, /refused by running gateways/);
  });

  it('reads the config from $PORTCULLIS_CONFIG when --config is not given, like the other commands', async () => {
    const db = join(dir, 'from-env.db');
    const config = join(dir, 'from-env.yaml');
    await writeFile(
      config,
      `upstreams:\n  app:\n    url: http://127.0.0.1:3000\nroutes:\n  - path: /items\n    methods: [GET]\n    upstream: app\n    auth: none\nstore:\n  url: sqlite:${db}\nauth:\n  issuer:\n    issuer: https://env.example.com\n`,
    );
    env = { ...env, PORTCULLIS_CONFIG: config };
    const created = await run('create', '--name', 'y', '--scopes', 'a');
    assert.equal(created.code, 0, created.err);
    assert.match(created.out, /Token endpoint: https:\/\/env\.example\.com\/oauth2\/token/);
  });

  it('exits 2 and lists the problems of an invalid --config', async () => {
    const config = join(dir, 'bad.yaml');
    await writeFile(config, 'upstreams: {}\nroutes: nope\n');
    const result = await run('list', '--config', config);
    assert.equal(result.code, 2);
    assert.match(result.err, /error\(s\) in the config/);
  });

  it('exits 1 when the store cannot be opened', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, '');
    env = { PORTCULLIS_DATA: join(file, 'data') };
    const result = await run('list');
    assert.equal(result.code, 1);
    assert.match(result.err, /^portcullis clients: /);
  });
});
