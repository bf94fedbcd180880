/**
 * Every request passes the same admission, including those no route takes:
 * unrouted requests, CORS preflights and the gateway's own issuer
 * endpoints get blocks, the global network rules, the `all_routes` rate
 * limits and (the issuer) a per-IP limit of their own. Through a real
 * gateway, with the client address chosen by X-Forwarded-For from a trusted
 * proxy; each refusal next to the same request from a client that passes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createBlockStore } from '../alerts/store.js';
import { ClientRepository } from '../issuer/clients.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { freePort, send } from '../test-support/http.js';

const DENIED = '203.0.113.7';

describe('the gate in front of requests no route takes', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let basic: string;
  /** A new client's Basic credentials: tests that spend tokens use their own client. */
  let newClient: () => Promise<string>;

  before(async () => {
    upstream = await startUpstream();
    const port = await freePort();
    gw = await startTestGateway({
      listen: { port, trusted_proxies: ['127.0.0.1'] },
      auth: { issuer: { issuer: `http://127.0.0.1:${port}`, audience: 'orders-api', rate_limit: '3/m' } },
      authorization: { network: { deny: [`${DENIED}/32`] } },
      rate_limit: { limits: { per_ip: { key: ['ip'], rate: '5/m', all_routes: true } } },
      blocks: { refresh: '100ms' },
      upstreams: { app: { url: upstream.url } },
      routes: [
        {
          path: '/orders',
          methods: ['GET'],
          upstream: 'app',
          auth: 'none',
          cors: { origins: ['https://app.example'] },
        },
      ],
    });
    newClient = async () => {
      const created = await new ClientRepository(gw.running.store).create({
        name: 'batch',
        scopes: ['orders:read'],
      });
      return Buffer.from(`${created.client.id}:${created.secret}`).toString('base64');
    };
    basic = await newClient();
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  const from = (ip: string, headers: Record<string, string> = {}) => ({ 'x-forwarded-for': ip, ...headers });
  const token = (ip: string, credentials = basic) =>
    send(gw.url, '/oauth2/token', {
      method: 'POST',
      headers: from(ip, {
        authorization: `Basic ${credentials}`,
        'content-type': 'application/x-www-form-urlencoded',
      }),
      body: 'grant_type=client_credentials&scope=orders:read',
    });

  it('refuses a denied network at the token endpoint, and issues a token to any other', async () => {
    const denied = await token(DENIED);
    assert.equal(denied.status, 403, denied.body);
    assert.equal(denied.json().code, 'authz.forbidden');
    const ok = await token('198.51.100.1');
    assert.equal(ok.status, 200, ok.body);
    assert.ok(typeof ok.json().access_token === 'string');
  });

  it('refuses a blocked IP at the token endpoint and on unrouted requests, and nobody else', async () => {
    const blocked = '198.51.100.66';
    await createBlockStore(gw.running.store).add({
      kind: 'ip',
      subject: blocked,
      status: 403,
      durationMs: 600_000,
      reason: 'test',
      createdBy: 'test',
    });
    const own = await newClient();
    let reply = await token(blocked, own);
    for (let i = 0; i < 50 && reply.status === 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
      reply = await token(blocked, own);
    }
    assert.equal(reply.status, 403, reply.body);
    assert.equal(reply.json().code, 'client.blocked');
    assert.equal((await send(gw.url, '/nowhere', { headers: from(blocked) })).status, 403);
    assert.equal((await token('198.51.100.67', await newClient())).status, 200);
  });

  it('refuses a denied network on unrouted requests and preflights, answering others as before', async () => {
    assert.equal((await send(gw.url, '/nowhere', { headers: from(DENIED) })).status, 403);
    assert.equal((await send(gw.url, '/nowhere', { headers: from('198.51.100.2') })).status, 404);
    const preflight = (ip: string) =>
      send(gw.url, '/orders', {
        method: 'OPTIONS',
        headers: from(ip, { origin: 'https://app.example', 'access-control-request-method': 'GET' }),
      });
    assert.equal((await preflight(DENIED)).status, 403);
    const allowed = await preflight('198.51.100.2');
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example');
  });

  it('limits a burst of token requests per client IP, without slowing another client', async () => {
    const burst = '198.51.100.9';
    const statuses: number[] = [];
    // The issuer's own limit: 3/m with bursts of 6; the all_routes limit (5/m) counts too.
    for (let i = 0; i < 8; i++) statuses.push((await token(burst, await newClient())).status);
    assert.ok(
      statuses.slice(0, 5).every((s) => s === 200),
      statuses.join(' '),
    );
    assert.equal(statuses.at(-1), 429, statuses.join(' '));
    assert.equal((await token('198.51.100.10')).status, 200);
  });

  it('limits the tokens one client gets from any IP, which others cannot use up with wrong secrets', async () => {
    const target = await newClient();
    const id = Buffer.from(target, 'base64').toString().split(':')[0];
    const forged = Buffer.from(`${id}:not-the-secret`).toString('base64');
    for (let i = 0; i < 3; i++) assert.equal((await token(`198.51.100.${30 + i}`, forged)).status, 401);
    const statuses: number[] = [];
    // 3/m with bursts of 6, per client id, each request from another IP.
    for (let i = 0; i < 7; i++) statuses.push((await token(`198.51.100.${40 + i}`, target)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 429]);
    const refused = await token('198.51.100.50', target);
    assert.equal(refused.status, 429);
    assert.equal(refused.json().error, 'temporarily_unavailable');
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    assert.equal((await token('198.51.100.50', await newClient())).status, 200);
  });

  it('counts unrouted requests against the all_routes limits, so a flood of 404s is limited', async () => {
    const scanner = '198.51.100.20';
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++)
      statuses.push((await send(gw.url, `/probe-${i}`, { headers: from(scanner) })).status);
    assert.deepEqual(statuses.slice(0, 5), [404, 404, 404, 404, 404]);
    assert.equal(statuses.at(-1), 429);
    assert.equal((await send(gw.url, '/orders', { headers: from('198.51.100.21') })).status, 200);
  });
});
