/**
 * RFC 9113 request checks on the TLS listener, from raw frames: what
 * Node/nghttp2 refuse with RST_STREAM PROTOCOL_ERROR before the gateway sees
 * the request, each verified rather than assumed, and the mapping of an
 * HTTP/2 header list onto the HTTP/1.1 view (src/http2/request-head.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunningListener } from '../tls/test-support/clients.js';
import type { TempPki } from '../tls/test-support/pki.js';
import { http1HeaderList } from './request-head.js';
import {
  connectRaw,
  ERROR,
  FLAG,
  FRAME,
  frame,
  getFields,
  type RawConnection,
  statusOf,
} from './test-support/frames.js';
import { serverPki, startServerListener } from './test-support/servers.js';

const post = (length: string): [string, string][] => [
  [':method', 'POST'],
  [':scheme', 'https'],
  [':authority', 'localhost'],
  [':path', '/upload'],
  ['content-length', length],
];

describe('RFC 9113 checks Node and nghttp2 make on the TLS listener', () => {
  let pki: TempPki;
  let running: RunningListener;
  let handled: string[];

  before(async () => {
    const made = await serverPki('ca');
    pki = made.pki;
    handled = [];
    running = await startServerListener(made.server, (req, res) => {
      handled.push(req.url ?? '');
      req.resume();
      req.on('end', () => res.end('ok'));
    });
  });

  after(async () => {
    await running.close();
    pki.cleanup();
  });

  /** Sends `fields` as stream 1 (and `data` as its body), then a good GET as stream 3 on the same connection. */
  async function refusedThenServed(fields: [string, string][], data?: Buffer): Promise<RawConnection> {
    const conn = await connectRaw(running.port);
    conn.request(1, fields, { endStream: data === undefined });
    if (data !== undefined) conn.send(frame(FRAME.DATA, FLAG.END_STREAM, 1, data));
    const reset = await conn.waitFor(
      (f) => f.stream === 1 && (f.type === FRAME.RST_STREAM || f.type === FRAME.HEADERS),
    );
    assert.equal(reset.type, FRAME.RST_STREAM, 'the malformed request is reset, not answered');
    assert.equal(reset.payload.readUInt32BE(0), ERROR.PROTOCOL_ERROR);
    conn.request(3, getFields('/after'));
    const head = await conn.waitFor((f) => f.stream === 3 && f.type === FRAME.HEADERS);
    assert.equal(statusOf(head), 200, 'the connection still serves good requests');
    return conn;
  }

  for (const [name, value] of [
    ['connection', 'keep-alive'],
    ['keep-alive', 'timeout=5'],
    ['proxy-connection', 'keep-alive'],
    ['transfer-encoding', 'chunked'],
    ['upgrade', 'websocket'],
    ['te', 'gzip'],
  ] as const) {
    it(`resets a request carrying the connection-specific field ${name}: ${value}`, async () => {
      const conn = await refusedThenServed(getFields(`/bad-${name}`, 'localhost', [[name, value]]));
      conn.destroy();
      assert.ok(!handled.includes(`/bad-${name}`), 'the gateway never saw it');
    });
  }

  it('serves a request with te: trailers, the one te value HTTP/2 allows', async () => {
    const conn = await connectRaw(running.port);
    conn.request(1, getFields('/te-trailers', 'localhost', [['te', 'trailers']]));
    const head = await conn.waitFor((f) => f.stream === 1 && f.type === FRAME.HEADERS);
    conn.destroy();
    assert.equal(statusOf(head), 200);
  });

  it('resets a request with an upper-case header name', async () => {
    const conn = await refusedThenServed(getFields('/upper', 'localhost', [['X-Upper', '1']]));
    conn.destroy();
    assert.ok(!handled.includes('/upper'));
  });

  it('resets extended CONNECT (:protocol), which the listener never enables', async () => {
    const conn = await refusedThenServed([
      [':method', 'CONNECT'],
      [':protocol', 'websocket'],
      [':scheme', 'https'],
      [':authority', 'localhost'],
      [':path', '/ws'],
    ]);
    conn.destroy();
    assert.ok(!handled.includes('/ws'));
  });

  it('resets a request without :path, and one with an unknown pseudo-header', async () => {
    (
      await refusedThenServed([
        [':method', 'GET'],
        [':scheme', 'https'],
        [':authority', 'localhost'],
      ])
    ).destroy();
    (await refusedThenServed(getFields('/pseudo', 'localhost', [[':custom', 'x']]))).destroy();
    assert.ok(!handled.includes('/pseudo'));
  });

  it('resets a request whose DATA frames are shorter than its content-length', async () => {
    (await refusedThenServed(post('10'), Buffer.from('abc'))).destroy();
  });

  it('resets a request whose DATA frames are longer than its content-length', async () => {
    (await refusedThenServed(post('2'), Buffer.from('abcdef'))).destroy();
  });

  it('resets a request with a malformed content-length', async () => {
    (await refusedThenServed(post('1x'), Buffer.from('a'))).destroy();
  });
});

describe('an HTTP/2 header list mapped onto the HTTP/1.1 view', () => {
  it('drops the pseudo-headers and puts :authority as host first', () => {
    const r = http1HeaderList([
      ':method',
      'GET',
      ':path',
      '/a',
      ':scheme',
      'https',
      ':authority',
      'api.test',
      'accept',
      '*/*',
    ]);
    assert.deepEqual(r, { ok: true, raw: ['host', 'api.test', 'accept', '*/*'] });
  });

  it('keeps host when there is no :authority', () => {
    const r = http1HeaderList([':method', 'GET', ':path', '/a', 'host', 'api.test']);
    assert.deepEqual(r, { ok: true, raw: ['host', 'api.test'] });
  });

  it('accepts :authority and host that agree, ignoring case', () => {
    const r = http1HeaderList([':authority', 'API.test', 'host', 'api.TEST']);
    assert.equal(r.ok, true);
  });

  it('refuses :authority and host that disagree', () => {
    assert.deepEqual(http1HeaderList([':authority', 'api.test', 'host', 'evil.test']), {
      ok: false,
      error: 'badHost',
      reason: ':authority and host disagree',
    });
  });

  it('refuses two host fields, as HTTP/1.1 refuses two Host lines', () => {
    const r = http1HeaderList([':authority', 'api.test', 'host', 'api.test', 'host', 'api.test']);
    assert.equal(r.ok, false);
  });

  it('joins cookie crumbs with "; " into one field', () => {
    const r = http1HeaderList([':authority', 'a', 'cookie', 'a=1', 'x-y', 'z', 'cookie', 'b=2']);
    assert.deepEqual(r, { ok: true, raw: ['host', 'a', 'cookie', 'a=1; b=2', 'x-y', 'z'] });
  });

  for (const [name, value] of [
    ['connection', 'close'],
    ['keep-alive', '1'],
    ['proxy-connection', 'x'],
    ['transfer-encoding', 'chunked'],
    ['upgrade', 'h2c'],
    ['te', 'gzip'],
    ['X-Upper', '1'],
    [':protocol', 'websocket'],
  ] as const) {
    it(`refuses ${name}: ${value} even when the HTTP/2 library lets it through`, () => {
      const r = http1HeaderList([':authority', 'a', name, value]);
      assert.equal(r.ok, false);
      assert.equal(r.ok === false && r.error, 'badHeader');
    });
  }

  it('keeps te: trailers in the list (the proxy drops it as it does for HTTP/1.1)', () => {
    assert.deepEqual(http1HeaderList(['te', 'trailers']), { ok: true, raw: ['te', 'trailers'] });
  });
});
