/**
 * Brute-force protection that only stops guessing, from outside, through a
 * real gateway: the attack is stopped and the legitimate owner still passes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { ClientRepository } from '../issuer/clients.js';
import { formatApiKey, parseApiKey } from '../keys/format.js';
import { createApiKeyStore } from '../keys/store.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { freePort, send } from '../test-support/http.js';

const SECRET = 'brute-force-test-hmac-secret-of-32-bytes-or-more';
process.env.PC_BRUTE_FORCE_SECRET = SECRET;
const ISSUER = 'https://idp.brute-force.test';

async function hsToken(claims: { sub: string; exp: number; iat?: number }, key = SECRET): Promise<string> {
  return new SignJWT({ scope: 'orders:read' })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(ISSUER)
    .setAudience('orders')
    .setSubject(claims.sub)
    .setIssuedAt(claims.iat ?? Math.floor(Date.now() / 1000) - 10)
    .setExpirationTime(claims.exp)
    .sign(new TextEncoder().encode(key));
}

const now = () => Math.floor(Date.now() / 1000);

describe('brute-force protection stops guessing, not users', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let key: string;
  let keyId: string;
  let port: number;

  before(async () => {
    upstream = await startUpstream();
    port = await freePort();
    gw = await startTestGateway({
      listen: { port, trusted_proxies: ['127.0.0.1'] },
      auth: {
        jwt: {
          providers: [
            {
              name: 'hs',
              issuer: ISSUER,
              audience: ['orders'],
              algorithms: ['HS256'],
              hmac_secret: '${env:PC_BRUTE_FORCE_SECRET}',
            },
          ],
        },
        api_keys: {},
        issuer: { issuer: `http://127.0.0.1:${port}`, audience: 'orders' },
        brute_force: {
          max_failures: 10,
          max_failures_per_ip: 20,
          max_failures_per_credential: 30,
          throttle_rate: 1,
        },
      },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' }],
    });
    const pepper = readFileSync(join(gw.dataDir, 'secrets', 'api-key-pepper'), 'utf8').trim();
    const keys = createApiKeyStore(gw.running.store, { pepper, logger: { warn() {} } });
    const created = await keys.create({ name: 'owner', scopes: ['orders:read'] });
    key = created.key;
    keyId = created.record.id;
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  const from = (ip: string, headers: Record<string, string>) => ({
    headers: { ...headers, 'x-forwarded-for': ip },
  });
  const forged = (n: number) => {
    const parsed = parseApiKey(key)!;
    return formatApiKey(parsed.id, `${parsed.secret.slice(0, -3)}${String(n).padStart(2, '0')}x`);
  };

  it('ten forged attempts against a key id, then the owner’s correct key gets 200', async () => {
    const ip = '198.51.100.10';
    for (let i = 0; i < 10; i++) {
      const r = await send(gw.url, '/orders', from(ip, { 'x-api-key': forged(i) }));
      assert.equal(r.status, 401, `forged attempt ${i}`);
    }
    // The forger is now locked out for this key id…
    const again = await send(gw.url, '/orders', from(ip, { 'x-api-key': forged(10) }));
    assert.equal(again.status, 429);
    assert.equal(again.json().code, 'auth.locked_out');
    assert.ok(Number(again.headers['retry-after']) >= 1);
    // …and the owner, even from the same address, is not.
    const owner = await send(gw.url, '/orders', from(ip, { 'x-api-key': key }));
    assert.equal(owner.status, 200);
    assert.equal((owner.json().headers as Record<string, string>)['x-portcullis-subject'], keyId);
    // From anywhere else too.
    assert.equal((await send(gw.url, '/orders', from('198.51.100.11', { 'x-api-key': key }))).status, 200);
  });

  it('ten expired tokens from an IP, then a valid token from the same IP gets 200', async () => {
    const ip = '198.51.100.20';
    for (let i = 0; i < 25; i++) {
      const expired = await hsToken({ sub: `user-${i}`, exp: now() - 3600, iat: now() - 7200 });
      const r = await send(gw.url, '/orders', from(ip, { authorization: `Bearer ${expired}` }));
      assert.equal(r.status, 401, `expired token ${i}`);
    }
    // More than max_failures_per_ip (20): none of them counted, so nothing is locked out.
    const valid = await hsToken({ sub: 'alice', exp: now() + 600 });
    assert.equal((await send(gw.url, '/orders', from(ip, { authorization: `Bearer ${valid}` }))).status, 200);
  });

  it('locks out an IP that sends forged tokens, but not the verified tokens sent from it', async () => {
    const ip = '198.51.100.30';
    const verified = await hsToken({ sub: 'bob', exp: now() + 600 });
    assert.equal(
      (await send(gw.url, '/orders', from(ip, { authorization: `Bearer ${verified}` }))).status,
      200,
    );
    for (let i = 0; i < 20; i++) {
      const bad = await hsToken({ sub: `victim-${i}`, exp: now() + 600 }, `${SECRET}-wrong`);
      assert.equal((await send(gw.url, '/orders', from(ip, { authorization: `Bearer ${bad}` }))).status, 401);
    }
    const fresh = await hsToken({ sub: 'carol', exp: now() + 600 });
    // A token not yet known to be good costs a verification: refused while the IP is locked out.
    assert.equal((await send(gw.url, '/orders', from(ip, { authorization: `Bearer ${fresh}` }))).status, 429);
    // A token verified before (cached) passes: someone else's failures do not refuse it.
    assert.equal(
      (await send(gw.url, '/orders', from(ip, { authorization: `Bearer ${verified}` }))).status,
      200,
    );
    // Another address is not affected.
    assert.equal(
      (await send(gw.url, '/orders', from('198.51.100.31', { authorization: `Bearer ${fresh}` }))).status,
      200,
    );
  });

  it('keys IPv6 clients by their /64: rotating addresses does not escape, the next /64 is not affected', async () => {
    for (let i = 0; i < 20; i++) {
      const bad = await hsToken({ sub: `x-${i}`, exp: now() + 600 }, `${SECRET}-wrong`);
      const r = await send(
        gw.url,
        '/orders',
        from(`2001:db8:aa:1::${(i + 1).toString(16)}`, { authorization: `Bearer ${bad}` }),
      );
      assert.equal(r.status, 401);
    }
    const fresh = await hsToken({ sub: 'dave', exp: now() + 600 });
    const same64 = await send(
      gw.url,
      '/orders',
      from('2001:db8:aa:1:ffff::1', { authorization: `Bearer ${fresh}` }),
    );
    assert.equal(same64.status, 429);
    const other64 = await send(
      gw.url,
      '/orders',
      from('2001:db8:aa:2::1', { authorization: `Bearer ${fresh}` }),
    );
    assert.equal(other64.status, 200);
  });

  it('throttles a key id attacked from many addresses, yet its owner’s correct key passes', async () => {
    // 30 failures (max_failures_per_credential) from 30 addresses: no pair is locked out.
    for (let i = 0; i < 30; i++) {
      const r = await send(gw.url, '/orders', from(`203.0.113.${i + 1}`, { 'x-api-key': forged(i) }));
      assert.ok(r.status === 401 || r.status === 429, `attempt ${i}: ${r.status}`);
    }
    // Unproven attempts from fresh addresses are now throttled (1 verification a second).
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      statuses.push(
        (await send(gw.url, '/orders', from(`203.0.113.${100 + i}`, { 'x-api-key': forged(50 + i) }))).status,
      );
    }
    assert.ok(statuses.includes(429), `throttled: ${statuses.join(',')}`);
    // The owner is never refused.
    for (let i = 0; i < 5; i++) {
      assert.equal(
        (await send(gw.url, '/orders', from(`203.0.113.${200 + i}`, { 'x-api-key': key }))).status,
        200,
      );
    }
  });

  it('ten wrong secrets at /oauth2/token lock out the guesser, not the client', async () => {
    const repo = new ClientRepository(gw.running.store);
    const { client, secret } = await repo.create({ name: 'batch', scopes: ['orders:read'] });
    const tokenRequest = (ip: string, s: string) =>
      send(gw.url, '/oauth2/token', {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${client.id}:${s}`).toString('base64')}`,
          'x-forwarded-for': ip,
        },
        body: 'grant_type=client_credentials',
      });
    // The owner got a token before the attack.
    assert.equal((await tokenRequest('198.51.100.50', secret)).status, 200);
    for (let i = 0; i < 10; i++) {
      assert.equal((await tokenRequest('198.51.100.60', `wrong-${i}`)).status, 401);
    }
    assert.equal((await tokenRequest('198.51.100.60', 'wrong-10')).status, 429);
    // The owner, from the attacker's address or its own, still gets tokens.
    assert.equal((await tokenRequest('198.51.100.60', secret)).status, 200);
    assert.equal((await tokenRequest('198.51.100.50', secret)).status, 200);
  });
});
