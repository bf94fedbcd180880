/** HTTP/2 through a real gateway: Node's http2 client, curl --http2, and HTTP/1.1 on the same TLS port. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { ClientHttp2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import type { PemFiles, TempPki } from '../tls/test-support/pki.js';
import { h2Request, openSession } from './test-support/client.js';
import { FRAME, getFields, statusOf, withRawConnection } from './test-support/frames.js';
import { certificatesOf, serverPki } from './test-support/servers.js';

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One HTTP/1.1 request over TLS (ALPN http/1.1), on a fresh connection. */
function h1Request(
  port: number,
  ca: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        servername: 'localhost',
        ca,
        method: options.method ?? 'GET',
        headers: { host: 'localhost', ...options.headers },
        agent: false,
        // Passed on to tls.connect by the agent (not in https.RequestOptions' type).
        ...({ ALPNProtocols: ['http/1.1'] } as object),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            headers: res.headers,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('curl', args, { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`curl failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** A problem body without its request id, which differs per request. */
function problemOf(body: string): Record<string, unknown> {
  const parsed = JSON.parse(body) as Record<string, unknown>;
  delete parsed.request_id;
  delete parsed.instance;
  return parsed;
}

describe('HTTP/2 through the gateway', () => {
  let pki: TempPki;
  let ca: PemFiles;
  let upstream: TestUpstream;
  let gw: TestGateway;
  let session: ClientHttp2Session;

  before(async () => {
    let server: PemFiles;
    ({ pki, ca, server } = await serverPki('server-ca', { ip: true }));
    upstream = await startUpstream();
    gw = await startTestGateway({
      listen: { tls: { certificates: certificatesOf(server) } },
      auth: { api_keys: {} },
      upstreams: { app: { url: upstream.url } },
      routes: [
        { path: '/public', methods: ['GET', 'POST'], upstream: 'app', auth: 'none' },
        { path: '/public/{id}', methods: ['GET'], upstream: 'app', auth: 'none' },
        // Inspection off: a 40 kB body costs more inspection CPU than a shared test machine promises.
        { path: '/upload', methods: ['POST'], upstream: 'app', auth: 'none', inspection: { mode: 'off' } },
        {
          path: '/private',
          methods: ['GET'],
          upstream: 'app',
          auth: ['api_key'],
          authorize: 'any-authenticated',
        },
      ],
    });
    session = await openSession(gw.port, ca.cert);
  });

  after(async () => {
    session?.close();
    await gw.close();
    await upstream.close();
    pki.cleanup();
  });

  it('negotiates h2 by ALPN and serves a GET through the pipeline to the upstream', async () => {
    const reply = await h2Request(session, '/public?x=1', { headers: { 'x-custom': 'yes' } });
    assert.equal(reply.status, 200);
    assert.equal(JSON.parse(reply.body).url, '/public?x=1');
    assert.ok(reply.headers['strict-transport-security'], 'HSTS is on HTTP/2 responses too');
    assert.match(String(reply.headers['x-request-id']), /^req_/);
  });

  it('forwards HTTP/1.1 upstream without pseudo-headers, with :authority as the forwarded host', async () => {
    await h2Request(session, '/public?trace=pseudo');
    const seen = upstream.requests.find((r) => r.url === '/public?trace=pseudo');
    assert.ok(seen, 'the upstream got the request');
    const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    assert.deepEqual(
      names.filter((n) => n.startsWith(':')),
      [],
      'no pseudo-header reaches the upstream',
    );
    assert.equal(seen.headers['x-forwarded-host'], `localhost:${gw.port}`);
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers.host, `127.0.0.1:${upstream.port}`);
  });

  it('forwards the same headers for HTTP/2 as for HTTP/1.1', async () => {
    await h2Request(session, '/public?trace=same-h2', {
      headers: { ':authority': 'localhost', 'x-custom': 'v', accept: 'application/json' },
    });
    await h1Request(gw.port, ca.cert, '/public?trace=same-h1', {
      headers: { 'x-custom': 'v', accept: 'application/json' },
    });
    const names = (url: string) => {
      const r = upstream.requests.find((q) => q.url === url)!;
      const skip = new Set(['x-request-id', 'traceparent', 'connection']);
      return r.rawHeaders
        .filter((_, i) => i % 2 === 0)
        .map((n) => n.toLowerCase())
        .filter((n) => !skip.has(n))
        .sort();
    };
    assert.deepEqual(names('/public?trace=same-h2'), names('/public?trace=same-h1'));
  });

  it('streams a POST body of several DATA frames without content-length to the upstream whole', async () => {
    const body = JSON.stringify({ note: 'x'.repeat(40_000) });
    const reply = await h2Request(session, '/upload?trace=post', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    assert.equal(reply.status, 200, reply.body);
    const seen = upstream.requests.find((r) => r.url === '/upload?trace=post')!;
    assert.equal(seen.body.toString(), body);
  });

  it('forwards a POST body with a content-length that matches its DATA frames', async () => {
    const body = '{"a":1}';
    const reply = await h2Request(session, '/public?trace=post-cl', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
      body,
    });
    assert.equal(reply.status, 200);
    const seen = upstream.requests.find((r) => r.url === '/public?trace=post-cl')!;
    assert.equal(seen.body.toString(), body);
    assert.equal(seen.headers['content-length'], String(body.length));
  });

  it('answers a denied request with the same problem+json as HTTP/1.1', async () => {
    const h2 = await h2Request(session, '/private');
    const h1 = await h1Request(gw.port, ca.cert, '/private');
    assert.equal(h2.status, 401);
    assert.equal(h2.status, h1.status);
    assert.equal(h2.headers['content-type'], h1.headers['content-type']);
    assert.deepEqual(problemOf(h2.body), problemOf(h1.body));
  });

  it('canonicalises :path like the HTTP/1.1 path and refuses the same path tricks', async () => {
    const paths = [
      '/public/../private',
      '/public/%2e%2e/private',
      '/public%2f..%2fprivate',
      '/public/%2F',
      '/public/a%00b',
      '//public',
      '/./public',
      '/public/%252e%252e',
      '/public/..%5cprivate',
      '/public/caf%C3%A9',
      '/public/%ff',
      '/PUBLIC',
    ];
    for (const path of paths) {
      const before = upstream.requests.length;
      const h2 = await h2Request(session, path);
      const h2Seen = upstream.requests.slice(before).map((r) => r.url);
      const middle = upstream.requests.length;
      const h1 = await h1Request(gw.port, ca.cert, path);
      const h1Seen = upstream.requests.slice(middle).map((r) => r.url);
      assert.equal(h2.status, h1.status, `status for ${path}`);
      if (h1.status >= 400) assert.deepEqual(problemOf(h2.body), problemOf(h1.body), `problem for ${path}`);
      assert.deepEqual(h2Seen, h1Seen, `what the upstream saw for ${path}`);
    }
  });

  it('refuses :authority and host that disagree with 400', async () => {
    await withRawConnection(gw.port, async (conn) => {
      conn.request(1, getFields('/public', 'localhost', [['host', 'evil.example']]));
      const head = await conn.waitFor((f) => f.type === FRAME.HEADERS && f.stream === 1);
      assert.equal(statusOf(head), 400);
    });
  });

  it('serves a request that names its host in host instead of :authority', async () => {
    await withRawConnection(gw.port, async (conn) => {
      conn.request(1, [
        [':method', 'GET'],
        [':scheme', 'https'],
        [':path', '/public?trace=host-only'],
        ['host', 'localhost'],
      ]);
      const head = await conn.waitFor((f) => f.type === FRAME.HEADERS && f.stream === 1);
      assert.equal(statusOf(head), 200);
      const seen = upstream.requests.find((r) => r.url === '/public?trace=host-only')!;
      assert.equal(seen.headers['x-forwarded-host'], 'localhost');
    });
  });

  it('joins cookie crumbs into one cookie header for the upstream', async () => {
    await withRawConnection(gw.port, async (conn) => {
      conn.request(
        1,
        getFields('/public?trace=cookies', 'localhost', [
          ['cookie', 'a=1'],
          ['cookie', 'b=2'],
        ]),
      );
      const head = await conn.waitFor((f) => f.type === FRAME.HEADERS && f.stream === 1);
      assert.equal(statusOf(head), 200);
      const seen = upstream.requests.find((r) => r.url === '/public?trace=cookies')!;
      assert.equal(seen.headers.cookie, 'a=1; b=2');
    });
  });

  it('refuses CONNECT with a 405 problem', async () => {
    const stream = session.request({ ':method': 'CONNECT', ':authority': 'example.com:443' });
    const status = await new Promise<number>((resolve, reject) => {
      stream.on('response', (h) => resolve(Number(h[':status'])));
      stream.on('error', reject);
    });
    stream.close();
    assert.equal(status, 405);
  });

  /** curl's arguments for `path` on the gateway, trusting the test CA, writing the HTTP version and status last. */
  const curlArgs = (path: string, ...options: string[]) => [
    ...options,
    '--cacert',
    ca.certFile,
    '--resolve',
    `localhost:${gw.port}:127.0.0.1`,
    '--write-out',
    '\n%{http_version} %{http_code}',
    `https://localhost:${gw.port}${path}`,
  ];

  it('serves curl --http2 with the certificate the test made', async () => {
    const out = await curl(curlArgs('/public?via=curl', '--http2', '--silent', '--show-error'));
    const lines = out.trim().split('\n');
    assert.equal(lines.at(-1), '2 200');
    assert.equal(JSON.parse(lines[0]!).url, '/public?via=curl');
  });

  it('answers curl --http2 the same path refusal as HTTP/1.1', async () => {
    const args = (extra: string[]) =>
      curlArgs('/public/%2e%2e/%2e%2e/etc/passwd', ...extra, '--silent', '--path-as-is');
    const h2 = (await curl(args(['--http2']))).trim().split('\n');
    const h1 = (await curl(args(['--http1.1']))).trim().split('\n');
    assert.equal(h2.at(-1)!.split(' ')[0], '2');
    assert.equal(h1.at(-1)!.split(' ')[0], '1.1');
    assert.equal(h2.at(-1)!.split(' ')[1], h1.at(-1)!.split(' ')[1]);
    assert.deepEqual(problemOf(h2[0]!), problemOf(h1[0]!));
  });

  it('still serves HTTP/1.1 on the same TLS port, to clients that offer both and to those without ALPN', async () => {
    const h1 = await h1Request(gw.port, ca.cert, '/public?via=h1');
    assert.equal(h1.status, 200);
    const noAlpn = await new Promise<string | false>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: gw.port, servername: 'localhost', ca: ca.cert }, () => {
        resolve(s.alpnProtocol ?? false);
        s.destroy();
      });
      s.on('error', reject);
    });
    assert.equal(noAlpn, false);
    const both = await new Promise<string | false>((resolve, reject) => {
      const s = tlsConnect(
        {
          host: '127.0.0.1',
          port: gw.port,
          servername: 'localhost',
          ca: ca.cert,
          ALPNProtocols: ['h2', 'http/1.1'],
        },
        () => {
          resolve(s.alpnProtocol ?? false);
          s.destroy();
        },
      );
      s.on('error', reject);
    });
    assert.equal(both, 'h2');
  });

  it('counts HTTP/2 connections and streams in the metrics', async () => {
    const res = await fetch(`${gw.adminUrl}/metrics`);
    const text = await res.text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? '0');
    assert.ok(value('portcullis_http2_connections_total') >= 1);
    assert.ok(value('portcullis_http2_streams_total') >= 5);
    assert.match(text, /portcullis_http2_limited_total\{kind="rapid_reset"\}/);
  });
});

