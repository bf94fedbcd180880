import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { rawStatus, send, sendRaw } from '../test-support/http.js';
import { createRedirectServer, hstsHeaderValue, parseHostHeader, redirectLocation } from './listener.js';
import { handshake, listenerSettings, requestOn, startListener } from './test-support/clients.js';
import { createTempPki, type TempPki } from './test-support/pki.js';

describe('the plain-HTTP redirect listener', () => {
  let server: Server;
  let base: string;
  let port: number;

  before(async () => {
    server = createRedirectServer({ httpsPort: 8443 });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
  });

  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('answers a request for the API with 308 to the same path and query on HTTPS, and nothing else', async () => {
    const r = await send(base, '/users/1/orders?limit=5', { headers: { host: 'api.example.test' } });
    assert.equal(r.status, 308);
    assert.equal(r.headers.location, 'https://api.example.test:8443/users/1/orders?limit=5');
    assert.equal(r.body, '');
    assert.equal(r.headers['strict-transport-security'], undefined);
  });

  it('redirects a POST with 308, so the client repeats the method and body over HTTPS', async () => {
    const r = await send(base, '/orders', {
      method: 'POST',
      headers: { host: 'localhost:80' },
      body: '{"a":1}',
    });
    assert.equal(r.status, 308);
    assert.equal(r.headers.location, 'https://localhost:8443/orders');
  });

  it('keeps IPv6 literals and drops the port the client used', async () => {
    const r = await send(base, '/x', { headers: { host: '[::1]:8080' } });
    assert.equal(r.headers.location, 'https://[::1]:8443/x');
  });

  it('refuses a Host that could inject another URL or a header, without a Location', async () => {
    for (const host of [
      'evil.test/@good.test',
      'good.test:80@evil.test',
      'a b',
      'évil.test',
      '[::1',
      'x:abc',
    ]) {
      const raw = await sendRaw(port, `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      assert.equal(rawStatus(raw), 400, host);
      assert.doesNotMatch(raw, /^location:/im, host);
    }
  });

  it('refuses a missing Host and an absolute-form or asterisk target', async () => {
    const noHost = await sendRaw(port, 'GET / HTTP/1.0\r\n\r\n');
    assert.equal(rawStatus(noHost), 400);
    const absolute = await sendRaw(port, 'GET http://evil.test/ HTTP/1.1\r\nHost: good.test\r\n\r\n');
    assert.equal(rawStatus(absolute), 400);
    const star = await sendRaw(port, 'OPTIONS * HTTP/1.1\r\nHost: good.test\r\n\r\n');
    assert.equal(rawStatus(star), 400);
  });

  it('percent-encodes what is not safe in a Location', () => {
    assert.equal(
      redirectLocation('good.test', '/a"b<c>\u00e9?q=`x`', { httpsPort: 443 }),
      'https://good.test/a%22b%3Cc%3E%E9?q=%60x%60',
    );
    assert.equal(
      redirectLocation('good.test', '/%2e%2E/%zz', { httpsPort: 443 }),
      'https://good.test/%2e%2E/%25zz',
    );
  });

  it('a protocol-relative-looking path stays a path on the same host', () => {
    assert.equal(
      redirectLocation('good.test', '//evil.test/x', { httpsPort: 443 }),
      'https://good.test//evil.test/x',
    );
  });

  it('redirects to the canonical host when one is configured, whatever Host says', () => {
    assert.equal(
      redirectLocation('evil.test', '/x', { httpsPort: 443, canonicalHost: 'api.example.test' }),
      'https://api.example.test/x',
    );
  });

  it('parses Host headers strictly', () => {
    assert.equal(parseHostHeader('API.Example.Test.'), 'api.example.test');
    assert.equal(parseHostHeader('127.0.0.1:8080'), '127.0.0.1');
    assert.equal(parseHostHeader('[fe80::1]'), '[fe80::1]');
    assert.equal(parseHostHeader('[not-ipv6]'), undefined);
    assert.equal(parseHostHeader('-bad.test'), undefined);
    assert.equal(parseHostHeader(`${'a'.repeat(64)}.test`), undefined);
    assert.equal(parseHostHeader(''), undefined);
  });
});

describe('HSTS', () => {
  it('builds the header from the settings', () => {
    assert.equal(
      hstsHeaderValue({ maxAgeSeconds: 31_536_000, includeSubdomains: true, preload: true }),
      'max-age=31536000; includeSubDomains; preload',
    );
    assert.equal(
      hstsHeaderValue({ maxAgeSeconds: 600, includeSubdomains: false, preload: false }),
      'max-age=600',
    );
  });

  describe('on the HTTPS listener', () => {
    let pki: TempPki;
    before(() => {
      pki = createTempPki();
    });
    after(() => pki.cleanup());

    it('is on HTTPS responses when the handler adds it', async () => {
      const ca = await pki.ca('hsts-ca');
      const leaf = await pki.leaf('hsts', {
        ca,
        commonName: 'localhost',
        dns: ['localhost'],
        usage: 'server',
        days: 5,
      });
      const hsts = { maxAgeSeconds: 31_536_000, includeSubdomains: true, preload: false };
      const settings = listenerSettings(
        [{ cert: leaf.certFile, key: leaf.keyFile, passphrase: undefined, names: undefined }],
        {
          hsts,
        },
      );
      const running = await startListener(settings, (req, res) => {
        const secure = (req.socket as { encrypted?: boolean }).encrypted === true;
        res.writeHead(200, {
          'content-length': 0,
          ...(secure && settings.hsts ? { 'strict-transport-security': hstsHeaderValue(settings.hsts) } : {}),
        });
        res.end();
      });
      try {
        const h = await handshake({ port: running.port, ca: ca.cert, servername: 'localhost' });
        const r = await requestOn(h.socket, '/');
        h.socket.destroy();
        assert.equal(r.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
      } finally {
        await running.close();
      }
    });
  });
});
