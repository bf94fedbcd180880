import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { type RunningOrdersApi, startOrdersApi } from '../../demo/orders-api.js';
import type { ConfigRouteInput } from '../../openapi/route-settings.js';
import { type ApiGateway, startApiGateway } from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';

const DEMO = new URL('../../../demo/openapi.yaml', import.meta.url).pathname;

describe('filtering the demo API’s responses to its document', () => {
  let api: RunningOrdersApi;
  let gw: ApiGateway;
  before(async () => {
    api = await startOrdersApi(0);
    gw = await startApiGateway({ upstream: `http://127.0.0.1:${api.port}`, document: DEMO });
  });
  after(async () => {
    await gw.close();
    await api.close();
  });

  it('removes the password hash and internal notes the document does not declare', async () => {
    const r = await send(gw.url, '/users/1');
    assert.equal(r.status, 200);
    assert.deepEqual(Object.keys(r.json()).sort(), [
      'display_name',
      'email',
      'id',
      'role',
      'tenant',
      'username',
    ]);
    const all = await send(gw.url, '/admin/users');
    for (const user of all.json<Record<string, unknown>[]>()) {
      assert.equal(user.password_hash, undefined);
      assert.equal(user.internal_notes, undefined);
    }
    assert.ok(!all.body.includes('scrypt$'));
  });

  it('leaves a response that matches its schema byte for byte', async () => {
    const direct = await send(`http://127.0.0.1:${api.port}`, '/public/catalog');
    const through = await send(gw.url, '/public/catalog');
    assert.equal(through.body, direct.body);
  });

  it('passes the upstream’s declared 404 and replaces nothing in it', async () => {
    const r = await send(gw.url, '/users/999');
    assert.equal(r.status, 404);
    assert.deepEqual(r.json(), { error: 'not_found', message: 'user not found' });
  });

  it('redacts configured fields wherever they appear: credentials echoed back by the upstream', async () => {
    const r = await send(gw.url, '/echo', {
      headers: { authorization: 'Bearer secret-token-123', cookie: 'theme=dark' },
    });
    assert.equal(r.status, 200);
    const headers = r.json<{ headers: Record<string, string> }>().headers;
    assert.equal(headers.authorization, '[redacted]');
    assert.equal(headers.cookie, '[redacted]');
    assert.ok(!r.body.includes('secret-token-123'));
  });

  it('redacts configured patterns inside strings: a card number', async () => {
    const r = await send(gw.url, '/echo', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'my card is 4111 1111 1111 1111, order 12345678901234' }),
    });
    assert.equal(r.status, 200);
    assert.equal(
      r.json<{ body: { message: string } }>().body.message,
      'my card is [redacted], order 12345678901234',
    );
  });
});

/** An upstream whose answers break the rules one way each, by path. */
function startMisbehavingUpstream(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const json = (status: number, value: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(value));
    };
    switch (req.url) {
      case '/leak':
      case '/leak-block':
        return json(200, {
          name: 'widget',
          cost_price: 3,
          supplier: { id: 7, contract: 'secret' },
          pin: '1234',
        });
      case '/crash':
        return json(
          500,
          {
            error: 'TypeError: x is undefined at /srv/app/handlers/orders.js:42',
            db: 'postgres://app:pw@10.0.0.5/app',
          },
          { 'retry-after': '5' },
        );
      case '/teapot':
        return json(418, { teapot: true, internal: 'kettle-7' });
      case '/redirect':
        res.writeHead(302, { location: 'http://10.0.0.5/internal' });
        return res.end();
      case '/headers':
        return json(
          200,
          { name: 'ok' },
          {
            'x-debug-token': 'abc',
            via: '1.1 internal-proxy',
            'x-generator': 'Drupal 7',
            'x-internal-id': '42',
            'x-kept': 'yes',
          },
        );
      case '/gzip':
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        return res.end(gzipSync(JSON.stringify({ name: 'x', secret: 'y' })));
      case '/big':
        return json(200, { name: 'x'.repeat(2 * 1024 * 1024) });
      case '/events':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: one\n\n');
        return res.end('data: two\n\n');
      case '/events-undeclared':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return res.end('data: {"password_hash":"scrypt$x"}\n\n');
      case '/html':
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end('<html>stack trace</html>');
      case '/empty':
        res.writeHead(204);
        return res.end();
      default:
        return json(404, { error: 'nope' });
    }
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }),
    ),
  );
}