describe('HTTP/2 turned off', () => {
  let pki: TempPki;
  let gw: TestGateway;
  let ca: PemFiles;

  before(async () => {
    let server: PemFiles;
    ({ pki, ca, server } = await serverPki('server-ca'));
    gw = await startTestGateway({
      listen: { tls: { certificates: certificatesOf(server), http2: { enabled: false } } },
      upstreams: { app: { url: 'http://127.0.0.1:9' } },
      routes: [{ path: '/public', methods: ['GET'], upstream: 'app', auth: 'none' }],
    });
  });

  after(async () => {
    await gw.close();
    pki.cleanup();
  });

  it('refuses a client that speaks only h2 in the handshake, and serves HTTP/1.1', async () => {
    await assert.rejects(openSession(gw.port, ca.cert), {
      code: 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL',
    });
    const h1 = await h1Request(gw.port, ca.cert, '/nowhere');
    assert.equal(h1.status, 404);
  });
});

describe('a shutdown drain with HTTP/2 clients connected', () => {
  it('sends GOAWAY to an open HTTP/2 connection and finishes, instead of waiting on it', async () => {
    const { pki, ca, server } = await serverPki('server-ca');
    try {
      const upstream = await startUpstream();
      const gw = await startTestGateway({
        listen: { tls: { certificates: certificatesOf(server) } },
        upstreams: { app: { url: upstream.url } },
        routes: [{ path: '/public', methods: ['GET'], upstream: 'app', auth: 'none' }],
      });
      const session = await openSession(gw.port, ca.cert);
      const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
      assert.equal((await h2Request(session, '/public')).status, 200);
      await gw.close();
      await goaway;
      await new Promise<void>((resolve) =>
        session.closed ? resolve() : session.once('close', () => resolve()),
      );
      await upstream.close();
    } finally {
      pki.cleanup();
    }
  });
});

