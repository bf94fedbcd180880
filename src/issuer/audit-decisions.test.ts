/**
 * Every answer the gateway writes itself carries an audit decision that
 * matches its status: 2xx/3xx allow, 4xx deny, 5xx error. In particular a
 * failed client authentication at the token endpoint is `deny
 * auth.invalid_client`, not `allow ok`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RequestEvent, SecurityEvent } from '../events/types.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { freePort, send } from '../test-support/http.js';
import { ClientRepository } from './clients.js';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

describe('audit decisions of the answers the gateway writes itself', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let client: { id: string; secret: string };
  const events: RequestEvent[] = [];

  before(async () => {
    upstream = await startUpstream();
    const port = await freePort();
    gw = await startTestGateway({
      listen: { port, trusted_proxies: ['127.0.0.1'] },
      auth: {
        issuer: { issuer: `http://127.0.0.1:${port}`, audience: 'orders' },
        api_keys: {},
        brute_force: { max_failures: 2 },
      },
      upstreams: { app: { url: upstream.url } },
      routes: [
        {
          path: '/orders',
          methods: ['GET', 'POST'],
          upstream: 'app',
          authorize: { scopes: ['orders:read'] },
          body_limit: '1kb',
          cors: { origins: ['https://app.example'] },
        },
      ],
    });
    gw.running.events.subscribe({
      emit(e: SecurityEvent) {
        if (e.type === 'request') events.push(e);
      },
    });
    const created = await new ClientRepository(gw.running.store).create({
      name: 'batch',
      scopes: ['orders:read'],
    });
    client = { id: created.client.id, secret: created.secret };
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  /** Sends, then waits for the request's event (emitted when the response closes). */
  async function answer(
    path: string,
    options: Parameters<typeof send>[2] = {},
  ): Promise<{ status: number; event: RequestEvent }> {
    const reply = await send(gw.url, path, options);
    const id = reply.headers['x-request-id'];
    for (let i = 0; i < 100; i++) {
      const event = events.find((e) => e.requestId === id);
      if (event !== undefined) return { status: reply.status, event };
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`no event for ${path} (${reply.status})`);
  }

  const expected = (status: number) => (status >= 500 ? 'error' : status >= 400 ? 'deny' : 'allow');

  it('audits a failed client authentication at /oauth2/token as deny auth.invalid_client', async () => {
    const { status, event } = await answer('/oauth2/token', {
      method: 'POST',
      headers: { ...FORM, authorization: basic(client.id, 'wrong'), 'x-forwarded-for': '198.51.100.1' },
      body: 'grant_type=client_credentials',
    });
    assert.equal(status, 401);
    assert.equal(event.status, 401);
    assert.equal(event.decision, 'deny');
    assert.equal(event.reason, 'auth.invalid_client');
    assert.match(event.detail ?? '', /wrong_secret/);
  });

  it('gives every kind of answer a decision that matches its status', async () => {
    const token = await send(gw.url, '/oauth2/token', {
      method: 'POST',
      headers: { ...FORM, authorization: basic(client.id, client.secret) },
      body: 'grant_type=client_credentials',
    });
    const access = token.json<{ access_token: string }>().access_token;
    const cases: Array<[string, Parameters<typeof send>[2]]> = [
      // The issuer's endpoints.
      [
        '/oauth2/token',
        {
          method: 'POST',
          headers: { ...FORM, authorization: basic(client.id, client.secret) },
          body: 'grant_type=client_credentials',
        },
      ],
      ['/oauth2/token', { method: 'POST', headers: FORM, body: 'grant_type=password' }],
      ['/oauth2/token', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' }],
      [
        '/oauth2/token',
        {
          method: 'POST',
          headers: { ...FORM, authorization: basic(client.id, client.secret) },
          body: 'grant_type=client_credentials&scope=admin',
        },
      ],
      [
        '/oauth2/revoke',
        {
          method: 'POST',
          headers: { ...FORM, authorization: basic(client.id, 'bad') },
          body: `token=${access}`,
        },
      ],
      ['/oauth2/jwks', {}],
      ['/.well-known/oauth-authorization-server', {}],
      // Lockout at the token endpoint (max_failures 2 for this pair).
      [
        '/oauth2/token',
        {
          method: 'POST',
          headers: { ...FORM, authorization: basic(client.id, 'w1'), 'x-forwarded-for': '203.0.113.5' },
          body: 'grant_type=client_credentials',
        },
      ],
      [
        '/oauth2/token',
        {
          method: 'POST',
          headers: { ...FORM, authorization: basic(client.id, 'w2'), 'x-forwarded-for': '203.0.113.5' },
          body: 'grant_type=client_credentials',
        },
      ],
      [
        '/oauth2/token',
        {
          method: 'POST',
          headers: { ...FORM, authorization: basic(client.id, 'w3'), 'x-forwarded-for': '203.0.113.5' },
          body: 'grant_type=client_credentials',
        },
      ],
      // The gateway's own answers on routes and off them.
      ['/nowhere', {}],
      ['/orders', { method: 'DELETE' }],
      ['/orders', {}],
      ['/orders', { headers: { authorization: 'Bearer not-a-token' } }],
      [
        '/orders',
        {
          method: 'POST',
          headers: { authorization: `Bearer ${access}`, 'content-type': 'application/json' },
          body: 'x'.repeat(4096),
        },
      ],
      [
        '/orders',
        {
          method: 'OPTIONS',
          headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' },
        },
      ],
      [
        '/orders',
        {
          method: 'OPTIONS',
          headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
        },
      ],
      ['/orders', { headers: { authorization: `Bearer ${access}` } }],
    ];
    const seen = new Set<number>();
    for (const [path, options] of cases) {
      const { status, event } = await answer(path, options);
      seen.add(status);
      assert.equal(event.status, status, `${options?.method ?? 'GET'} ${path}`);
      assert.equal(
        event.decision,
        expected(status),
        `${options?.method ?? 'GET'} ${path} answered ${status} is audited ${event.decision} ${event.reason}`,
      );
      if (status >= 400) assert.notEqual(event.reason, 'ok', `${path} ${status} has a reason`);
    }
    // The cases really cover allow and deny answers of several kinds.
    for (const s of [200, 400, 401, 404, 405, 429]) assert.ok(seen.has(s), `covers ${s}`);
  });
});
