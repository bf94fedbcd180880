import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { checkExpiry } from './certificates.js';
import { createCertificateAuthority, DEV_CA_ORGANIZATION, issueCertificate } from './dev-cert.js';
import { createHttpsServer, TlsStartError } from './listener.js';
import { registerCertificateMetrics } from './metrics.js';
import { runOpenssl } from './openssl.js';
import {
  captureLogger,
  handshake,
  listenerSettings,
  requestOn,
  startListener,
  tlsGet,
} from './test-support/clients.js';
import { createTempPki, type PemFiles, type TempPki } from './test-support/pki.js';
import type { CertificateSource } from './types.js';

const source = (f: PemFiles, extra: Partial<CertificateSource> = {}): CertificateSource => ({
  cert: f.certFile,
  key: f.keyFile,
  passphrase: undefined,
  names: undefined,
  ...extra,
});

describe('certificates on the HTTPS listener', () => {
  let pki: TempPki;
  let ca: PemFiles;
  let first: PemFiles;
  let api: PemFiles;
  let wildcard: PemFiles;

  before(async () => {
    pki = createTempPki();
    ca = await pki.ca('sni-ca');
    const leaf = (name: string, dns: string[]) =>
      pki.leaf(name, { ca, commonName: dns[0]!, dns, usage: 'server', days: 30 });
    [first, api, wildcard] = await Promise.all([
      leaf('default', ['localhost']),
      leaf('api', ['api.example.test']),
      leaf('wildcard', ['*.apps.example.test']),
    ]);
  });

  after(() => pki?.cleanup());

  describe('selection by SNI', () => {
    let running: Awaited<ReturnType<typeof startListener>>;
    before(async () => {
      running = await startListener(listenerSettings([source(first), source(api), source(wildcard)]));
    });
    after(() => running.close());

    const served = async (servername: string | undefined) => {
      const h = await handshake({
        port: running.port,
        ca: ca.cert,
        ...(servername === undefined ? {} : { servername }),
        rejectUnauthorized: false,
      });
      h.socket.destroy();
      return h.certificate!.fingerprint256;
    };
    const fp = (f: PemFiles) => new X509Certificate(f.cert).fingerprint256;

    it('serves the certificate whose name the client asks for', async () => {
      assert.equal(await served('api.example.test'), fp(api));
      assert.equal(await served('API.Example.Test'), fp(api));
    });

    it('serves a wildcard certificate for one label below its domain, not two', async () => {
      assert.equal(await served('shop.apps.example.test'), fp(wildcard));
      assert.equal(await served('a.b.apps.example.test'), fp(first));
      assert.equal(await served('apps.example.test'), fp(first));
    });

    it('serves the first certificate for an unknown name and for no SNI at all', async () => {
      assert.equal(await served('attacker.example'), fp(first));
      assert.equal(await served(undefined), fp(first));
    });

    it('a verifying client accepts the right certificate and refuses the default one for a wrong name', async () => {
      const ok = await tlsGet({ port: running.port, ca: ca.cert, servername: 'api.example.test' });
      assert.equal(ok.status, 200);
      await assert.rejects(
        tlsGet({ port: running.port, ca: ca.cert, servername: 'other.example.test' }),
        /altnames|ERR_TLS_CERT_ALTNAME_INVALID/,
      );
    });

    it('lists what it serves with names and expiry', () => {
      const infos = running.listener.certificates();
      assert.deepEqual(
        infos.map((i) => i.names),
        [['localhost'], ['api.example.test'], ['*.apps.example.test']],
      );
      assert.ok(infos.every((i) => i.notAfter.getTime() > Date.now() && !i.selfSigned && !i.developmentCa));
    });
  });

  describe('reload', () => {
    it('new connections get the new certificate while an open connection finishes on the old one', async () => {
      const live = pki.save('live', first);
      const running = await startListener(listenerSettings([source(live)]));
      try {
        const old = await handshake({ port: running.port, ca: ca.cert, servername: 'localhost' });
        assert.equal((await requestOn(old.socket, '/before')).body, 'ok /before');

        const next = await issueCertificate({
          ca,
          commonName: 'localhost',
          dns: ['localhost'],
          usage: 'server',
          days: 60,
        });
        writeFileSync(live.keyFile, next.key);
        writeFileSync(live.certFile, next.cert);
        const infos = await running.listener.reload();
        assert.equal(infos[0]!.fingerprint256, new X509Certificate(next.cert).fingerprint256);

        const fresh = await handshake({ port: running.port, ca: ca.cert, servername: 'localhost' });
        assert.equal(fresh.certificate!.fingerprint256, new X509Certificate(next.cert).fingerprint256);
        fresh.socket.destroy();

        // The kept-open connection still works, on the certificate it started with.
        assert.equal((await requestOn(old.socket, '/after')).body, 'ok /after');
        assert.equal(old.certificate!.fingerprint256, new X509Certificate(live.cert).fingerprint256);
        old.socket.destroy();
      } finally {
        await running.close();
      }
    });

    it('clients without SNI get the new certificate too', async () => {
      const live = pki.save('live-nosni', first);
      const running = await startListener(listenerSettings([source(live)]));
      try {
        const next = await issueCertificate({
          ca,
          commonName: 'localhost',
          dns: ['localhost'],
          usage: 'server',
          days: 60,
        });
        writeFileSync(live.keyFile, next.key);
        writeFileSync(live.certFile, next.cert);
        await running.listener.reload();
        const h = await handshake({ port: running.port, rejectUnauthorized: false });
        h.socket.destroy();
        assert.equal(h.certificate!.fingerprint256, new X509Certificate(next.cert).fingerprint256);
      } finally {
        await running.close();
      }
    });

    it('picks up files replaced by rename when watching, without any signal', async () => {
      const live = pki.save('watched', first);
      const running = await startListener(listenerSettings([source(live)], { watch: true }), undefined, {
        debounceMs: 50,
      });
      try {
        const next = await issueCertificate({
          ca,
          commonName: 'localhost',
          dns: ['localhost'],
          usage: 'server',
          days: 60,
        });
        const want = new X509Certificate(next.cert).fingerprint256;
        writeFileSync(`${live.keyFile}.new`, next.key);
        writeFileSync(`${live.certFile}.new`, next.cert);
        renameSync(`${live.keyFile}.new`, live.keyFile);
        renameSync(`${live.certFile}.new`, live.certFile);
        let seen = '';
        for (let i = 0; i < 50 && seen !== want; i++) {
          await sleep(100);
          const h = await handshake({ port: running.port, ca: ca.cert, servername: 'localhost' });
          h.socket.destroy();
          seen = h.certificate!.fingerprint256;
        }
        assert.equal(seen, want);
        assert.ok(running.lines.some((l) => l.msg === 'TLS certificates reloaded'));
      } finally {
        await running.close();
      }
    });

    it('refuses a reload whose key does not match, and keeps serving the previous certificate', async () => {
      const live = pki.save('mismatch', first);
      const running = await startListener(listenerSettings([source(live)]));
      try {
        copyFileSync(api.keyFile, live.keyFile);
        await assert.rejects(running.listener.reload(), /does not belong to the certificate/);
        const r = await tlsGet({ port: running.port, ca: ca.cert, servername: 'localhost' });
        assert.equal(r.status, 200);
        assert.equal(r.certificate!.fingerprint256, new X509Certificate(first.cert).fingerprint256);
      } finally {
        await running.close();
      }
    });

    it('keeps session resumption across a certificate reload, and a ticket key rotation ends it', async () => {
      const live = pki.save('tickets', first);
      const running = await startListener(listenerSettings([source(live)]));
      const connect = async (session?: Buffer) => {
        const h = await handshake({
          port: running.port,
          ca: ca.cert,
          servername: 'localhost',
          maxVersion: 'TLSv1.2',
          ...(session ? { session } : {}),
        });
        const ticket = h.socket.getSession();
        const reused = h.socket.isSessionReused();
        h.socket.destroy();
        return { ticket: ticket!, reused };
      };
      try {
        const { ticket } = await connect();
        assert.equal((await connect(ticket)).reused, true);
        await running.listener.reload();
        assert.equal((await connect(ticket)).reused, true);
        running.listener.rotateTicketKeys();
        assert.equal((await connect(ticket)).reused, false);
      } finally {
        await running.close();
      }
    });
  });

  describe('keys and passphrases', () => {
    it('loads an encrypted key with its passphrase, and says which file fails without it', async () => {
      const encrypted = await runOpenssl(
        ['pkey', '-in', first.keyFile, '-aes-256-cbc', '-passout', 'pass:correct horse'],
        {},
      );
      const keyFile = join(pki.dir, 'encrypted.key');
      writeFileSync(keyFile, encrypted, { mode: 0o600 });
      const { logger } = captureLogger();
      const ok = createHttpsServer(
        listenerSettings([
          { cert: first.certFile, key: keyFile, passphrase: 'correct horse', names: undefined },
        ]),
        () => {},
        logger,
      );
      ok.close();
      assert.throws(
        () =>
          createHttpsServer(
            listenerSettings([
              { cert: first.certFile, key: keyFile, passphrase: undefined, names: undefined },
            ]),
            () => {},
            logger,
          ),
        (err: Error) => err instanceof TlsStartError && /encrypted and no passphrase/.test(err.message),
      );
      assert.throws(
        () =>
          createHttpsServer(
            listenerSettings([{ cert: first.certFile, key: keyFile, passphrase: 'wrong', names: undefined }]),
            () => {},
            logger,
          ),
        (err: Error) => /passphrase is wrong/.test(err.message) && !err.message.includes('wrong"'),
      );
    });

    it('names a missing file', () => {
      const { logger } = captureLogger();
      assert.throws(
        () =>
          createHttpsServer(
            listenerSettings([
              { cert: '/nonexistent/x.crt', key: first.keyFile, passphrase: undefined, names: undefined },
            ]),
            () => {},
            logger,
          ),
        /cannot read the certificate file \/nonexistent\/x\.crt \(ENOENT\)/,
      );
    });
  });

  describe('self-signed and development certificates', () => {
    let selfSigned: PemFiles;
    let devIssued: PemFiles;

    before(async () => {
      selfSigned = pki.save(
        'self-signed',
        await issueCertificate({ commonName: 'localhost', dns: ['localhost'], usage: 'server', days: 30 }),
      );
      const devCa = await createCertificateAuthority({
        organization: DEV_CA_ORGANIZATION,
        commonName: 'dev',
        days: 30,
      });
      devIssued = pki.save(
        'dev-issued',
        await issueCertificate({
          ca: devCa,
          commonName: 'localhost',
          dns: ['localhost'],
          usage: 'server',
          days: 30,
        }),
      );
    });

    it('production refuses to start with a self-signed or development-CA certificate', () => {
      const { logger } = captureLogger();
      for (const f of [selfSigned, devIssued]) {
        assert.throws(
          () => createHttpsServer(listenerSettings([source(f)], { selfSigned: 'refuse' }), () => {}, logger),
          (err: Error) => err instanceof TlsStartError && /allow_insecure\.self_signed/.test(err.message),
        );
      }
    });

    it('production starts with a CA-issued certificate (the legitimate case)', () => {
      const { logger } = captureLogger();
      createHttpsServer(
        listenerSettings([source(first)], { selfSigned: 'refuse' }),
        () => {},
        logger,
      ).close();
    });

    it('with allow_insecure.self_signed it starts and warns', () => {
      const { logger, lines } = captureLogger();
      createHttpsServer(
        listenerSettings([source(selfSigned)], { selfSigned: 'warn' }),
        () => {},
        logger,
      ).close();
      assert.ok(lines.some((l) => l.level === 'warn' && /self-signed/.test(String(l.msg))));
    });

    it('production refuses a reload to a self-signed certificate and keeps the good one', async () => {
      const live = pki.save('prod-live', first);
      const running = await startListener(listenerSettings([source(live)], { selfSigned: 'refuse' }));
      try {
        copyFileSync(selfSigned.keyFile, live.keyFile);
        copyFileSync(selfSigned.certFile, live.certFile);
        await assert.rejects(running.listener.reload(), /self-signed/);
        assert.equal(
          running.listener.certificates()[0]!.fingerprint256,
          new X509Certificate(first.cert).fingerprint256,
        );
      } finally {
        await running.close();
      }
    });
  });

  describe('expiry', () => {
    it('is ready while certificates are valid, and not ready once one has expired', async () => {
      const { logger } = captureLogger();
      let now = Date.now();
      const l = createHttpsServer(
        listenerSettings([source(first)], { expiryWarningMs: 7 * 86_400_000 }),
        () => {},
        logger,
        { now: () => now },
      );
      try {
        await l.readinessCheck();
        assert.deepEqual(
          l.report().map((r) => r.status),
          ['ok'],
        );
        now = l.certificates()[0]!.notAfter.getTime() - 86_400_000;
        assert.equal(l.report()[0]!.status, 'expiring');
        assert.equal(l.report()[0]!.days_left, 1);
        await l.readinessCheck();
        now = l.certificates()[0]!.notAfter.getTime() + 1000;
        await assert.rejects(l.readinessCheck(), /TLS certificate expired: localhost/);
        assert.equal(l.report()[0]!.status, 'expired');
      } finally {
        l.close();
      }
    });

    it('warns at start when a certificate expires within the warning window', () => {
      const { logger, lines } = captureLogger();
      createHttpsServer(
        listenerSettings([source(first)], { expiryWarningMs: 60 * 86_400_000 }),
        () => {},
        logger,
      ).close();
      const warning = lines.find((l) => l.msg === 'TLS certificate expires soon; renew it');
      assert.ok(warning);
      assert.equal(warning.name, 'localhost');
      const quiet = captureLogger();
      createHttpsServer(
        listenerSettings([source(first)], { expiryWarningMs: 86_400_000 }),
        () => {},
        quiet.logger,
      ).close();
      assert.ok(!quiet.lines.some((l) => l.msg === 'TLS certificate expires soon; renew it'));
    });

    it('sorts certificates into expired and expiring soon', () => {
      const info = (days: number) => ({ notAfter: new Date(Date.now() + days * 86_400_000) }) as never;
      const r = checkExpiry([info(-1), info(5), info(90)], Date.now(), 30 * 86_400_000);
      assert.equal(r.expired.length, 1);
      assert.equal(r.expiringSoon.length, 1);
    });

    it('exports each certificate expiry as a Prometheus gauge', async () => {
      const { logger } = captureLogger();
      const l = createHttpsServer(listenerSettings([source(first), source(api)]), () => {}, logger);
      try {
        const registry = new Registry();
        registerCertificateMetrics(registry, () => l.certificates());
        const text = await registry.metrics();
        const expected = Math.floor(new Date(new X509Certificate(api.cert).validTo).getTime() / 1000);
        assert.match(
          text,
          new RegExp(
            `portcullis_tls_certificate_expiry_timestamp_seconds\\{name="api.example.test",file="[^"]+"\\} ${expected}`,
          ),
        );
      } finally {
        l.close();
      }
    });
  });
});
