/**
 * A flood of distinct clients through a real gateway (issue 18, item 7):
 * made-up API keys cost one store lookup each only until the brute-force
 * guard trips, a repeated one costs one per cache ttl, and after a few
 * thousand distinct X-Forwarded-For addresses (more than the rate
 * limiter's `max_keys`) the gateway still locks out and rate-limits a
 * repeat offender. The 200k-client version, on the tables directly, is
 * src/util/client-tables.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ApiKeyAuthenticator } from '../keys/authenticator.js';
import { generateApiKey } from '../keys/format.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { send } from '../test-support/http.js';

const PER_IP = 20;
const FLOOD = 3000;
const MAX_KEYS = 500;

describe('a flood of distinct clients', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startUpstream();
    gw = await startTestGateway({
      listen: { trusted_proxies: ['127.0.0.1'] },
      auth: { api_keys: {}, brute_force: { max_failures_per_ip: PER_IP } },
      rate_limit: { max_keys: MAX_KEYS, limits: { per_ip: { key: ['ip'], rate: '5/h' } } },
      upstreams: { app: { url: upstream.url } },
      routes: [
        { path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' },
        {
          name: 'open',
          path: '/open',
          methods: ['GET'],
          upstream: 'app',
          auth: 'none',
          rate_limits: ['per_ip'],
        },
      ],
    });
  });
  after(async () => {
    await gw?.close();
    await upstream?.close();
  });

  const lookups = () => (gw.running.authServices().apiKeys as ApiKeyAuthenticator).stats.storeLookups;
  const from = (ip: string, headers: Record<string, string> = {}) => ({
    headers: { ...headers, 'x-forwarded-for': ip },
  });

  it('stops looking up made-up keys from an IP once the brute-force guard has locked it out', async () => {
    const ip = '198.51.100.7';
    const start = lookups();
    const statuses: number[] = [];
    for (let i = 0; i < 3 * PER_IP; i++) {
      const r = await send(gw.url, '/orders', from(ip, { 'x-api-key': generateApiKey().key }));
      statuses.push(r.status);
    }
    assert.deepEqual(statuses.slice(0, PER_IP), Array(PER_IP).fill(401));
    assert.deepEqual(statuses.slice(PER_IP), Array(2 * PER_IP).fill(429));
    assert.equal(lookups() - start, PER_IP, 'one lookup per made-up key until the lockout, none after');
  });

  it('looks a repeated made-up key up once (negative cache)', async () => {
    const made = generateApiKey().key;
    const start = lookups();
    for (let i = 0; i < 5; i++) {
      assert.equal(
        (await send(gw.url, '/orders', from(`203.0.113.${i}`, { 'x-api-key': made }))).status,
        401,
      );
    }
    assert.equal(lookups() - start, 1);
  });

  it(`still locks out and rate-limits a repeat offender after ${FLOOD} distinct X-Forwarded-For clients`, async () => {
    const guesser = '198.51.100.8';
    for (let i = 0; i < PER_IP; i++)
      await send(gw.url, '/orders', from(guesser, { 'x-api-key': generateApiKey().key }));
    const spender = '198.51.100.9';
    const spent = [];
    for (let i = 0; i < 6; i++) spent.push((await send(gw.url, '/open', from(spender))).status);
    assert.deepEqual(spent, [200, 200, 200, 200, 200, 429]);

    // Each flood client: one made-up key and one rate-limited request, from its own address.
    const client = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
    let next = 0;
    const worker = async () => {
      while (next < FLOOD) {
        const ip = client(next++);
        assert.equal(
          (await send(gw.url, '/orders', from(ip, { 'x-api-key': generateApiKey().key }))).status,
          401,
        );
        assert.equal((await send(gw.url, '/open', from(ip))).status, 200);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));

    // The brute-force tables (100k entries) still hold the guesser: locked out, no lookup.
    const start = lookups();
    const guess = await send(gw.url, '/orders', from(guesser, { 'x-api-key': generateApiKey().key }));
    assert.equal(guess.status, 429);
    assert.equal(guess.json().code, 'auth.locked_out');
    assert.equal(lookups(), start);
    // The rate limiter (max_keys 500) has forgotten the spender, which only
    // gives it a full bucket again: spending it still ends in 429.
    const again = [];
    for (let i = 0; i < 6; i++) again.push((await send(gw.url, '/open', from(spender))).status);
    assert.deepEqual(again, [200, 200, 200, 200, 200, 429]);
  });
});
