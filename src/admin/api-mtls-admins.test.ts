/**
 * Certificate admins (`admin.tls.client_ca` + `admin.auth.mtls`) over real
 * HTTPS, with a CA and client certificates made at test time by openssl:
 * a mapped certificate needs no token, an unmapped one is refused, one from
 * another CA does not count, and admin tokens keep working without one.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { type Reply, readReply } from '../test-support/http.js';
import { createTempPki, type PemFiles, type TempPki } from '../tls/test-support/pki.js';
import { runAdminCommand } from './tokens/cli.js';

describe('admins who authenticate with a client certificate', () => {
  let pki: TempPki;
  let ca: PemFiles;
  let otherCa: PemFiles;
  const certs: Record<string, PemFiles> = {};
  let upstream: TestUpstream;
  let gw: TestGateway;
  let adminToken: string;
  let viewerToken: string;

  before(async () => {
    pki = createTempPki();
    ca = await pki.ca('admin-clients-ca');
    otherCa = await pki.ca('other-ca');
    const server = await pki.leaf('admin-server', {
      ca,
      commonName: 'localhost',
      dns: ['localhost'],
      ip: ['127.0.0.1'],
      usage: 'server',
      days: 30,
    });
    for (const name of ['ops-admin', 'ops-viewer', 'intern']) {
      certs[name] = await pki.leaf(name, { ca, commonName: name, usage: 'client', days: 30 });
    }
    // The same name as a mapped admin, from a CA the admin listener does not trust.
    certs.impostor = await pki.leaf('impostor', {
      ca: otherCa,
      commonName: 'ops-admin',
      usage: 'client',
      days: 30,
    });
    upstream = await startUpstream();
    gw = await startTestGateway({
      admin: {
        tls: { cert: server.certFile, key: server.keyFile, client_ca: ca.certFile },
        auth: { mtls: { principal: 'subject', roles: { 'ops-admin': 'admin', 'ops-viewer': 'viewer' } } },
      },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/a', methods: ['GET'], upstream: 'app', auth: 'none' }],
    });
    const token = async (role: string) => {
      const out: string[] = [];
      const code = await runAdminCommand(['tokens', 'create', '--role', role], {
        out: (s) => out.push(s),
        err: () => {},
        env: { ...process.env, PORTCULLIS_CONFIG: gw.configFile, PORTCULLIS_DATA: gw.dataDir },
      });
      assert.equal(code, 0);
      return out.join('').trim();
    };
    adminToken = await token('admin');
    viewerToken = await token('viewer');
  });

  after(async () => {
    await gw?.close();
    await upstream?.close();
    pki?.cleanup();
  });

  /** One call on its own connection (no TLS session reuse between certificates). */
  const call = (
    method: string,
    path: string,
    options: { cert?: PemFiles; token?: string; headers?: Record<string, string> } = {},
  ) =>
    new Promise<Reply>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          servername: 'localhost',
          port: gw.running.adminPort,
          method,
          path,
          ca: ca.cert,
          agent: false,
          ...(options.cert === undefined ? {} : { cert: options.cert.cert, key: options.cert.key }),
          headers: {
            ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
            ...options.headers,
          },
        },
        (res) => readReply(res).then(resolve, reject),
      );
      req.on('error', reject);
      req.end();
    });

  const code = (r: Reply) => r.json<{ code: string }>().code;

  it('authenticates a mapped certificate without a token, with the role it maps to', async () => {
    const who = await call('GET', '/admin/whoami', { cert: certs['ops-admin'] });
    assert.equal(who.status, 200, who.body);
    const body = who.json<Record<string, unknown>>();
    assert.ok(Date.parse(String(body.expires_at)) > Date.now(), "the certificate's end is told");
    delete body.expires_at;
    assert.deepEqual(body, { id: 'mtls:ops-admin', name: 'ops-admin', role: 'admin', kind: 'mtls' });
    const reload = await call('POST', '/admin/reload', { cert: certs['ops-admin'] });
    assert.equal(reload.status, 200, reload.body);
  });

  it('holds a viewer certificate to the viewer role', async () => {
    assert.equal((await call('GET', '/admin/blocks', { cert: certs['ops-viewer'] })).status, 200);
    const reload = await call('POST', '/admin/reload', { cert: certs['ops-viewer'] });
    assert.equal(reload.status, 403, reload.body);
    assert.equal(code(reload), 'authz.forbidden');
  });

  it('refuses with 403 a verified certificate that maps to no role, and audits it once a minute', async () => {
    for (let i = 0; i < 2; i++) {
      const who = await call('GET', '/admin/whoami', { cert: certs.intern });
      assert.equal(who.status, 403, who.body);
      assert.equal(code(who), 'authz.forbidden');
    }
    await gw.running.audit.flush();
    const events = await gw.running.audit.repository.search({ principal: 'admin-mtls:intern' }, 100);
    const refused = events.filter((e) => (e as { action: string | null }).action === 'admin.no_role');
    assert.equal(refused.length, 1, JSON.stringify(events));
  });

  it('still accepts admin tokens without a certificate, and asks for a credential without either', async () => {
    const who = await call('GET', '/admin/whoami', { token: viewerToken });
    assert.equal(who.status, 200, who.body);
    assert.equal(who.json<{ role: string }>().role, 'viewer');
    assert.equal(who.json<{ kind: string }>().kind, 'token');
    const none = await call('GET', '/admin/whoami');
    assert.equal(none.status, 401, none.body);
  });

  it('does not count a certificate from another CA, and falls back to the token', async () => {
    const alone = await call('GET', '/admin/whoami', { cert: certs.impostor });
    assert.equal(alone.status, 401, alone.body);
    const withToken = await call('GET', '/admin/whoami', { cert: certs.impostor, token: adminToken });
    assert.equal(withToken.status, 200, withToken.body);
    assert.match(withToken.json<{ id: string }>().id, /^adt_/);
  });

  it('goes by the bearer token when a call carries both', async () => {
    const reload = await call('POST', '/admin/reload', { cert: certs['ops-admin'], token: viewerToken });
    assert.equal(reload.status, 403, reload.body);
  });

  it('refuses a state-changing call a browser sent from another site with the certificate', async () => {
    const forged = await call('POST', '/admin/reload', {
      cert: certs['ops-admin'],
      headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    });
    assert.equal(forged.status, 403, forged.body);
    assert.equal(code(forged), 'csrf.cross_site');
    await gw.running.audit.flush();
    const events = await gw.running.audit.repository.search(
      { principal: 'admin-mtls:ops-admin', action: 'admin.csrf_refused' },
      10,
    );
    assert.equal(events.length, 1, JSON.stringify(events));
  });

  it('audits the act with the certificate’s identity', async () => {
    await gw.running.audit.flush();
    const events = await gw.running.audit.repository.search({ principal: 'admin-mtls:ops-admin' }, 100);
    const reload = events.find((e) => (e as { action: string | null }).action === 'config.reload_requested');
    assert.ok(reload, JSON.stringify(events));
    const detail = JSON.parse((reload as { data: string }).data) as Record<string, unknown>;
    assert.equal(detail.admin_id, 'mtls:ops-admin');
    assert.equal(detail.admin_role, 'admin');
    assert.equal(detail.admin_name, 'ops-admin');
  });

  it('logs in to the console with the certificate', async () => {
    const login = await call('POST', '/admin/session', { cert: certs['ops-viewer'] });
    assert.equal(login.status, 201, login.body);
    assert.equal(login.json<{ id: string; role: string }>().role, 'viewer');
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    const session = await call('GET', '/admin/session', { headers: { cookie } });
    assert.equal(session.status, 200, session.body);
    assert.equal(session.json<{ id: string }>().id, 'mtls:ops-viewer');
  });

  it('trusts a replaced client CA after a reload, and keeps the one in use when the new file is bad', async () => {
    /** The admin a certificate authenticates as, or the status it gets. */
    const whoIs = async (cert: PemFiles) => {
      const who = await call('GET', '/admin/whoami', { cert });
      return who.status === 200
        ? `${who.json<{ id: string }>().id} ${who.json<{ role: string }>().role}`
        : who.status;
    };
    writeFileSync(
      ca.certFile,
      '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n',
    );
    await call('POST', '/admin/reload', { token: adminToken });
    assert.equal(await whoIs(certs['ops-admin']!), 'mtls:ops-admin admin', 'the CA in use still serves');

    writeFileSync(ca.certFile, otherCa.cert);
    const reload = await call('POST', '/admin/reload', { token: adminToken });
    assert.equal(reload.status, 200, reload.body);
    assert.equal(await whoIs(certs['ops-admin']!), 401, 'a certificate of the CA no longer trusted');
    assert.equal(await whoIs(certs.impostor!), 'mtls:ops-admin admin', 'a certificate of the new CA');
  });
});