describe('responses that break the description', () => {
  let upstream: { url: string; server: Server };
  let gw: ApiGateway;
  const product = {
    type: 'object',
    properties: {
      name: { type: 'string' },
      supplier: { type: 'object', properties: { id: { type: 'integer' } } },
      pin: { type: 'string', writeOnly: true },
    },
  };
  const schemas = { '200': product, '204': { type: 'null' }, '404': { type: 'object' } };
  const r = (path: string, responses: Record<string, unknown> = {}): Omit<ConfigRouteInput, 'upstream'> => ({
    path,
    methods: ['GET'],
    responses: { schemas, ...responses } as never,
  });

  before(async () => {
    upstream = await startMisbehavingUpstream();
    gw = await startApiGateway({
      upstream: upstream.url,
      routes: [
        r('/leak'),
        r('/leak-block', { mode: 'block' }),
        r('/crash'),
        r('/teapot'),
        r('/redirect'),
        r('/headers', { strip_headers: ['x-internal-id'] }),
        r('/gzip'),
        r('/big', { max_bytes: '1mb' }),
        // Inline schemas declare JSON only: the streaming type is passed through by name.
        r('/events', { pass_through_large: true, pass_through_media_types: ['text/event-stream'] }),
        r('/events-undeclared', { pass_through_large: true }),
        r('/html'),
        r('/empty'),
      ],
    });
  });
  after(async () => {
    await gw.close();
    upstream.server.closeAllConnections();
    await new Promise((resolve) => upstream.server.close(resolve));
  });

  it('removes undeclared and writeOnly properties at every depth', async () => {
    const res = await send(gw.url, '/leak');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { name: 'widget', supplier: { id: 7 } });
  });

  it('in block mode, answers 502 instead of a response that does not match', async () => {
    const res = await send(gw.url, '/leak-block');
    assert.equal(res.status, 502);
    assert.equal(res.json().code, 'upstream.invalid_response');
    assert.ok(!res.body.includes('secret'));
  });

  it('replaces an upstream 5xx body by a generic problem and logs the request id, not the body', async () => {
    const res = await send(gw.url, '/crash');
    assert.equal(res.status, 500);
    assert.equal(res.headers['content-type'], 'application/problem+json');
    assert.equal(res.headers['retry-after'], '5');
    assert.equal(res.json().code, 'upstream.error');
    assert.ok(!res.body.includes('TypeError') && !res.body.includes('postgres'));
    const line = gw.logs.find(
      (l) => l.msg === 'upstream answer replaced' && l.requestId === res.json().request_id,
    );
    assert.ok(line, 'logged');
    // Upstream error bodies are not logged by default (log.upstream_error_bodies).
    assert.equal(line.upstreamBody, undefined);
    assert.ok(!JSON.stringify(gw.logs).includes('TypeError'));
  });

  it('replaces an undeclared 4xx by a generic problem with the same status, and refuses an undeclared redirect', async () => {
    const teapot = await send(gw.url, '/teapot');
    assert.equal(teapot.status, 418);
    assert.equal(teapot.json().code, 'upstream.refused');
    assert.ok(!teapot.body.includes('kettle'));
    const redirect = await send(gw.url, '/redirect');
    assert.equal(redirect.status, 502);
    assert.equal(redirect.headers.location, undefined);
  });

  it('removes headers that reveal internals, and the configured ones', async () => {
    const res = await send(gw.url, '/headers');
    assert.equal(res.status, 200);
    for (const h of ['x-debug-token', 'via', 'x-generator', 'x-internal-id', 'server', 'x-powered-by']) {
      assert.equal(res.headers[h], undefined, h);
    }
    assert.equal(res.headers['x-kept'], 'yes');
  });

  it('fails closed on a compressed response it cannot read', async () => {
    const res = await send(gw.url, '/gzip');
    assert.equal(res.status, 502);
    assert.ok(!res.body.includes('secret'));
  });

  it('refuses a response larger than it collects, and streams a streaming one where the route allows it', async () => {
    const big = await send(gw.url, '/big');
    assert.equal(big.status, 502);
    assert.equal(big.json().code, 'upstream.response_too_large');
    const events = await send(gw.url, '/events');
    assert.equal(events.status, 200);
    assert.equal(events.body, 'data: one\n\ndata: two\n\n');
  });

  it('does not stream unread a streaming media type the route neither declares nor passes through', async () => {
    const res = await send(gw.url, '/events-undeclared');
    assert.equal(res.status, 502);
    assert.ok(!res.body.includes('password_hash'));
  });

  it('refuses a media type the operation does not declare', async () => {
    const res = await send(gw.url, '/html');
    assert.equal(res.status, 502);
    assert.ok(!res.body.includes('stack trace'));
  });

  it('passes a declared empty answer', async () => {
    const res = await send(gw.url, '/empty');
    assert.equal(res.status, 204);
  });
});
