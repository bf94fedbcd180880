/**
 * The demo's documented policies, from outside, through a real gateway
 * started from demo/portcullis.yaml in front of the real demo upstream.
 * The config lists its own routes; the policies come from the API
 * document's `x-portcullis-…` extensions (and, for orders, from the
 * config's response-ownership rule).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { explainRequest } from '../authz/explain.js';
import type { RequestEvent, SecurityEvent } from '../events/types.js';
import { demoConfig } from '../test-support/demo.js';
import { startTestGateway, type TestGateway } from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { type RunningOrdersApi, startOrdersApi } from './orders-api.js';
import { DEMO_SECRET_ENV, DEMO_USERS, signDemoToken } from './tokens.js';

const JSON_TYPE = { 'content-type': 'application/json' };

describe('the demo’s documented policies work on the routes its config lists', () => {
  let api: RunningOrdersApi;
  let gw: TestGateway;
  const auth = new Map<string, Record<string, string>>();
  const events: RequestEvent[] = [];

  before(async () => {
    const secret = 'a-demo-token-secret-for-the-policy-tests';
    process.env[DEMO_SECRET_ENV] = secret;
    api = await startOrdersApi(0);
    gw = await startTestGateway(demoConfig(api.port, { relaxInspectionBudget: true }));
    gw.running.events.subscribe({
      emit: (e: SecurityEvent) => {
        if (e.type === 'request') events.push(e);
      },
    });
    for (const user of DEMO_USERS) {
      auth.set(user.name, { authorization: `Bearer ${await signDemoToken(secret, user)}` });
    }
  });

  after(async () => {
    await gw.close();
    await api.close();
  });

  it('/echo: the caller’s Authorization header and cookies are redacted from the echo', async () => {
    const token = auth.get('bob')!.authorization!;
    const r = await send(gw.url, '/echo', { headers: { authorization: token, cookie: 'theme=dark' } });
    assert.equal(r.status, 200, r.body);
    const echoed = r.json<{ headers: Record<string, string> }>().headers;
    assert.equal(echoed.authorization, '[redacted]');
    assert.equal(echoed.cookie, '[redacted]');
    assert.ok(!r.body.includes(token.slice(7)), 'the token left in the response');
  });

  it('/echo: card numbers are redacted, in a JSON body and in the echoed query', async () => {
    const post = await send(gw.url, '/echo', {
      method: 'POST',
      headers: { ...auth.get('bob'), ...JSON_TYPE },
      body: JSON.stringify({ message: 'card 4111 1111 1111 1111, order 12345678901234' }),
    });
    assert.equal(post.status, 200, post.body);
    assert.equal(
      post.json<{ body: { message: string } }>().body.message,
      'card [redacted], order 12345678901234',
    );
    const get = await send(gw.url, '/echo?q=4111111111111111', { headers: auth.get('bob') });
    assert.equal(get.status, 200, get.body);
    assert.ok(!get.body.includes('4111111111111111'), get.body);
    assert.match(get.json<{ path: string }>().path, /\[redacted\]/);
  });

  it('/echo: the rich-text field is excluded from XSS inspection only, and nowhere else', async () => {
    const send$ = (body: unknown) =>
      send(gw.url, '/echo', {
        method: 'POST',
        headers: { ...auth.get('bob'), ...JSON_TYPE },
        body: JSON.stringify(body),
      });
    const xss = '<p onclick="track()">Hello</p>';
    assert.equal((await send$({ html: xss })).status, 200);
    const elsewhere = await send$({ message: xss });
    assert.equal(elsewhere.status, 403);
    assert.equal(elsewhere.json().code, 'input.rejected');
    assert.equal((await send$({ html: "1' OR '1'='1' --" })).status, 403);
  });

  it('POST /users/{userId}/orders: the trim transform cleans the order before the upstream sees it', async () => {
    const r = await send(gw.url, '/users/3/orders', {
      method: 'POST',
      headers: { ...auth.get('carol'), ...JSON_TYPE },
      body: JSON.stringify({ item: 'widget', qty: 1, note: '  Leave at the front desk.  ' }),
    });
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json<{ note: string }>().note, 'Leave at the front desk.');
  });

  it('POST /users/{userId}/orders: 30 orders a minute per principal, then 429', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 35; i++) {
      const r = await send(gw.url, '/users/1/orders', {
        method: 'POST',
        headers: { ...auth.get('alice'), ...JSON_TYPE },
        body: JSON.stringify({ item: 'widget', qty: 1 }),
      });
      statuses.push(r.status);
    }
    assert.deepEqual(statuses.slice(0, 30), Array(30).fill(201));
    assert.ok(
      statuses.slice(30).every((s) => s === 429),
      `expected 429 after 30: ${statuses.join(' ')}`,
    );
    // Another principal has its own budget.
    const carol = await send(gw.url, '/users/3/orders', {
      method: 'POST',
      headers: { ...auth.get('carol'), ...JSON_TYPE },
      body: JSON.stringify({ item: 'widget', qty: 1 }),
    });
    assert.equal(carol.status, 201);
  });

  it('a writeOnly property never comes back: removed, not masked', async () => {
    const r = await send(gw.url, '/users/3/orders', {
      method: 'POST',
      headers: { ...auth.get('carol'), ...JSON_TYPE },
      body: JSON.stringify({ item: 'gadget', qty: 1, payment_token: 'tok_abcdef123456' }),
    });
    assert.equal(r.status, 201, r.body);
    assert.equal(Object.hasOwn(r.json(), 'payment_token'), false);
    assert.ok(!r.body.includes('tok_abcdef123456'));
    const read = await send(gw.url, `/orders/${r.json().id}`, { headers: auth.get('carol') });
    assert.equal(read.status, 200);
    assert.equal(Object.hasOwn(read.json(), 'payment_token'), false);
    // The upstream did store and return it: the gateway removed it.
    const direct = await send(`http://127.0.0.1:${api.port}`, `/orders/${r.json().id}`);
    assert.equal(direct.json().payment_token, 'tok_abcdef123456');
  });

  describe('GET /orders/{orderId}: ownership decided on the response', () => {
    it('alice reads her order; carol (admin) reads it too', async () => {
      for (const who of ['alice', 'carol']) {
        const r = await send(gw.url, '/orders/ord_1001', { headers: auth.get(who) });
        assert.equal(r.status, 200, `${who}: ${r.body}`);
        assert.equal(r.json().id, 'ord_1001');
      }
    });

    it('bob gets 404 for alice’s order, not a byte of it, audited as a BOLA denial', async () => {
      const r = await send(gw.url, '/orders/ord_1001', { headers: auth.get('bob') });
      assert.equal(r.status, 404);
      assert.equal(r.headers['content-type'], 'application/problem+json');
      assert.equal(r.json().code, 'route.not_found');
      for (const leak of ['ord_1001', 'widget', 'acme', 'paid', '"owner"']) assert.ok(!r.body.includes(leak));
      const requestId = r.json().request_id;
      const event = await waitFor(() => events.find((e) => e.requestId === requestId));
      assert.equal(event.decision, 'deny');
      assert.equal(event.reason, 'authz.bola');
      assert.equal(event.status, 404);
      assert.equal(event.stage, 'filter');
      assert.equal(event.objectId, 'ord_1001'); // what the scraping and enumeration detectors count
      assert.match(
        String(event.detail),
        /owner\(response \/owner == sub\): response has "1" at \/owner; principal has "2"/,
      );
      assert.ok(!String(event.detail).includes('widget'));
    });

    it('bob still reads his own order', async () => {
      const r = await send(gw.url, '/orders/ord_2001', { headers: auth.get('bob') });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json().owner, '2');
    });

    it('a foreign order and a missing one get the same answer (no existence oracle)', async () => {
      const foreign = await send(gw.url, '/orders/ord_1001', { headers: auth.get('bob') });
      const missing = await send(gw.url, '/orders/ord_9999', { headers: auth.get('bob') });
      assert.equal(missing.status, 404);
      const strip = (b: Record<string, unknown>) => ({ ...b, request_id: undefined });
      assert.deepEqual(strip(missing.json()), strip(foreign.json()));
      const headerNames = (h: Record<string, unknown>) =>
        Object.keys(h)
          .filter((n) => n !== 'date')
          .sort();
      assert.deepEqual(headerNames(missing.headers), headerNames(foreign.headers));
    });

    it('HEAD cannot show bob whether the order exists; carol’s HEAD still works', async () => {
      const bob = await send(gw.url, '/orders/ord_1001', { method: 'HEAD', headers: auth.get('bob') });
      assert.equal(bob.status, 404);
      const carol = await send(gw.url, '/orders/ord_1001', {
        method: 'HEAD',
        headers: auth.get('carol'),
      });
      assert.equal(carol.status, 200);
    });

    it('explain shows the rule as decided on the response', async () => {
      const gateway = gw.running.current();
      const e = await explainRequest(
        gateway.config,
        { store: gw.running.store, auth: gw.running.authServices() },
        { method: 'GET', target: '/orders/ord_1001', headers: auth.get('bob')!, clientIp: '127.0.0.1' },
      );
      const rule = e.rules.find((r) => r.rule === 'response ownership');
      assert.ok(rule, JSON.stringify(e.rules));
      assert.match(rule.detail, /^decided on the response: owner\(response \/owner == sub\)/);
      assert.ok(e.rules.some((r) => r.rule === 'any[0].owner(response /owner == sub)' && r.pass));
      const admin = await explainRequest(
        gateway.config,
        { store: gw.running.store, auth: gw.running.authServices() },
        { method: 'GET', target: '/orders/ord_1001', headers: auth.get('carol')!, clientIp: '127.0.0.1' },
      );
      assert.match(admin.rules.find((r) => r.rule === 'response ownership')!.detail, /^not needed/);
    });
  });
});

async function waitFor<T>(find: () => T | undefined, ms = 2000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
