/**
 * Issue 14, item 2: every representation is filtered, or none is sent. A
 * real negotiating upstream answers by Accept in JSON, XML, CSV, text and
 * HTML, each carrying a secret; the gateway narrows Accept to what the route
 * declares, redacts what it can read, and refuses the rest.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ApiGateway, startApiGateway } from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';
import { narrowAccept } from './accept.js';

const HASH = 'scrypt$16384$c2VjcmV0';
const CARD = '4111 1111 1111 1111';

/** Each representation of user 1, every one with the password hash and a card number. */
const REPRESENTATIONS: Record<string, string> = {
  'application/json': JSON.stringify({ id: 1, name: 'alice', password_hash: HASH, note: `card ${CARD}` }),
  'application/xml': `<?xml version="1.0"?><user id="1"><name>alice</name><password_hash>${HASH}</password_hash><note>card ${CARD}</note></user>`,
  'text/csv': `id,name,password_hash,note\n1,alice,${HASH},card ${CARD}\n`,
  'text/plain': `user 1 alice password_hash=${HASH} card ${CARD}\n`,
  'text/html': `<html><body><p>alice</p><p>${HASH}</p><p>card ${CARD}</p></body></html>`,
  'image/png': `PNG-ish ${HASH}`,
};

/**
 * Answers in the first representation the Accept list names (in order, no
 * weights: a naive upstream), `*` ranges matched, JSON when there is no
 * Accept. `/stubborn/...` answers XML whatever is asked; `/split` answers
 * XML with the card number split by a character reference.
 */
function startNegotiatingUpstream(): Promise<{
  url: string;
  server: Server;
  accepts: (string | undefined)[];
}> {
  const accepts: (string | undefined)[] = [];
  const server = createServer((req, res) => {
    accepts.push(req.headers.accept);
    const answer = (type: string, body: string) => {
      res.writeHead(200, { 'content-type': `${type}; charset=utf-8` });
      res.end(body);
    };
    if (req.url?.startsWith('/stubborn'))
      return answer('application/xml', REPRESENTATIONS['application/xml']!);
    if (req.url === '/split')
      return answer('application/xml', `<user><note>card 4111&#32;1111 1111 1111</note></user>`);
    if (req.url === '/binary') return answer('application/octet-stream', `{"password_hash":"${HASH}"}`);
    const ranges = (req.headers.accept ?? '*/*').split(',').map((r) => r.split(';')[0]!.trim());
    for (const range of ranges) {
      const type = Object.keys(REPRESENTATIONS).find(
        (t) => range === '*/*' || range === t || (range.endsWith('/*') && t.startsWith(range.slice(0, -1))),
      );
      if (type !== undefined) return answer(type, REPRESENTATIONS[type]!);
    }
    res.writeHead(406).end();
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, accepts }),
    ),
  );
}

const user = {
  type: 'object',
  properties: { id: { type: 'integer' }, name: { type: 'string' }, note: { type: 'string' } },
};
const text = { schema: { type: 'string' } };

/** An API description: /users/1 in JSON only; /reports/1 in JSON, XML, CSV, text and HTML; /avatar in PNG. */
const DOCUMENT = {
  openapi: '3.1.0',
  info: { title: 'representations', version: '1' },
  paths: {
    '/users/1': {
      get: { responses: { '200': { description: 'ok', content: { 'application/json': { schema: user } } } } },
    },
    '/reports/1': {
      get: {
        responses: {
          '200': {
            description: 'ok',
            content: {
              'application/json': { schema: user },
              'application/xml': text,
              'text/csv': text,
              'text/plain': text,
              'text/html': text,
            },
          },
        },
      },
    },
    '/stubborn/users/1': {
      get: { responses: { '200': { description: 'ok', content: { 'application/json': { schema: user } } } } },
    },
    '/split': {
      get: { responses: { '200': { description: 'ok', content: { 'application/xml': text } } } },
    },
    '/avatar': { get: { responses: { '200': { description: 'ok', content: { 'image/png': text } } } } },
    '/avatar-open': { get: { responses: { '200': { description: 'ok', content: { 'image/png': text } } } } },
  },
};

