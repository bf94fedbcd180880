import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createServer } from 'node:tls';
import {
  handshake,
  listenerSettings,
  type RunningListener,
  sClient,
  startListener,
} from './test-support/clients.js';
import { createTempPki, type PemFiles, type TempPki } from './test-support/pki.js';

/** Not connected, and the server said so with an alert (not the client giving up on its own). */
function refusedByServer(r: { connected: boolean; output: string }): void {
  assert.equal(r.connected, false, r.output);
  assert.match(r.output, /alert (protocol version|handshake failure)/, r.output);
}

describe('the TLS profiles against real clients', () => {
  let pki: TempPki;
  let ca: PemFiles;
  let rsa: PemFiles;
  let intermediate: RunningListener;
  let modern: RunningListener;
  let http1Only: RunningListener;

  before(async () => {
    pki = createTempPki();
    ca = await pki.ca('profile-ca', 'rsa');
    // RSA, so the ECDHE-RSA and plain-RSA suites are the ones on trial.
    rsa = await pki.leaf('server', {
      ca,
      commonName: 'localhost',
      dns: ['localhost'],
      usage: 'server',
      days: 30,
      keyType: 'rsa',
    });
    const certs = [{ cert: rsa.certFile, key: rsa.keyFile, passphrase: undefined, names: undefined }];
    intermediate = await startListener(listenerSettings(certs));
    modern = await startListener(listenerSettings(certs, { profile: 'modern' }));
    http1Only = await startListener(listenerSettings(certs, { http2: undefined }));
  });

  after(async () => {
    await intermediate?.close();
    await modern?.close();
    await http1Only?.close();
    pki?.cleanup();
  });

  describe('openssl s_client', () => {
    // SECLEVEL=0 lets the client offer old protocols and suites, so a refusal is the server's.
    const old = ['-cipher', 'DEFAULT:@SECLEVEL=0'];

    it('refuses TLS 1.0', async () => {
      const r = await sClient(intermediate.port, ['-tls1', ...old]);
      refusedByServer(r);
    });

    it('refuses TLS 1.1', async () => {
      const r = await sClient(intermediate.port, ['-tls1_1', ...old]);
      refusedByServer(r);
    });

    it('refuses TLS 1.2 with a CBC suite (ECDHE-RSA-AES128-SHA)', async () => {
      const r = await sClient(intermediate.port, ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-SHA']);
      refusedByServer(r);
    });

    it('refuses TLS 1.2 with a suite without forward secrecy (AES128-GCM-SHA256, RSA key exchange)', async () => {
      const r = await sClient(intermediate.port, ['-tls1_2', '-cipher', 'AES128-GCM-SHA256']);
      refusedByServer(r);
    });

    it('refuses the classic AES128-SHA (RSA key exchange and CBC)', async () => {
      const r = await sClient(intermediate.port, ['-tls1_2', '-cipher', 'AES128-SHA']);
      refusedByServer(r);
    });

    it('accepts TLS 1.2 with ECDHE-RSA-AES128-GCM-SHA256', async () => {
      const r = await sClient(intermediate.port, ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256']);
      assert.equal(r.protocol, 'TLSv1.2', r.output);
      assert.equal(r.cipher, 'ECDHE-RSA-AES128-GCM-SHA256');
    });

    it('accepts TLS 1.2 with ECDHE-RSA-CHACHA20-POLY1305', async () => {
      const r = await sClient(intermediate.port, ['-tls1_2', '-cipher', 'ECDHE-RSA-CHACHA20-POLY1305']);
      assert.equal(r.cipher, 'ECDHE-RSA-CHACHA20-POLY1305', r.output);
    });

    it('accepts TLS 1.3, and prefers it when the client allows both', async () => {
      assert.equal((await sClient(intermediate.port, ['-tls1_3'])).protocol, 'TLSv1.3');
      assert.equal((await sClient(intermediate.port, [])).protocol, 'TLSv1.3');
    });

    it('the modern profile refuses TLS 1.2 even with a strong suite, and accepts TLS 1.3', async () => {
      const r12 = await sClient(modern.port, ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256']);
      refusedByServer(r12);
      assert.equal((await sClient(modern.port, ['-tls1_3'])).protocol, 'TLSv1.3');
    });

    it('the same client command reaches TLS 1.0 on a permissive server (so the refusals above are ours)', async () => {
      const permissive = createServer({
        cert: rsa.cert,
        key: rsa.key,
        minVersion: 'TLSv1',
        ciphers: 'DEFAULT:@SECLEVEL=0',
      });
      await new Promise<void>((resolve) => permissive.listen(0, '127.0.0.1', resolve));
      try {
        const r = await sClient((permissive.address() as AddressInfo).port, ['-tls1', ...old]);
        assert.equal(r.protocol, 'TLSv1', r.output);
      } finally {
        permissive.close();
      }
    });
  });

  describe("Node's tls client", () => {
    const base = () => ({ port: intermediate.port, servername: 'localhost', ca: ca.cert });

    it('refuses TLS 1.0 and 1.1', async () => {
      for (const v of ['TLSv1', 'TLSv1.1'] as const) {
        await assert.rejects(
          handshake({ ...base(), minVersion: v, maxVersion: v, ciphers: 'DEFAULT:@SECLEVEL=0' }),
          { code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' },
          v,
        );
      }
    });

    it('refuses a CBC suite and a suite without forward secrecy', async () => {
      for (const ciphers of ['ECDHE-RSA-AES256-SHA384', 'AES256-GCM-SHA384']) {
        await assert.rejects(
          handshake({ ...base(), maxVersion: 'TLSv1.2', ciphers }),
          { code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' },
          ciphers,
        );
      }
    });

    it('accepts TLS 1.2 with ECDHE and AES-GCM', async () => {
      const h = await handshake({ ...base(), maxVersion: 'TLSv1.2' });
      h.socket.destroy();
      assert.equal(h.protocol, 'TLSv1.2');
      assert.match(h.cipher, /^ECDHE-RSA-AES128-GCM-SHA256$/);
    });

    it('accepts TLS 1.3 with TLS_AES_128_GCM_SHA256 first', async () => {
      const h = await handshake(base());
      h.socket.destroy();
      assert.equal(h.protocol, 'TLSv1.3');
      assert.equal(h.cipher, 'TLS_AES_128_GCM_SHA256');
    });

    it('negotiates ALPN h2 when the client offers it, and http/1.1 when it offers only that', async () => {
      const h = await handshake({ ...base(), ALPNProtocols: ['h2', 'http/1.1'] });
      h.socket.destroy();
      assert.equal(h.socket.alpnProtocol, 'h2');
      const h1 = await handshake({ ...base(), ALPNProtocols: ['http/1.1'] });
      h1.socket.destroy();
      assert.equal(h1.socket.alpnProtocol, 'http/1.1');
    });

    it('with HTTP/2 off, negotiates http/1.1 and refuses a client that speaks only h2', async () => {
      const port = http1Only.port;
      const h = await handshake({ ...base(), port, ALPNProtocols: ['h2', 'http/1.1'] });
      h.socket.destroy();
      assert.equal(h.socket.alpnProtocol, 'http/1.1');
      await assert.rejects(handshake({ ...base(), port, ALPNProtocols: ['h2'] }), {
        code: 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL',
      });
    });

    it('refuses a client-initiated renegotiation on TLS 1.2', async () => {
      const h = await handshake({ ...base(), maxVersion: 'TLSv1.2' });
      const refused = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 3000);
        h.socket.once('error', () => {
          clearTimeout(timer);
          resolve(true);
        });
        h.socket.once('close', () => {
          clearTimeout(timer);
          resolve(true);
        });
        h.socket.renegotiate({}, (err) => {
          clearTimeout(timer);
          resolve(err !== null);
        });
      });
      h.socket.destroy();
      assert.equal(refused, true);
    });

    it("the same renegotiation succeeds on a server with Node's defaults (so the refusal above is ours)", async () => {
      const plain = createServer({ cert: rsa.cert, key: rsa.key });
      await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
      try {
        const h = await handshake({
          ...base(),
          port: (plain.address() as AddressInfo).port,
          maxVersion: 'TLSv1.2',
        });
        const err = await new Promise<Error | null>((resolve) => h.socket.renegotiate({}, resolve));
        h.socket.destroy();
        assert.equal(err, null);
      } finally {
        plain.close();
      }
    });
  });
});
