import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { rawStatus, sendRaw } from '../test-support/http.js';

describe('HTTP hardening on the public listener', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startUpstream();
    gw = await startTestGateway({
      listen: { limits: { headers_timeout: '1s', max_header_bytes: '4kb', max_headers: 20 } },
      upstreams: { app: { url: upstream.url } },
      routes: [
        { path: '/upload', methods: ['POST'], upstream: 'app', auth: 'none', body_limit: '1mb' },
        { path: '/ok', methods: ['GET'], upstream: 'app', auth: 'none' },
      ],
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('serves a well-formed raw request (the control case)', async () => {
    const res = await sendRaw(gw.port, 'GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.equal(rawStatus(res), 200);
  });

  const ambiguous: [string, string][] = [
    [
      'both Content-Length and Transfer-Encoding',
      'POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    [
      'two different Content-Length headers',
      'POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde',
    ],
    [
      'two identical Content-Length headers',
      'POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd',
    ],
    ['obsolete line folding', 'GET /ok HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n'],
    ['a bare LF line ending', 'GET /ok HTTP/1.1\nHost: a\nConnection: close\n\n'],
    ['a Content-Length with a sign', 'POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd'],
    [
      'Transfer-Encoding other than chunked',
      'POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n0\r\n\r\n',
    ],
    ['a missing Host header', 'GET /ok HTTP/1.1\r\nConnection: close\r\n\r\n'],
    ['a space before the colon', 'GET /ok HTTP/1.1\r\nHost: a\r\nX-Bad : 1\r\n\r\n'],
  ];
  for (const [what, raw] of ambiguous) {
    it(`rejects a request with ${what} before it reaches the upstream`, async () => {
      const before = upstream.requests.length;
      const res = await sendRaw(gw.port, raw);
      assert.equal(rawStatus(res), 400, res);
      assert.match(res, /application\/problem\+json/);
      assert.equal(upstream.requests.length, before);
    });
  }

  it('answers 431 when the headers are larger than the limit', async () => {
    const res = await sendRaw(gw.port, `GET /ok HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`);
    assert.equal(rawStatus(res), 431);
  });

  it('ignores header lines past the configured count rather than forwarding them', async () => {
    const many = Array.from({ length: 40 }, (_, i) => `X-H${i}: ${i}\r\n`).join('');
    const res = await sendRaw(gw.port, `GET /ok HTTP/1.1\r\nHost: a\r\n${many}Connection: close\r\n\r\n`);
    assert.equal(rawStatus(res), 200);
    const seen = upstream.requests.at(-1)!.headers;
    assert.equal(seen['x-h39'], undefined);
  });

  it('cuts off a client that sends its headers one byte a second (slowloris)', async () => {
    const socket = connect(gw.port, '127.0.0.1');
    const request = 'GET /ok HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n';
    let sent = 0;
    let received = '';
    socket.on('data', (c) => {
      received += c.toString();
    });
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => {});
    const drip = setInterval(() => {
      if (sent < request.length && !socket.destroyed) socket.write(request[sent++]!);
    }, 1000);
    const deadline = setTimeout(() => socket.destroy(), 8000);
    await closed;
    clearInterval(drip);
    clearTimeout(deadline);
    assert.ok(sent < 8, `the connection stayed open for ${sent} bytes`);
    assert.equal(rawStatus(received), 408);
  });

  it('answers 413 to a 20 MB body on a 1 MB route without reading or buffering it all', async () => {
    const rssBefore = process.memoryUsage().rss;
    const socket = connect(gw.port, '127.0.0.1');
    socket.on('error', () => {});
    let received = '';
    let written = 0;
    const total = 20 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 'z');
    const answered = new Promise<void>((resolve) => {
      socket.on('data', (c) => {
        received += c.toString();
        if (received.includes('\r\n\r\n')) resolve();
      });
      socket.on('close', () => resolve());
    });
    socket.write('POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n');
    let stop = false;
    void answered.then(() => {
      stop = true;
    });
    while (!stop && written < total) {
      socket.write(`${chunk.length.toString(16)}\r\n`);
      socket.write(chunk);
      const ok = socket.write('\r\n');
      written += chunk.length;
      if (!ok) await new Promise((r) => setTimeout(r, 5));
    }
    await answered;
    socket.destroy();
    assert.equal(rawStatus(received), 413);
    assert.ok(written < total, `the client managed to send all ${written} bytes before the answer`);
    const growth = process.memoryUsage().rss - rssBefore;
    assert.ok(growth < 20 * 1024 * 1024, `memory grew by ${growth} bytes`);
  });
});
