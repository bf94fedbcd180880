/**
 * JWT admins (`admin.auth.jwt`) over real HTTP: access tokens from a real
 * OpenID provider (`oidc-provider`, client-credentials grant, a role claim
 * per client), verified by the gateway's own JWT verifier; the role
 * mapping, refused tokens, the audit trail and console sessions.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, importJWK, type JWK, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { stringify } from 'yaml';
import { loadConfig } from '../config/load.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { adminApi, type Reply } from '../test-support/http.js';
import { signingKey } from '../test-support/oidc.js';

type OidcProvider = { callback(): (req: IncomingMessage, res: ServerResponse) => void };
type OidcProviderClass = new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;
// A computed specifier keeps TypeScript from looking for declarations (the package ships none).
const oidcModule: string = 'oidc-provider';
const { default: Provider } = (await import(oidcModule)) as { default: OidcProviderClass };

const SECRET = 'a-client-secret-long-enough-for-the-test';
/** One client per case; each gets its role claim from the provider. */
const CLIENTS: Record<string, unknown> = {
  'ops-viewer': 'pc-viewers',
  'ops-operator': ['pc-viewers', 'pc-operators'],
  'ops-admin': 'pc-admins',
  'ops-nobody': 'marketing',
};

async function startRoleProvider(key: JWK): Promise<{ issuer: string; server: Server }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: Object.keys(CLIENTS).map((client_id) => ({
      client_id,
      client_secret: SECRET,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'admin',
    })),
    scopes: ['admin'],
    jwks: { keys: [key] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'https://portcullis-admin.test',
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'admin',
          audience: 'portcullis-admin',
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: (_ctx: unknown, token: { clientId?: string }) => ({
      portcullis_admin_role: CLIENTS[token.clientId ?? ''],
      name: `${token.clientId} robot`,
    }),
  });
  server.on('request', provider.callback());
  return { issuer, server };
}

async function obtain(issuer: string, clientId: string): Promise<string> {
  const insecure = { [oauth.allowInsecureRequests]: true };
  const url = new URL(issuer);
  const as = await oauth.processDiscoveryResponse(url, await oauth.discoveryRequest(url, insecure));
  const client = { client_id: clientId };
  const response = await oauth.clientCredentialsGrantRequest(
    as,
    client,
    oauth.ClientSecretBasic(SECRET),
    { scope: 'admin' },
    insecure,
  );
  return (await oauth.processClientCredentialsResponse(as, client, response)).access_token;
}

const api = (gw: TestGateway, token: string | undefined) => adminApi(gw.adminUrl, token);

function assertProblem(reply: Reply, status: number, code: string): void {
  assert.equal(reply.status, status, reply.body);
  assert.match(String(reply.headers['content-type']), /^application\/problem\+json/);
  assert.equal(reply.json<{ code: string }>().code, code);
}

