/**
 * Upstream 5xx bodies in the log: off by default; when `log.upstream_error_bodies`
 * is on, truncated and passed through the same redaction as audit text, so a
 * bearer token, cookie or URL password the upstream echoed never reaches the log.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type ApiGateway, startApiGateway } from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg';
const COOKIE = 'session=Zm9vYmFyLXNlc3Npb24tc2VjcmV0LTEyMzQ1Njc4OTA';

async function startEchoingUpstream(): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(
      `TypeError at handler\nAuthorization: Bearer ${TOKEN}\nCookie: ${COOKIE}\nretry via postgres://app:hunter2@10.0.0.5/app\n${'x'.repeat(5000)}END-OF-BODY`,
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const route = {
  path: '/crash',
  methods: ['GET'],
  responses: { schemas: { '200': { type: 'object' } } },
} as never;

describe('upstream 5xx bodies in the log', () => {
  let upstream: { url: string; server: Server };
  let quiet: ApiGateway;
  let verbose: ApiGateway;

  before(async () => {
    upstream = await startEchoingUpstream();
    quiet = await startApiGateway({ upstream: upstream.url, routes: [route] });
    verbose = await startApiGateway({
      upstream: upstream.url,
      routes: [route],
      config: { log: { level: 'debug', upstream_error_bodies: true } },
    });
  });
  after(async () => {
    await quiet.close();
    await verbose.close();
    upstream.server.closeAllConnections();
    await new Promise((r) => upstream.server.close(r));
  });

  const replaced = (gw: ApiGateway, requestId: unknown) =>
    gw.logs.find((l) => l.msg === 'upstream answer replaced' && l.requestId === requestId);

  it('does not log the body by default', async () => {
    const res = await send(quiet.url, '/crash');
    assert.equal(res.status, 500);
    const line = replaced(quiet, res.json().request_id);
    assert.ok(line);
    assert.equal(line.upstreamBody, undefined);
    const all = JSON.stringify(quiet.logs);
    for (const secret of [TOKEN, 'Zm9vYmFyLXNlc3Npb24tc2VjcmV0LTEyMzQ1Njc4OTA', 'hunter2', 'TypeError']) {
      assert.ok(!all.includes(secret), secret);
    }
  });

  it('when enabled, logs the start of the body with every credential redacted', async () => {
    const res = await send(verbose.url, '/crash');
    assert.equal(res.status, 500);
    const line = replaced(verbose, res.json().request_id);
    assert.ok(line);
    const body = String(line.upstreamBody);
    assert.match(body, /TypeError at handler/);
    assert.ok(body.length <= 1024, `${body.length} characters`);
    assert.ok(!body.includes('END-OF-BODY'), 'truncated');
    const all = JSON.stringify(verbose.logs);
    for (const secret of [TOKEN, 'Zm9vYmFyLXNlc3Npb24tc2VjcmV0LTEyMzQ1Njc4OTA', 'hunter2']) {
      assert.ok(!all.includes(secret), secret);
    }
    assert.match(body, /\[redacted\]/);
  });
});