describe('client certificates over HTTP/2', () => {
  let pki: TempPki;
  let serverCa: PemFiles;
  let partner: PemFiles;
  let upstream: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    let server: PemFiles;
    ({ pki, ca: serverCa, server } = await serverPki('server-ca'));
    const clientCa = await pki.ca('client-ca');
    partner = await pki.leaf('partner', { ca: clientCa, commonName: 'partner-a', usage: 'client', days: 30 });
    upstream = await startUpstream();
    gw = await startTestGateway({
      listen: {
        tls: {
          certificates: certificatesOf(server),
          client_auth: { mode: 'optional', ca: [clientCa.certFile], principal: 'subject' },
        },
      },
      upstreams: { app: { url: upstream.url } },
      routes: [
        {
          path: '/partners',
          methods: ['GET'],
          upstream: 'app',
          auth: ['mtls'],
          mtls: 'required',
          authorize: 'any-authenticated',
        },
      ],
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
    pki.cleanup();
  });

  it('maps the certificate of an HTTP/2 connection to the principal, and refuses a connection without one', async () => {
    const { connect } = await import('node:http2');
    const withCert = connect(`https://localhost:${gw.port}`, {
      ca: serverCa.cert,
      cert: partner.cert,
      key: partner.key,
      host: '127.0.0.1',
      servername: 'localhost',
    });
    withCert.on('error', () => {});
    try {
      const ok = await h2Request(withCert, '/partners');
      assert.equal(ok.status, 200);
      assert.equal(upstream.requests.at(-1)!.headers['x-portcullis-subject'], 'partner-a');
    } finally {
      withCert.close();
    }
    const anonymous = await openSession(gw.port, serverCa.cert);
    try {
      const refused = await h2Request(anonymous, '/partners');
      assert.equal(refused.status, 401);
      assert.match(refused.body, /auth\.client_certificate_required/);
    } finally {
      anonymous.close();
    }
  });
});