describe('every representation is filtered, or none is sent', () => {
  let upstream: Awaited<ReturnType<typeof startNegotiatingUpstream>>;
  let gw: ApiGateway;
  let dir: string;
  const redaction = { redact: ['password_hash'], redact_patterns: ['card'] };

  before(async () => {
    upstream = await startNegotiatingUpstream();
    dir = mkdtempSync(join(tmpdir(), 'portcullis-representations-'));
    writeFileSync(join(dir, 'openapi.json'), JSON.stringify(DOCUMENT));
    const route = (path: string, responses: Record<string, unknown> = {}) => ({
      path,
      methods: ['GET'],
      responses: { ...redaction, ...responses } as never,
    });
    gw = await startApiGateway({
      upstream: upstream.url,
      document: join(dir, 'openapi.json'),
      routes: [
        route('/users/1'),
        route('/reports/1'),
        route('/stubborn/users/1'),
        route('/split'),
        route('/avatar'),
        route('/avatar-open', { pass_through_media_types: ['image/*'] }),
        // Described by no document: redaction only.
        { path: '/binary', methods: ['GET'], responses: redaction as never },
      ],
    });
  });
  after(async () => {
    await gw.close();
    upstream.server.closeAllConnections();
    await new Promise((resolve) => upstream.server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers 406 to an Accept that admits only a type the route does not declare, and never asks the upstream', async () => {
    const before = upstream.accepts.length;
    for (const accept of [
      'application/xml',
      'text/csv',
      'text/html, text/plain;q=0.9',
      'application/json;q=0',
    ]) {
      const r = await send(gw.url, '/users/1', { headers: { accept } });
      assert.equal(r.status, 406, accept);
      assert.equal(r.headers['content-type'], 'application/problem+json');
      assert.equal(r.json().code, 'request.not_acceptable');
      assert.ok(!r.body.includes(HASH));
    }
    assert.equal(upstream.accepts.length, before);
  });

  it('narrows Accept to the declared JSON, so the upstream answers in JSON and the secret is removed', async () => {
    const r = await send(gw.url, '/users/1', {
      headers: { accept: 'application/xml, application/json;q=0.5' },
    });
    assert.equal(r.status, 200);
    assert.equal(upstream.accepts.at(-1), 'application/json;q=0.5');
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.deepEqual(r.json(), { id: 1, name: 'alice', note: 'card [redacted]' });
    const any = await send(gw.url, '/users/1', { headers: { accept: 'text/*, */*;q=0.1' } });
    assert.equal(any.status, 200);
    assert.equal(upstream.accepts.at(-1), 'application/json;q=0.1');
    assert.ok(!any.body.includes(HASH));
  });

  it('still answers the legitimate JSON request with the filtered body', async () => {
    const r = await send(gw.url, '/users/1', { headers: { accept: 'application/json' } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { id: 1, name: 'alice', note: 'card [redacted]' });
    const none = await send(gw.url, '/users/1');
    assert.equal(none.status, 200);
    assert.equal(upstream.accepts.at(-1), 'application/json');
    assert.ok(!none.body.includes(HASH));
  });

  it('refuses (502) a representation the route does not declare when the upstream ignores Accept', async () => {
    const r = await send(gw.url, '/stubborn/users/1', { headers: { accept: 'application/json' } });
    assert.equal(r.status, 502);
    assert.equal(r.json().code, 'upstream.invalid_response');
    assert.ok(!r.body.includes(HASH));
  });

  it('redacts patterns in every declared text type: text/plain, text/csv, text/html', async () => {
    for (const type of ['text/plain', 'text/csv', 'text/html']) {
      const r = await send(gw.url, '/reports/1', { headers: { accept: type } });
      assert.equal(r.status, 200, type);
      assert.match(String(r.headers['content-type']), new RegExp(`^${type}`));
      assert.ok(!r.body.includes('4111'), `${type}: ${r.body}`);
      assert.ok(r.body.includes('card [redacted]'), type);
    }
  });

  it('redacts named elements and patterns in a declared XML representation', async () => {
    const r = await send(gw.url, '/reports/1', { headers: { accept: 'application/xml' } });
    assert.equal(r.status, 200);
    assert.ok(!r.body.includes(HASH) && !r.body.includes('4111'), r.body);
    assert.ok(r.body.includes('<password_hash>[redacted]</password_hash>'));
    assert.ok(r.body.includes('<note>card [redacted]</note>'));
    assert.ok(r.body.includes('<name>alice</name>'));
  });

  it('refuses XML whose secret the rewrite cannot reach (a character reference inside a card number)', async () => {
    const r = await send(gw.url, '/split', { headers: { accept: 'application/xml' } });
    assert.equal(r.status, 502);
    assert.ok(!r.body.includes('1111'));
  });

  it('refuses a declared type it cannot read, unless the route passes it through explicitly', async () => {
    const closed = await send(gw.url, '/avatar', { headers: { accept: 'image/png' } });
    assert.equal(closed.status, 502);
    assert.ok(!closed.body.includes(HASH));
    const open = await send(gw.url, '/avatar-open', { headers: { accept: 'image/png' } });
    assert.equal(open.status, 200);
    assert.equal(open.body, REPRESENTATIONS['image/png']);
  });

  it('on a route with redaction and no description, refuses a body whose type it cannot read', async () => {
    const r = await send(gw.url, '/binary');
    assert.equal(r.status, 502);
    assert.ok(!r.body.includes(HASH));
  });
});

describe('narrowing Accept', () => {
  it('keeps the client’s ranges within the declared types, parameters and weights included', () => {
    assert.equal(
      narrowAccept('application/xml, application/json;q=0.5', ['application/json']),
      'application/json;q=0.5',
    );
    assert.equal(
      narrowAccept('application/json; charset="utf-8"', ['application/json']),
      'application/json; charset=utf-8',
    );
    assert.equal(narrowAccept('text/*', ['application/json', 'text/csv']), 'text/csv');
    assert.equal(narrowAccept('*/*', ['*/*']), '*/*');
  });
  it('lets a wider range stand for the declared types it covers, unless a more specific range decides', () => {
    assert.equal(narrowAccept(undefined, ['application/json', 'text/csv']), 'application/json, text/csv');
    assert.equal(
      narrowAccept('*/*;q=0.1, application/json', ['application/json', 'text/*']),
      'text/*;q=0.1, application/json',
    );
    assert.equal(narrowAccept('*/*, text/html;q=0', ['text/*']), 'text/*, text/html;q=0');
    assert.equal(narrowAccept('*/*;q=0.2, application/json;q=0', ['application/json']), undefined);
  });
  it('finds nothing acceptable in a type not declared, q=0 only, or an unreadable value', () => {
    assert.equal(narrowAccept('application/xml', ['application/json']), undefined);
    assert.equal(narrowAccept('application/json;q=0', ['application/json']), undefined);
    assert.equal(narrowAccept('garbage', ['application/json']), undefined);
  });
});
