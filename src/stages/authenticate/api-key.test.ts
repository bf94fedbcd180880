import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatApiKey, parseApiKey } from '../../keys/format.js';
import { createApiKeyStore } from '../../keys/store.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';

describe('API keys at the gateway', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let key: string;
  let keyId: string;

  before(async () => {
    upstream = await startUpstream();
    gw = await startTestGateway({
      listen: { trusted_proxies: ['127.0.0.1'] },
      auth: { api_keys: { cache_ttl: '200ms' }, brute_force: { max_failures: 3 } },
      upstreams: { app: { url: upstream.url } },
      routes: [
        { path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' },
        {
          path: '/legacy',
          methods: ['GET'],
          upstream: 'app',
          auth: ['api_key'],
          api_key_in_query: true,
          authorize: 'any-authenticated',
        },
      ],
    });
    // The same pepper the gateway generated in its data folder.
    const pepper = readFileSync(join(gw.dataDir, 'secrets', 'api-key-pepper'), 'utf8').trim();
    const keys = createApiKeyStore(gw.running.store, { pepper, logger: { warn() {} } });
    const created = await keys.create({ name: 'ci', scopes: ['orders:read'], tenant: 'acme' });
    key = created.key;
    keyId = created.record.id;
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  const withKey = (value: string, ip = '198.51.100.20') => ({
    headers: { 'x-api-key': value, 'x-forwarded-for': ip },
  });

  it('accepts a valid key and passes the principal, never the key, to the upstream', async () => {
    const reply = await send(gw.url, '/orders', withKey(key));
    assert.equal(reply.status, 200);
    const headers = reply.json().headers as Record<string, string>;
    assert.equal(headers['x-portcullis-subject'], keyId);
    assert.equal(headers['x-portcullis-auth'], 'api_key');
    assert.equal(headers['x-portcullis-scopes'], 'orders:read');
    assert.equal(headers['x-portcullis-tenant'], 'acme');
    assert.equal(headers['x-api-key'], undefined);
  });

  it('rejects a key with one character changed', async () => {
    const typo = key.slice(0, 30) + (key[30] === 'a' ? 'b' : 'a') + key.slice(31);
    const reply = await send(gw.url, '/orders', withKey(typo, '198.51.100.21'));
    assert.equal(reply.status, 401);
    assert.equal(reply.json().code, 'auth.invalid_credentials');
  });

  it('reads a key from the query only on a route that opts in, and never forwards it', async () => {
    const q = `/orders?api_key=${encodeURIComponent(key)}`;
    assert.equal((await send(gw.url, q, { headers: { 'x-forwarded-for': '198.51.100.22' } })).status, 401);
    const reply = await send(gw.url, `/legacy?a=1&api_key=${encodeURIComponent(key)}&b=2`, {
      headers: { 'x-forwarded-for': '198.51.100.22' },
    });
    assert.equal(reply.status, 200);
    assert.equal(reply.json().url, '/legacy?a=1&b=2');
  });

  it('never writes the key to the access log', async () => {
    assert.doesNotMatch(JSON.stringify(gw.logs), new RegExp(key.slice(4, 40)));
  });

  it('locks out the guesser of a key id, never the key’s owner', async () => {
    // Well-formed keys (valid checksum) with the right id and wrong secrets.
    const parsed = parseApiKey(key)!;
    const wrong = (n: number) => formatApiKey(parsed.id, `${parsed.secret.slice(0, -2)}${n}x`);
    for (let i = 0; i < 3; i++) {
      assert.equal((await send(gw.url, '/orders', withKey(wrong(i), '203.0.113.30'))).status, 401);
    }
    assert.equal((await send(gw.url, '/orders', withKey(wrong(4), '203.0.113.30'))).status, 429);
    assert.equal((await send(gw.url, '/orders', withKey(key, '203.0.113.30'))).status, 200);
    assert.equal((await send(gw.url, '/orders', withKey(key, '203.0.113.99'))).status, 200);
  });

  it('stops a revoked key on every instance within the cache ttl', async () => {
    const pepper = readFileSync(join(gw.dataDir, 'secrets', 'api-key-pepper'), 'utf8').trim();
    const keys = createApiKeyStore(gw.running.store, { pepper, logger: { warn() {} } });
    const { key: other, record } = await keys.create({ name: 'short-lived', scopes: [] });
    assert.equal((await send(gw.url, '/orders', withKey(other, '198.51.100.40'))).status, 200);
    await keys.revoke(record.id);
    await new Promise((r) => setTimeout(r, 250));
    assert.equal((await send(gw.url, '/orders', withKey(other, '198.51.100.40'))).status, 401);
  });
});