describe('admins who authenticate with a JWT from an OpenID provider', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let idp: Server;
  let issuer: string;
  let key: JWK;
  const tokens: Record<string, string> = {};

  /** A token signed here with `signer` (the provider's own key unless told), as the provider would shape it. */
  const mint = async (
    claims: Record<string, unknown>,
    options: { signer?: JWK; iss?: string; exp?: number } = {},
  ) => {
    const signer = options.signer ?? key;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ client_id: 'minted', scope: 'admin', ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: key.kid!, typ: 'at+jwt' })
      .setIssuer(options.iss ?? issuer)
      .setAudience('portcullis-admin')
      .setSubject('minted-admin')
      .setIssuedAt(now - 5)
      .setJti(`jti-${Math.random().toString(36).slice(2)}`)
      .setExpirationTime(options.exp ?? now + 600)
      .sign(await importJWK(signer, 'RS256'));
  };

  before(async () => {
    key = await signingKey('admin-idp-key');
    ({ issuer, server: idp } = await startRoleProvider(key));
    upstream = await startUpstream();
    gw = await startTestGateway({
      auth: {
        jwt: {
          providers: [
            {
              name: 'corp-sso',
              issuer,
              audience: ['portcullis-admin'],
              jwks_uri: `${issuer}/jwks`,
              algorithms: ['RS256'],
            },
          ],
        },
      },
      admin: {
        auth: {
          jwt: {
            providers: ['corp-sso'],
            roles: { 'pc-viewers': 'viewer', 'pc-operators': 'operator', 'pc-admins': 'admin' },
          },
        },
      },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/a', methods: ['GET'], upstream: 'app', auth: 'none' }],
    });
    for (const client of Object.keys(CLIENTS)) tokens[client] = await obtain(issuer, client);
  });

  after(async () => {
    await gw?.close();
    await upstream?.close();
    idp?.closeAllConnections();
    idp?.close();
  });

  it('knows an admin by the provider and subject, with the role from the role claim', async () => {
    const who = await api(gw, tokens['ops-operator'])('GET', '/admin/whoami');
    assert.equal(who.status, 200, who.body);
    const body = who.json<Record<string, unknown>>();
    assert.ok(Date.parse(String(body.expires_at)) > Date.now(), "the JWT's exp is told");
    delete body.expires_at;
    assert.deepEqual(body, {
      id: 'jwt:corp-sso:ops-operator',
      name: 'ops-operator robot',
      role: 'operator',
      kind: 'jwt',
    });
    assert.equal(
      (await api(gw, tokens['ops-viewer'])('GET', '/admin/whoami')).json<{ role: string }>().role,
      'viewer',
    );
  });

  it('lets a viewer read but not revoke, an operator revoke but not reload, and an admin reload', async () => {
    const revoke = { kind: 'sub', subject: 'mallory', reason: 'test' };
    assert.equal((await api(gw, tokens['ops-viewer'])('GET', '/admin/blocks')).status, 200);
    assertProblem(
      await api(gw, tokens['ops-viewer'])('POST', '/admin/revocations', revoke),
      403,
      'authz.forbidden',
    );
    assert.equal((await api(gw, tokens['ops-operator'])('POST', '/admin/revocations', revoke)).status, 201);
    assertProblem(await api(gw, tokens['ops-operator'])('POST', '/admin/reload'), 403, 'authz.forbidden');
    const reload = await api(gw, tokens['ops-admin'])('POST', '/admin/reload');
    assert.equal(reload.status, 200, reload.body);
  });

  it('describes the JWT and mutual-TLS security schemes in its OpenAPI document', async () => {
    const doc = (await api(gw, tokens['ops-viewer'])('GET', '/admin/openapi.json')).json<{
      security: Record<string, unknown>[];
      components: {
        securitySchemes: Record<string, { type: string; scheme?: string; bearerFormat?: string }>;
      };
    }>();
    const schemes = doc.components.securitySchemes;
    assert.deepEqual(
      [schemes.adminJwt?.type, schemes.adminJwt?.scheme, schemes.adminJwt?.bearerFormat],
      ['http', 'bearer', 'JWT'],
    );
    assert.equal(schemes.adminCertificate?.type, 'mutualTLS');
    const named = doc.security.flatMap((s) => Object.keys(s));
    for (const name of Object.keys(schemes))
      assert.ok(named.includes(name), `${name} in the top-level security`);
  });

  it('refuses with 403 a valid token whose role claim maps to no admin role, and audits it once a minute', async () => {
    for (let i = 0; i < 3; i++) {
      assertProblem(await api(gw, tokens['ops-nobody'])('GET', '/admin/whoami'), 403, 'authz.forbidden');
    }
    assertProblem(await api(gw, await mint({}))('GET', '/admin/whoami'), 403, 'authz.forbidden');
    await gw.running.audit.flush();
    const events = await gw.running.audit.repository.search(
      { principal: 'admin-jwt:corp-sso:ops-nobody' },
      100,
    );
    const refused = events.filter((e) => (e as { action: string | null }).action === 'admin.no_role');
    assert.equal(refused.length, 1, 'three refusals in a minute, one event');
    const detail = JSON.parse((refused[0] as { data: string }).data) as Record<string, unknown>;
    const fields = (detail.detail ?? detail) as Record<string, unknown>;
    assert.equal(fields.kind, 'jwt');
    assert.equal(fields.client_ip, '127.0.0.1');
  });

  it('accepts a token minted with the provider key and right claims (the control for the refusals below)', async () => {
    const who = await api(gw, await mint({ portcullis_admin_role: 'pc-admins' }))('GET', '/admin/whoami');
    assert.equal(who.status, 200, who.body);
    assert.equal(who.json<{ role: string }>().role, 'admin');
  });

  it('refuses with 401 a token from another issuer, an expired one and one with a bad signature', async () => {
    const other = await signingKey('admin-idp-key');
    const now = Math.floor(Date.now() / 1000);
    const claims = { portcullis_admin_role: 'pc-admins' };
    for (const token of [
      await mint(claims, { iss: 'https://elsewhere.example' }),
      await mint(claims, { exp: now - 3600 }),
      await mint(claims, { signer: other }),
      'not.a.jwt',
    ]) {
      const reply = await api(gw, token)('GET', '/admin/whoami');
      assertProblem(reply, 401, 'auth.invalid_credentials');
      assert.match(String(reply.headers['www-authenticate']), /invalid_token/);
    }
  });

  it('counts a badly signed token in the admin brute-force guard until it is locked out (429)', async () => {
    const forged = await mint(
      { portcullis_admin_role: 'pc-admins', sub: 'forger' },
      { signer: await signingKey('admin-idp-key') },
    );
    const statuses: number[] = [];
    for (let i = 0; i < 15 && !statuses.includes(429); i++) {
      statuses.push((await api(gw, forged)('GET', '/admin/whoami')).status);
    }
    assert.equal(statuses.at(-1), 429, statuses.join(' '));
    assert.ok(
      statuses.slice(0, -1).every((s) => s === 401),
      statuses.join(' '),
    );
    // The lockout is of that credential from this IP: a good token still works.
    assert.equal((await api(gw, tokens['ops-viewer'])('GET', '/admin/whoami')).status, 200);
  });

  it('refuses with 401 a token the kill switch revoked', async () => {
    const token = await mint({ portcullis_admin_role: 'pc-admins', sub: 'soon-revoked' });
    assert.equal((await api(gw, token)('GET', '/admin/whoami')).status, 200);
    const jti = decodeJwt(token).jti!;
    const revoked = await api(gw, tokens['ops-operator'])('POST', '/admin/revocations', {
      kind: 'jti',
      subject: jti,
    });
    assert.equal(revoked.status, 201, revoked.body);
    let status = 0;
    for (let i = 0; i < 40 && status !== 401; i++) {
      status = (await api(gw, token)('GET', '/admin/whoami')).status;
      if (status !== 401) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 401);
  });

  it('audits the act with the JWT admin’s identity', async () => {
    const block = await api(gw, tokens['ops-operator'])('POST', '/admin/blocks', {
      kind: 'ip',
      subject: '203.0.113.77',
      duration: '1h',
    });
    assert.equal(block.status, 201, block.body);
    await gw.running.audit.flush();
    const events = await gw.running.audit.repository.search(
      { principal: 'admin-jwt:corp-sso:ops-operator' },
      100,
    );
    const added = events.find((e) => (e as { action: string | null }).action === 'block.added');
    assert.ok(added, JSON.stringify(events));
    const detail = JSON.parse((added as { data: string }).data) as Record<string, unknown>;
    const fields = (detail.detail ?? detail) as Record<string, unknown>;
    assert.equal(fields.admin_id, 'jwt:corp-sso:ops-operator');
    assert.equal(fields.admin_name, 'ops-operator robot');
    assert.equal(fields.admin_role, 'operator');
    assert.equal(fields.client_ip, '127.0.0.1');
  });

  it('logs in to the console with a JWT, and the session works with its cookie and CSRF token', async () => {
    const login = await api(gw, tokens['ops-operator'])('POST', '/admin/session');
    assert.equal(login.status, 201, login.body);
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    const session = login.json<{ id: string; role: string; csrfToken: string; expiresAt: string }>();
    assert.equal(session.id, 'jwt:corp-sso:ops-operator');
    assert.equal(session.role, 'operator');
    assert.ok(Date.parse(session.expiresAt) <= decodeJwt(tokens['ops-operator']!).exp! * 1000);
    const viaCookie = await api(gw, undefined)(
      'POST',
      '/admin/revocations',
      { kind: 'sub', subject: 'eve' },
      {
        cookie,
        'x-csrf-token': session.csrfToken,
      },
    );
    assert.equal(viaCookie.status, 201, viaCookie.body);
  });

  it('ends a console session when its JWT expires', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await mint({ portcullis_admin_role: 'pc-viewers' }, { exp });
    const login = await api(gw, token)('POST', '/admin/session');
    assert.equal(login.status, 201, login.body);
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    assert.equal((await api(gw, undefined)('GET', '/admin/session', undefined, { cookie })).status, 200);
    await new Promise((r) => setTimeout(r, Math.max(0, exp * 1000 - Date.now()) + 100));
    assertProblem(
      await api(gw, undefined)('GET', '/admin/session', undefined, { cookie }),
      401,
      'auth.session_ended',
    );
  });
});

