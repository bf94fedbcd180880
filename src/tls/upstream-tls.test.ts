import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Pool } from 'undici';
import { compileTls } from './schema.js';
import { createTempPki, type PemFiles, type TempPki } from './test-support/pki.js';
import type { UpstreamTlsSettings } from './types.js';
import { spkiSha256, upstreamConnectOptions } from './upstream-tls.js';

const settings = (overrides: Partial<UpstreamTlsSettings> = {}): UpstreamTlsSettings => ({
  verify: true,
  caFile: undefined,
  pinSha256: [],
  clientCertFile: undefined,
  clientKeyFile: undefined,
  clientKeyPassphrase: undefined,
  servername: undefined,
  ...overrides,
});

async function startHttps(
  pair: PemFiles,
  extra: Record<string, unknown> = {},
): Promise<{ server: Server; origin: string }> {
  const server = createServer({ cert: pair.cert, key: pair.key, ...extra }, (req, res) => {
    const peer = (req.socket as import('node:tls').TLSSocket).getPeerX509Certificate?.();
    const body = JSON.stringify({ ok: true, client: peer?.subject ?? null });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `https://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** One GET through an undici Pool built the way the gateway builds it. */
async function fetchThrough(origin: string, s: UpstreamTlsSettings): Promise<Record<string, unknown>> {
  const pool = new Pool(origin, { connect: upstreamConnectOptions(s), connectTimeout: 5000 });
  try {
    const res = await pool.request({ path: '/', method: 'GET' });
    return (await res.body.json()) as Record<string, unknown>;
  } finally {
    await pool.destroy();
  }
}

describe('TLS to upstreams', () => {
  let pki: TempPki;
  let selfSigned: PemFiles;
  let upstreamCa: PemFiles;
  let issued: PemFiles;
  let gatewayClient: PemFiles;
  let plain: { server: Server; origin: string };
  let chained: { server: Server; origin: string };
  let mutual: { server: Server; origin: string };

  before(async () => {
    pki = createTempPki();
    selfSigned = await pki.leaf('self-signed-upstream', {
      commonName: 'upstream',
      dns: ['upstream.internal'],
      ip: ['127.0.0.1'],
      usage: 'server',
      days: 30,
    });
    upstreamCa = await pki.ca('upstream-ca');
    issued = await pki.leaf('issued-upstream', {
      ca: upstreamCa,
      commonName: 'orders.internal',
      dns: ['orders.internal'],
      usage: 'server',
      days: 30,
    });
    gatewayClient = await pki.leaf('gateway-client', {
      ca: upstreamCa,
      commonName: 'portcullis',
      usage: 'client',
      days: 30,
    });
    plain = await startHttps(selfSigned);
    chained = await startHttps(issued);
    mutual = await startHttps(issued, { requestCert: true, rejectUnauthorized: true, ca: upstreamCa.cert });
  });

  after(() => {
    for (const s of [plain, chained, mutual]) s?.server.close();
    pki?.cleanup();
  });

  it('refuses a self-signed upstream by default', async () => {
    await assert.rejects(fetchThrough(plain.origin, settings()), /self[- ]signed|SELF_SIGNED/i);
  });

  it('accepts the self-signed upstream once its certificate is configured as the CA', async () => {
    const r = await fetchThrough(plain.origin, settings({ caFile: selfSigned.certFile }));
    assert.equal(r.ok, true);
  });

  it('accepts a self-signed upstream with verification off, and the config says so with a warning', async () => {
    const r = await fetchThrough(plain.origin, settings({ verify: false }));
    assert.equal(r.ok, true);
    const compiled = compileTls(
      {
        mode: 'development',
        listen: { host: '127.0.0.1' },
        upstreams: { legacy: { url: plain.origin, tls: { verify: false } } },
        routes: [],
      },
      { baseDir: '/' },
    );
    assert.equal(compiled.issues.length, 0);
    assert.deepEqual(
      compiled.warnings.map((w) => w.path.join('.')),
      ['upstreams.legacy.tls.verify'],
    );
    assert.match(compiled.warnings[0]!.message, /verification to upstream legacy is off/);
  });

  it('checks the host name: a certificate from the right CA for another name is refused', async () => {
    // The chained upstream's certificate names orders.internal, not 127.0.0.1.
    await assert.rejects(
      fetchThrough(chained.origin, settings({ caFile: upstreamCa.certFile })),
      /altnames|ALTNAME/i,
    );
    const r = await fetchThrough(
      chained.origin,
      settings({ caFile: upstreamCa.certFile, servername: 'orders.internal' }),
    );
    assert.equal(r.ok, true);
  });

  it('accepts a pinned upstream whose leaf or CA key matches a pin', async () => {
    for (const pin of [
      spkiSha256(new X509Certificate(issued.cert)),
      spkiSha256(new X509Certificate(upstreamCa.cert)),
    ]) {
      const r = await fetchThrough(
        chained.origin,
        settings({ caFile: upstreamCa.certFile, servername: 'orders.internal', pinSha256: [pin] }),
      );
      assert.equal(r.ok, true);
    }
  });

  it('refuses a valid upstream whose key matches no pin', async () => {
    const other = spkiSha256(new X509Certificate(selfSigned.cert));
    await assert.rejects(
      fetchThrough(
        chained.origin,
        settings({ caFile: upstreamCa.certFile, servername: 'orders.internal', pinSha256: [other] }),
      ),
      /matches no pin_sha256/,
    );
  });

  it('computes the same pin as the openssl recipe (pkey -pubin -outform der | sha256 | base64)', async () => {
    const { runOpenssl } = await import('./openssl.js');
    const pub = await runOpenssl(['x509', '-in', issued.certFile, '-pubkey', '-noout']);
    const der = await runOpenssl(['pkey', '-pubin', '-outform', 'der'], { input: pub });
    const digest = await runOpenssl(['dgst', '-sha256', '-binary'], { input: der });
    assert.equal(spkiSha256(new X509Certificate(issued.cert)), digest.toString('base64'));
  });

  it('presents a client certificate to an upstream that requires one, and is refused without it', async () => {
    const base = { caFile: upstreamCa.certFile, servername: 'orders.internal' };
    // The server refuses with TLS 1.3's certificate_required alert after the client's side of the
    // handshake is done; undici reports only the closed socket, so the server's side is checked too.
    const serverRefusal = once(mutual.server, 'tlsClientError', { signal: AbortSignal.timeout(5000) });
    serverRefusal.catch(() => {});
    await assert.rejects(fetchThrough(mutual.origin, settings(base)), {
      name: 'SocketError',
      code: 'UND_ERR_SOCKET',
      message: 'other side closed',
    });
    const [refusal] = (await serverRefusal) as [NodeJS.ErrnoException];
    assert.equal(refusal.code, 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE');
    const r = await fetchThrough(
      mutual.origin,
      settings({ ...base, clientCertFile: gatewayClient.certFile, clientKeyFile: gatewayClient.keyFile }),
    );
    assert.equal(r.client, 'CN=portcullis');
  });

  it('fails at build time, not on the first request, when a file is missing', () => {
    assert.throws(
      () => upstreamConnectOptions(settings({ caFile: '/nonexistent/ca.pem' })),
      /cannot read the upstream CA bundle/,
    );
  });
});
