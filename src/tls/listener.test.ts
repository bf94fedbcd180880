import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../config/load.js';
import { rawStatus, send, sendRaw } from '../test-support/http.js';
import {
  createRedirectServer,
  hstsHeaderValue,
  parseHostHeader,
  type RedirectServerOptions,
  redirectLocation,
} from './listener.js';
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

describe('the Host allow-list and canonical host on the redirect listener', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-redirect-'));
  const running: Server[] = [];
  after(() => {
    for (const s of running) {
      s.closeAllConnections();
      s.close();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  let n = 0;
  /** Loads a config with the given `listen` additions and `http_redirect` keys (the TLS files are never read). */
  const load = (listenExtra: string, redirectExtra = '') => {
    const file = join(dir, `config-${n++}.yaml`);
    writeFileSync(
      file,
      `listen:
  port: 8443
${listenExtra}
  tls:
    certificates:
      - cert: api.crt
        key: api.key
  http_redirect:
    port: 8080
${redirectExtra}
upstreams:
  app:
    url: http://127.0.0.1:3000
routes:
  - path: /x
    methods: [GET]
    upstream: app
    auth: none
`,
    );
    return loadConfig(file, { env: {} });
  };
  const issuesOf = async (listenExtra: string, redirectExtra = '') => {
    try {
      await load(listenExtra, redirectExtra);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.issues.map((i) => `${i.path}: ${i.message}`);
    }
    assert.fail('the config was accepted');
  };

  /** Starts the redirect listener the way the runtime does, from a loaded config. */
  const start = async (listenExtra: string, redirectExtra = '') => {
    const { config } = await load(listenExtra, redirectExtra);
    const r = config.tls.redirect!;
    const options: RedirectServerOptions = {
      httpsPort: r.httpsPort,
      canonicalHost: r.canonicalHost,
      allowedHosts: config.listen.hosts,
    };
    const server = createRedirectServer(options);
    running.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  };
  const get = (port: number, host: string, path = '/users/1?x=1') =>
    sendRaw(port, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  const assertRefused = (raw: string, label: string) => {
    assert.equal(rawStatus(raw), 400, label);
    assert.doesNotMatch(raw, /^location:/im, label);
    assert.match(raw, /^content-type: application\/problem\+json/im, label);
    assert.match(raw, /"code":"request\.bad_request"/, label);
  };

  it('loads listen.hosts normalized, and leaves it undefined when it is not set', async () => {
    const { config } = await load('  hosts: [API.Example.com., "*.Example.org", "::1", api.example.com]');
    assert.deepEqual(config.listen.hosts, ['api.example.com', '*.example.org', '[::1]']);
    const plain = await load('');
    assert.equal(plain.config.listen.hosts, undefined);
  });

  it('refuses a listen.hosts entry that is not a host name, IP address or one-label wildcard', async () => {
    for (const entry of ['a@b', '"x y"', '"a,b"', 'api.example.com:443', '"*"', 'a.*.example.com', '127.1']) {
      const issues = await issuesOf(`  hosts: [api.example.com, ${entry}]`);
      assert.equal(issues.length, 1, entry);
      assert.match(issues[0]!, /^listen\.hosts\[1\]: expected a host name/, entry);
    }
  });

  it('refuses an empty listen.hosts, which would read as allowing nothing', async () => {
    const issues = await issuesOf('  hosts: []');
    assert.match(issues.join('\n'), /listen\.hosts/);
  });

  it('refuses a canonical host that does not parse or is not on listen.hosts', async () => {
    for (const bad of ['a..example.com', '-a.example.com', '127.1', '0x7f.0.0.1']) {
      const issues = await issuesOf('', `    canonical_host: ${bad}`);
      assert.match(issues.join('\n'), /^listen\.http_redirect\.canonical_host: expected a host name/m, bad);
    }
    const issues = await issuesOf('  hosts: [api.example.com]', '    canonical_host: www.example.com');
    assert.match(issues.join('\n'), /canonical_host: expected a host listen\.hosts allows/);
    const ok = await load('  hosts: ["*.example.com"]', '    canonical_host: WWW.example.com');
    assert.equal(ok.config.tls.redirect!.canonicalHost, 'www.example.com');
  });

  it('answers a Host that is not on listen.hosts with 400, not a redirect', async () => {
    const port = await start('  hosts: [api.example.com]');
    for (const host of ['evil.example', 'evil.example:80', 'example.com', 'x.api.example.com']) {
      assertRefused(await get(port, host), host);
    }
  });

  it('answers a malformed Host with 400 whether or not there is an allow-list', async () => {
    const withList = await start('  hosts: [api.example.com]');
    const without = await start('');
    for (const port of [withList, without]) {
      for (const host of [
        'a@b',
        'x y',
        'a,b',
        'api.example.com@evil.example',
        'api.example.com,evil.example',
      ]) {
        const raw = await get(port, host);
        assert.equal(rawStatus(raw), 400, host);
        assert.doesNotMatch(raw, /^location:/im, host);
        assert.doesNotMatch(raw, /evil/, host);
      }
      for (const host of ['127.1', '017.0.0.1', 'ex%61mple.com', '[fe80::1%25eth0]', 'a_b.example']) {
        assertRefused(await get(port, host), host);
      }
    }
  });

  it('answers two Host headers with 400, even when the first is allowed', async () => {
    const port = await start('  hosts: [api.example.com]');
    const raw = await sendRaw(
      port,
      'GET / HTTP/1.1\r\nHost: api.example.com\r\nHost: evil.example\r\nConnection: close\r\n\r\n',
    );
    assertRefused(raw, 'two Host headers');
  });

  it('redirects an allowed Host to https://that-host:port/path', async () => {
    const port = await start('  hosts: [api.example.com, "*.example.org"]');
    const cases: [string, string][] = [
      ['api.example.com', 'https://api.example.com:8443/users/1?x=1'],
      ['API.Example.Com:8080', 'https://api.example.com:8443/users/1?x=1'],
      ['api.example.com.', 'https://api.example.com:8443/users/1?x=1'],
      ['eu.example.org', 'https://eu.example.org:8443/users/1?x=1'],
    ];
    for (const [host, location] of cases) {
      const raw = await get(port, host);
      assert.equal(rawStatus(raw), 308, host);
      assert.match(raw, new RegExp(`^location: ${location.replace(/[.?]/g, '\\$&')}\r$`, 'im'), host);
    }
  });

  it('always redirects to the canonical host, whatever Host the request names', async () => {
    const port = await start(
      '  hosts: [api.example.com, www.example.com]',
      '    canonical_host: www.example.com',
    );
    for (const host of ['api.example.com', 'evil.example', 'a@b', 'a,b']) {
      const raw = await get(port, host);
      assert.equal(rawStatus(raw), 308, host);
      assert.match(raw, /^location: https:\/\/www\.example\.com:8443\/users\/1\?x=1\r$/im, host);
    }
    const noHost = await sendRaw(port, 'GET /p HTTP/1.0\r\n\r\n');
    assert.match(noHost, /^location: https:\/\/www\.example\.com:8443\/p\r$/im);
  });

  it('refuses to start with a canonical host or an allow-list entry that is not a host name', () => {
    assert.throws(
      () => createRedirectServer({ httpsPort: 443, canonicalHost: 'evil.example/@x' }),
      TypeError,
    );
    assert.throws(
      () => createRedirectServer({ httpsPort: 443, canonicalHost: 'api.example.com:80' }),
      TypeError,
    );
    assert.throws(() => createRedirectServer({ httpsPort: 443, allowedHosts: ['a@b'] }), TypeError);
  });

  it('builds no Location from a Host the allow-list refuses, or from a canonical host with a port', () => {
    const isAllowedHost = (h: string | undefined) => h === 'good.test';
    assert.equal(redirectLocation('evil.test', '/x', { httpsPort: 443, isAllowedHost }), undefined);
    assert.equal(
      redirectLocation('good.test', '/x', { httpsPort: 443, isAllowedHost }),
      'https://good.test/x',
    );
    assert.equal(
      redirectLocation('good.test', '/x', { httpsPort: 443, canonicalHost: 'a.test:1' }),
      undefined,
    );
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