describe('admins by JWT in the config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-admin-jwt-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const load = async (admin: Record<string, unknown>) => {
    const file = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      file,
      stringify({
        auth: {
          jwt: {
            providers: [
              {
                name: 'sso',
                issuer: 'https://sso.example',
                audience: ['a'],
                jwks_uri: 'https://sso.example/jwks',
                algorithms: ['RS256'],
              },
            ],
          },
        },
        admin,
        upstreams: { app: { url: 'http://127.0.0.1:3000' } },
        routes: [{ path: '/a', methods: ['GET'], upstream: 'app', auth: 'none' }],
      }),
    );
    return loadConfig(file, { env: { PORTCULLIS_DATA: dir } });
  };

  it('warns when JWT admins reach a non-loopback admin listener without TLS', async () => {
    const jwt = { providers: ['sso'], roles: { ops: 'admin' } };
    const { warnings } = await load({ host: '0.0.0.0', auth: { jwt } });
    assert.ok(
      warnings.some((w) => w.path === 'admin.auth.jwt' && /in clear/.test(w.message)),
      JSON.stringify(warnings),
    );
    const onLoopback = await load({ auth: { jwt } });
    assert.ok(!onLoopback.warnings.some((w) => w.path === 'admin.auth.jwt'));
  });

  it('refuses a provider that auth.jwt does not define, and a role that does not exist', async () => {
    await assert.rejects(
      load({ auth: { jwt: { providers: ['nope'], roles: { ops: 'admin' } } } }),
      /admin\.auth\.jwt\.providers/,
    );
    await assert.rejects(
      load({ auth: { jwt: { providers: ['sso'], roles: { ops: 'root' } } } }),
      /admin\.auth\.jwt\.roles/,
    );
  });

  it('refuses certificate admins without a client CA', async () => {
    await assert.rejects(load({ auth: { mtls: { roles: { x: 'admin' } } } }), /client_ca/);
  });
});
