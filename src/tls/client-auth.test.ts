import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { RequestListener } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import type { Principal } from '../contracts/principal.js';
import {
  checkTokenBinding,
  clientCertificatePrincipal,
  createRouteMtlsCheck,
  type RouteMtlsCheck,
} from './client-auth.js';
import {
  handshake,
  listenerSettings,
  type RunningListener,
  requestOn,
  startListener,
  tlsGet,
} from './test-support/clients.js';
import { createTempPki, type PemFiles, type TempPki } from './test-support/pki.js';
import type { ClientAuthSettings, PrincipalMapping } from './types.js';

/** Answers with the principal (or the refusal) the mTLS functions derive from the connection. */
function principalHandler(mapping: PrincipalMapping, route?: RouteMtlsCheck): RequestListener {
  return (req, res) => {
    let status = 200;
    let body: unknown;
    const checked = route?.check(req.socket);
    if (checked && !checked.ok) {
      status = 401;
      body = { refused: checked.reason };
    } else {
      const principal = clientCertificatePrincipal(req.socket, mapping);
      body = principal ? { id: principal.id, kind: principal.kind } : { anonymous: true };
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
}

const fingerprintOf = (pem: string) =>
  `sha256:${createHash('sha256').update(new X509Certificate(pem).raw).digest('hex')}`;

describe('mutual TLS', () => {
  let pki: TempPki;
  let serverCa: PemFiles;
  let clientCa: PemFiles;
  let otherCa: PemFiles;
  let server: PemFiles;
  let alice: PemFiles;
  let stranger: PemFiles;
  let expired: PemFiles;
  let serverUsage: PemFiles;

  before(async () => {
    pki = createTempPki();
    [serverCa, clientCa, otherCa] = await Promise.all([
      pki.ca('server-ca'),
      pki.ca('client-ca'),
      pki.ca('other-ca'),
    ]);
    [server, alice, stranger, expired, serverUsage] = await Promise.all([
      pki.leaf('server', {
        ca: serverCa,
        commonName: 'localhost',
        dns: ['localhost'],
        usage: 'server',
        days: 30,
      }),
      pki.leaf('alice', {
        ca: clientCa,
        commonName: 'alice',
        dns: ['alice.clients.test'],
        usage: 'client',
        days: 30,
      }),
      pki.leaf('stranger', { ca: otherCa, commonName: 'alice', usage: 'client', days: 30 }),
      pki.expiredClient('expired-alice', clientCa),
      // A certificate from the right CA but made for servers only (EKU serverAuth).
      pki.leaf('server-usage', { ca: clientCa, commonName: 'alice', usage: 'server', days: 30 }),
    ]);
  });

  after(() => pki?.cleanup());

  const certs = () => [
    { cert: server.certFile, key: server.keyFile, passphrase: undefined, names: undefined },
  ];
  const clientAuth = (
    mode: ClientAuthSettings['mode'],
    caFiles = [clientCa.certFile],
  ): ClientAuthSettings => ({
    mode,
    request: true,
    caFiles,
    principal: 'fingerprint',
    tokenBinding: 'if_present',
  });
  const as = (client: PemFiles | undefined) => ({
    ca: serverCa.cert,
    servername: 'localhost',
    ...(client ? { cert: client.cert, key: client.key } : {}),
  });

  describe('a listener with client_auth: required', () => {
    let running: RunningListener;
    before(async () => {
      running = await startListener(
        listenerSettings(certs(), { clientAuth: clientAuth('required') }),
        principalHandler('fingerprint'),
      );
    });
    after(() => running.close());

    /**
     * The next handshake the listener refuses, as the server saw it: Node emits
     * `tlsClientError` with the socket, whose `authorizationError` names the
     * verification failure (a string code at run time, despite its `Error` type).
     */
    const nextServerRefusal = (): Promise<{ code: string | undefined; authorizationError: unknown }> => {
      const seen = once(running.listener.server, 'tlsClientError', {
        signal: AbortSignal.timeout(5000),
      }).then((args) => {
        const [err, socket] = args as [NodeJS.ErrnoException, TLSSocket];
        return { code: err.code, authorizationError: socket.authorizationError as unknown };
      });
      seen.catch(() => {});
      return seen;
    };

    /**
     * How this listener refuses, pinned against the real server:
     * - no certificate: OpenSSL fails the handshake (the server sees
     *   ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE); a TLS 1.3 client, whose side of
     *   the handshake is already done, gets the certificate_required alert (116)
     *   on its first read.
     * - a certificate that fails verification: OpenSSL lets the handshake finish
     *   and Node's server then destroys the socket without sending any alert, so
     *   a TLS 1.3 client sees the connection close with no response, and a TLS 1.2
     *   client sees it reset before its handshake completes.
     * A positive control on the same listener first, so a listener that is down
     * or refuses everyone cannot pass.
     */
    const refused = async (
      client: PemFiles | undefined,
      clientSees: { code?: string; message?: string | RegExp },
      serverSaw: { code: string; authorizationError: string | null },
      maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3',
    ) => {
      const good = await tlsGet({ port: running.port, ...as(alice), maxVersion });
      assert.equal(good.status, 200);
      const saw = nextServerRefusal();
      await assert.rejects(tlsGet({ port: running.port, ...as(client), maxVersion }, '/'), clientSees);
      assert.deepEqual(await saw, serverSaw);
    };
    const closedWithoutResponse = { message: 'connection closed before a response' };
    const failedVerification = (authorizationError: string) => ({ code: 'ECONNRESET', authorizationError });

    it('refuses a client without a certificate', () =>
      refused(
        undefined,
        { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', message: /tlsv13 alert certificate required/ },
        { code: 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', authorizationError: null },
      ));
    it('refuses a certificate from another CA, even with the same subject', () =>
      refused(stranger, closedWithoutResponse, failedVerification('UNABLE_TO_VERIFY_LEAF_SIGNATURE')));
    it('refuses an expired certificate from the right CA', () =>
      refused(expired, closedWithoutResponse, failedVerification('CERT_HAS_EXPIRED')));
    it('refuses a certificate from the right CA that is not made for clients', () =>
      refused(serverUsage, closedWithoutResponse, failedVerification('INVALID_PURPOSE')));
    it('refuses an expired certificate on TLS 1.2 too (the server drops the connection before any HTTP)', () =>
      refused(
        expired,
        {
          code: 'ECONNRESET',
          message: /Client network socket disconnected before secure TLS connection was established/,
        },
        failedVerification('CERT_HAS_EXPIRED'),
        'TLSv1.2',
      ));

    it('accepts a valid certificate and maps it to its fingerprint', async () => {
      const r = await tlsGet({ port: running.port, ...as(alice) });
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { id: fingerprintOf(alice.cert), kind: 'mtls' });
    });

    it('keeps the principal on every request of a kept-open connection', async () => {
      const h = await handshake({ port: running.port, ...as(alice) });
      try {
        for (const path of ['/1', '/2']) {
          const r = await requestOn(h.socket, path);
          assert.equal(JSON.parse(r.body).id, fingerprintOf(alice.cert));
        }
      } finally {
        h.socket.destroy();
      }
    });
  });

  describe('session resumption', () => {
    it('a resumed session keeps its verified certificate, and one resumed without a certificate stays anonymous', async () => {
      const running = await startListener(
        listenerSettings(certs(), { clientAuth: clientAuth('optional') }),
        principalHandler('fingerprint'),
      );
      const get = async (client: PemFiles | undefined, session?: Buffer) => {
        const h = await handshake({
          port: running.port,
          ...as(client),
          maxVersion: 'TLSv1.2',
          ...(session ? { session } : {}),
        });
        try {
          const r = await requestOn(h.socket, '/');
          return {
            body: JSON.parse(r.body),
            session: h.socket.getSession()!,
            reused: h.socket.isSessionReused(),
          };
        } finally {
          h.socket.destroy();
        }
      };
      try {
        const first = await get(alice);
        const resumed = await get(alice, first.session);
        assert.equal(resumed.reused, true);
        assert.equal(resumed.body.id, fingerprintOf(alice.cert));
        const anonymous = await get(undefined);
        const anonymousResumed = await get(undefined, anonymous.session);
        assert.equal(anonymousResumed.reused, true);
        assert.deepEqual(anonymousResumed.body, { anonymous: true });
      } finally {
        await running.close();
      }
    });
  });

  describe('a listener with client_auth: optional and a route that requires a certificate', () => {
    let running: RunningListener;
    before(async () => {
      const route = createRouteMtlsCheck({ mode: 'required', caFiles: [] });
      running = await startListener(
        listenerSettings(certs(), { clientAuth: clientAuth('optional') }),
        principalHandler('subject', route),
      );
    });
    after(() => running.close());

    it('lets the handshake through without a certificate, and the route refuses the request', async () => {
      const r = await tlsGet({ port: running.port, ...as(undefined) });
      assert.equal(r.status, 401);
      assert.deepEqual(JSON.parse(r.body), { refused: 'no_certificate' });
    });

    it('refuses a certificate from another CA at the route', async () => {
      const r = await tlsGet({ port: running.port, ...as(stranger) });
      assert.deepEqual(JSON.parse(r.body), { refused: 'not_verified' });
    });

    it('refuses an expired certificate at the route', async () => {
      const r = await tlsGet({ port: running.port, ...as(expired) });
      assert.deepEqual(JSON.parse(r.body), { refused: 'not_verified' });
    });

    it('accepts a valid certificate and maps it to its subject CN', async () => {
      const r = await tlsGet({ port: running.port, ...as(alice) });
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { id: 'alice', kind: 'mtls' });
    });
  });

  describe('a route that accepts only one of the listener CAs', () => {
    let running: RunningListener;
    before(async () => {
      const route = createRouteMtlsCheck({ mode: 'required', caFiles: [clientCa.certFile] });
      running = await startListener(
        listenerSettings(certs(), {
          clientAuth: clientAuth('optional', [clientCa.certFile, otherCa.certFile]),
        }),
        principalHandler('san', route),
      );
    });
    after(() => running.close());

    it('refuses a certificate the listener verified but from the other CA', async () => {
      const r = await tlsGet({ port: running.port, ...as(stranger) });
      assert.deepEqual(JSON.parse(r.body), { refused: 'wrong_ca' });
    });

    it("accepts one from the route's CA and maps it to its first SAN", async () => {
      const r = await tlsGet({ port: running.port, ...as(alice) });
      assert.deepEqual(JSON.parse(r.body), { id: 'alice.clients.test', kind: 'mtls' });
    });
  });

  describe('an optional route', () => {
    it('lets a request without a certificate through but still refuses a bad one', async () => {
      const route = createRouteMtlsCheck({ mode: 'optional', caFiles: [] });
      const running = await startListener(
        listenerSettings(certs(), { clientAuth: clientAuth('optional') }),
        principalHandler('fingerprint', route),
      );
      try {
        assert.deepEqual(JSON.parse((await tlsGet({ port: running.port, ...as(undefined) })).body), {
          anonymous: true,
        });
        assert.deepEqual(JSON.parse((await tlsGet({ port: running.port, ...as(expired) })).body), {
          refused: 'not_verified',
        });
      } finally {
        await running.close();
      }
    });
  });

  describe('certificate-bound access tokens (RFC 8705)', () => {
    let running: RunningListener;
    let sockets: { alice: TLSSocket; stranger: TLSSocket; none: TLSSocket };
    let serverSockets: Map<string, TLSSocket>;

    before(async () => {
      serverSockets = new Map();
      running = await startListener(
        listenerSettings(certs(), { clientAuth: clientAuth('optional') }),
        (req, res) => {
          serverSockets.set(req.url!, req.socket as TLSSocket);
          res.writeHead(200, { 'content-length': 0 });
          res.end();
        },
      );
      const open = async (name: string, client: PemFiles | undefined) => {
        const h = await handshake({ port: running.port, ...as(client) });
        await requestOn(h.socket, `/${name}`);
        return h.socket;
      };
      sockets = {
        alice: await open('alice', alice),
        stranger: await open('stranger', stranger),
        none: await open('none', undefined),
      };
    });
    after(async () => {
      for (const s of Object.values(sockets ?? {})) s.destroy();
      await running?.close();
    });

    const token = (cnf?: unknown): Principal => ({
      kind: 'jwt',
      id: 'user-1',
      scopes: [],
      roles: [],
      claims: cnf === undefined ? {} : { cnf },
      tenant: undefined,
    });
    const x5t = (pem: string) =>
      createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');

    it('accepts a bound token over a connection with that certificate', () => {
      const r = checkTokenBinding(token({ 'x5t#S256': x5t(alice.cert) }), serverSockets.get('/alice')!);
      assert.deepEqual(r, { ok: true, bound: true });
    });

    it('refuses a bound token replayed without a client certificate', () => {
      const r = checkTokenBinding(token({ 'x5t#S256': x5t(alice.cert) }), serverSockets.get('/none')!);
      assert.deepEqual(r, { ok: false, reason: 'no_certificate' });
    });

    it('refuses a bound token replayed with another certificate', () => {
      const other = checkTokenBinding(
        token({ 'x5t#S256': x5t(stranger.cert) }),
        serverSockets.get('/alice')!,
      );
      assert.deepEqual(other, { ok: false, reason: 'certificate_mismatch' });
      // The stranger's own certificate is not verified by the listener, so it binds nothing.
      const unverified = checkTokenBinding(
        token({ 'x5t#S256': x5t(stranger.cert) }),
        serverSockets.get('/stranger')!,
      );
      assert.deepEqual(unverified, { ok: false, reason: 'no_certificate' });
    });

    it('refuses a malformed confirmation', () => {
      const r = checkTokenBinding(token({ 'x5t#S256': 'not a thumbprint' }), serverSockets.get('/alice')!);
      assert.deepEqual(r, { ok: false, reason: 'bad_confirmation' });
    });

    it('lets an unbound token through unless binding is required', () => {
      assert.deepEqual(checkTokenBinding(token(), serverSockets.get('/none')!), { ok: true, bound: false });
      assert.deepEqual(checkTokenBinding(token(), serverSockets.get('/alice')!, { required: true }), {
        ok: false,
        reason: 'unbound_token',
      });
    });
  });
});
