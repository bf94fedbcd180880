/** HTTPS, HSTS, the redirect listener and mutual TLS through a real gateway. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { tlsGet } from './test-support/clients.js';
import { createTempPki, type PemFiles, type TempPki } from './test-support/pki.js';

describe('the gateway over HTTPS', () => {
  let pki: TempPki;
  let serverCa: PemFiles;
  let clientCa: PemFiles;
  let otherCa: PemFiles;
  let goodClient: PemFiles;
  let strangerClient: PemFiles;
  let upstream: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    pki = createTempPki();
    serverCa = await pki.ca('server-ca');
    clientCa = await pki.ca('client-ca');
    otherCa = await pki.ca('other-ca');
    const server = await pki.leaf('server', {
      ca: serverCa,
      commonName: 'localhost',
      dns: ['localhost'],
      ip: ['127.0.0.1'],
      usage: 'server',
      days: 30,
    });
    goodClient = await pki.leaf('partner', {
      ca: clientCa,
      commonName: 'partner-a',
      usage: 'client',
      days: 30,
    });
    strangerClient = await pki.leaf('stranger', {
      ca: otherCa,
      commonName: 'partner-a',
      usage: 'client',
      days: 30,
    });
    upstream = await startUpstream();
    gw = await startTestGateway({
      listen: {
        tls: {
          certificates: [{ cert: server.certFile, key: server.keyFile }],
          client_auth: { mode: 'optional', ca: [clientCa.certFile], principal: 'subject' },
        },
        http_redirect: { port: 0 },
      },
      upstreams: { app: { url: upstream.url } },
      routes: [
        { path: '/public', methods: ['GET'], upstream: 'app', auth: 'none' },
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

  const connect = (extra: Record<string, unknown> = {}) => ({
    host: '127.0.0.1',
    port: gw.port,
    servername: 'localhost',
    ca: serverCa.cert,
    ...extra,
  });

  it('serves a public route over TLS with HSTS on every response', async () => {
    const ok = await tlsGet(connect(), '/public');
    assert.equal(ok.status, 200);
    const { requestOn, handshake } = await import('./test-support/clients.js');
    const h = await handshake(connect());
    try {
      const res = await requestOn(h.socket, '/public');
      assert.match(res.headers['strict-transport-security'] ?? '', /max-age=\d+/);
      const missing = await requestOn(h.socket, '/nowhere');
      assert.equal(missing.status, 404);
      assert.match(missing.headers['strict-transport-security'] ?? '', /max-age=\d+/);
    } finally {
      h.socket.destroy();
    }
  });

  it('only redirects on plain HTTP, and never serves the API there', async () => {
    const reply = await send(`http://127.0.0.1:${gw.running.redirectPort}`, '/public?x=1', {
      headers: { host: 'localhost' },
    });
    assert.equal(reply.status, 308);
    assert.equal(reply.headers.location, `https://localhost:${gw.port}/public?x=1`);
    assert.equal(reply.headers['strict-transport-security'], undefined);
    assert.equal(upstream.requests.filter((r) => r.url === '/public?x=1').length, 0);
  });

  it('refuses a route that requires a client certificate to a client without one', async () => {
    const res = await tlsGet(connect(), '/partners');
    assert.equal(res.status, 401);
    assert.match(res.body, /auth\.client_certificate_required/);
  });

  it('refuses a certificate from another CA with the same subject', async () => {
    const res = await tlsGet(
      connect({ cert: strangerClient.cert, key: strangerClient.key }),
      '/partners',
    ).catch((err: Error) => ({ status: 0, body: err.message }));
    assert.notEqual(res.status, 200);
  });

  it('maps a good client certificate to the principal the upstream sees', async () => {
    const res = await tlsGet(connect({ cert: goodClient.cert, key: goodClient.key }), '/partners');
    assert.equal(res.status, 200);
    const seen = upstream.requests.at(-1)!.headers;
    assert.equal(seen['x-portcullis-auth'], 'mtls');
    assert.equal(seen['x-portcullis-subject'], 'partner-a');
  });
});
