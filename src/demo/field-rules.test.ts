/**
 * The demo's field rules by role (demo/openapi.yaml), from outside, through
 * a real gateway started from demo/portcullis.yaml in front of the real demo
 * upstream: only admins may set an order's `priority` (x-portcullis-write),
 * only admins may read a user's `internal_notes` (x-portcullis-read).
 * Alice is a user, carol an admin (both of tenant acme).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { demoConfig } from '../test-support/demo.js';
import { startTestGateway, type TestGateway } from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { type RunningOrdersApi, startOrdersApi } from './orders-api.js';
import { DEMO_SECRET_ENV, DEMO_USERS, signDemoToken } from './tokens.js';

const JSON_TYPE = { 'content-type': 'application/json' };

describe('the demo’s field rules by role', () => {
  let api: RunningOrdersApi;
  let gw: TestGateway;
  const auth = new Map<string, Record<string, string>>();

  before(async () => {
    const secret = 'a-demo-token-secret-for-the-field-rule-tests';
    process.env[DEMO_SECRET_ENV] = secret;
    api = await startOrdersApi(0);
    gw = await startTestGateway(demoConfig(api.port, { relaxInspectionBudget: true }));
    for (const user of DEMO_USERS) {
      auth.set(user.name, { authorization: `Bearer ${await signDemoToken(secret, user)}` });
    }
  });

  after(async () => {
    await gw.close();
    await api.close();
  });

  const order = (who: string, userId: string, body: Record<string, unknown>) =>
    send(gw.url, `/users/${userId}/orders`, {
      method: 'POST',
      headers: { ...auth.get(who), ...JSON_TYPE },
      body: JSON.stringify(body),
    });

  it('alice (user) setting an order’s priority gets 400 naming the field, not the value', async () => {
    const r = await order('alice', '1', { item: 'widget', qty: 1, priority: 'rush' });
    assert.equal(r.status, 400, r.body);
    assert.match(String(r.headers['content-type']), /application\/problem\+json/);
    const problem = r.json<{ code: string; errors: { location: string; rule: string }[] }>();
    assert.equal(problem.code, 'input.invalid');
    assert.deepEqual(problem.errors, [{ location: '/body/priority', rule: 'x-portcullis-write' }]);
    assert.ok(!r.body.includes('rush'));
  });

  it('alice may still place an order without it', async () => {
    const r = await order('alice', '1', { item: 'widget', qty: 1 });
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json().priority, undefined);
  });

  it('carol (admin) setting it succeeds, and the order carries it', async () => {
    const r = await order('carol', '3', { item: 'widget', qty: 1, priority: 'rush' });
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json().priority, 'rush');
    const read = await send(gw.url, `/orders/${r.json().id}`, { headers: auth.get('carol') });
    assert.equal(read.status, 200, read.body);
    assert.equal(read.json().priority, 'rush');
  });

  it('alice reading herself gets her profile without the internal notes', async () => {
    const r = await send(gw.url, '/users/1', { headers: auth.get('alice') });
    assert.equal(r.status, 200, r.body);
    const user = r.json();
    assert.equal(user.username, 'alice');
    assert.equal(Object.hasOwn(user, 'internal_notes'), false);
    assert.equal(Object.hasOwn(user, 'password_hash'), false);
  });

  it('carol (admin) reading the same user gets the internal notes, and never the password hash', async () => {
    const r = await send(gw.url, '/users/1', { headers: auth.get('carol') });
    assert.equal(r.status, 200, r.body);
    const user = r.json();
    assert.equal(user.username, 'alice');
    assert.equal(typeof user.internal_notes, 'string');
    assert.ok((user.internal_notes as string).length > 0);
    assert.equal(Object.hasOwn(user, 'password_hash'), false);
  });
});
