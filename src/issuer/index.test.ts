import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import * as oauth from 'oauth4webapi';
import type { BruteForceGuard } from '../auth/types.js';
import type { IssuerSettings } from '../config/types.js';
import { GatewayError } from '../errors.js';
import { send } from '../test-support/http.js';
import { ClientRepository } from './clients.js';
import {
  createIssuer,
  type Issuer,
  IssuerError,
  KEY_PUBLISH_AHEAD_MS,
  KEY_RETIRE_MARGIN_MS,
  MAX_FORM_BYTES,
} from './index.js';
import { decryptPrivateJwk } from './keys.js';
import { backends, captureLogger, type Fixture, startServer } from './test-support/fixtures.js';

const DAY = 86_400_000;
const TTL = 10 * 60_000;
const insecure = { [oauth.allowInsecureRequests]: true } as const;

interface Harness {
  url: string;
  issuer: Issuer;
  fixture: Fixture;
  clients: ClientRepository;
  logs: ReturnType<typeof captureLogger>;
  as: oauth.AuthorizationServer;
  /** A client allowed orders:read and orders:write, tenant acme. */
  client: { id: string; secret: string };
  /** Another client, allowed orders:read only. */
  other: { id: string; secret: string };
  clock: { now: number };
  close(): Promise<void>;
}

function settingsFor(url: string, overrides: Partial<IssuerSettings> = {}): IssuerSettings {
  return {
    issuer: url,
    audience: 'orders-api',
    tokenTtlMs: TTL,
    masterKey: undefined,
    keyRotationMs: DAY,
    rateLimit: { count: 20, periodMs: 1000 },
    ...overrides,
  };
}

async function startHarness(options: { guard?: BruteForceGuard } = {}): Promise<Harness> {
  const fixture = await backends[0]!.fresh();
  const server = await startServer();
  const logs = captureLogger();
  const clock = { now: Date.now() };
  const issuer = await createIssuer({
    settings: settingsFor(server.url),
    db: fixture.store,
    dataDir: fixture.dataDir,
    logger: logs.logger,
    now: () => clock.now,
    ...(options.guard ? { guard: options.guard } : {}),
  });
  server.mount(issuer.routes);
  const clients = new ClientRepository(fixture.store);
  const a = await clients.create({
    name: 'billing',
    scopes: ['orders:read', 'orders:write'],
    tenant: 'acme',
  });
  const b = await clients.create({ name: 'reports', scopes: ['orders:read'] });
  const issuerUrl = new URL(server.url);
  const as = await oauth.processDiscoveryResponse(
    issuerUrl,
    await oauth.discoveryRequest(issuerUrl, { algorithm: 'oauth2', ...insecure }),
  );
  return {
    url: server.url,
    issuer,
    fixture,
    clients,
    logs,
    as,
    client: { id: a.client.id, secret: a.secret },
    other: { id: b.client.id, secret: b.secret },
    clock,
    async close() {
      issuer.close();
      await server.close();
      await fixture.cleanup();
    },
  };
}

/** Requests a token with oauth4webapi and returns the processed response. */
async function requestToken(
  h: Harness,
  credentials: { id: string; secret: string },
  auth: 'basic' | 'post',
  scope?: string,
): Promise<oauth.TokenEndpointResponse> {
  const client: oauth.Client = { client_id: credentials.id };
  const method =
    auth === 'basic'
      ? oauth.ClientSecretBasic(credentials.secret)
      : oauth.ClientSecretPost(credentials.secret);
  const response = await oauth.clientCredentialsGrantRequest(
    h.as,
    client,
    method,
    new URLSearchParams(scope === undefined ? {} : { scope }),
    insecure,
  );
  return oauth.processClientCredentialsResponse(h.as, client, response);
}

/** The OAuth error of a failed oauth4webapi call, whichever way the library reports it. */
async function oauthErrorOf(promise: Promise<unknown>): Promise<{ status: number; error: string }> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof oauth.ResponseBodyError) return { status: err.status, error: err.error };
    if (err instanceof oauth.WWWAuthenticateChallengeError) {
      const body = (await err.response.json()) as { error: string };
      return { status: err.status, error: body.error };
    }
    throw err;
  }
  assert.fail('the request succeeded');
}

function basic(id: string, secret: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

describe('the built-in issuer, seen by a real OAuth client (oauth4webapi)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('publishes RFC 8414 metadata that oauth4webapi discovers', () => {
    assert.equal(h.as.issuer, h.url);
    assert.equal(h.as.token_endpoint, `${h.url}/oauth2/token`);
    assert.equal(h.as.revocation_endpoint, `${h.url}/oauth2/revoke`);
    assert.equal(h.as.jwks_uri, `${h.url}/oauth2/jwks`);
    assert.deepEqual(h.as.grant_types_supported, ['client_credentials']);
    assert.deepEqual(h.as.token_endpoint_auth_methods_supported, [
      'client_secret_basic',
      'client_secret_post',
    ]);
    assert.equal(h.as.scopes_supported, undefined, 'the scopes of the API are not advertised');
  });

  it('issues an RFC 9068 ES256 access token with client_secret_basic that verifies against the published JWKS', async () => {
    const result = await requestToken(h, h.client, 'basic', 'orders:read');
    assert.equal(result.token_type, 'bearer');
    assert.equal(result.expires_in, TTL / 1000);
    assert.equal(result.scope, 'orders:read');

    const jwks = createRemoteJWKSet(new URL(h.as.jwks_uri!));
    const { payload, protectedHeader } = await jwtVerify(result.access_token, jwks, {
      issuer: h.url,
      audience: 'orders-api',
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
    assert.equal(protectedHeader.alg, 'ES256');
    assert.equal(protectedHeader.typ, 'at+jwt');
    assert.ok(protectedHeader.kid);
    assert.equal(payload.sub, h.client.id);
    assert.equal(payload.client_id, h.client.id);
    assert.equal(payload.scope, 'orders:read');
    assert.equal(payload.tenant, 'acme');
    assert.equal(payload.exp! - payload.iat!, TTL / 1000);
    assert.match(String(payload.jti), /^[A-Za-z0-9_-]{22}$/);
  });

  it('issues a token with client_secret_post that oauth4webapi validates as an RFC 9068 access token', async () => {
    const result = await requestToken(h, h.other, 'post');
    const claims = await oauth.validateJwtAccessToken(
      h.as,
      new Request('http://api.test/orders', { headers: { authorization: `Bearer ${result.access_token}` } }),
      'orders-api',
      insecure,
    );
    assert.equal(claims.client_id, h.other.id);
    assert.equal(claims.tenant, undefined, 'no tenant claim for a client without a tenant');
  });

  it('answers with Cache-Control: no-store and Pragma: no-cache', async () => {
    const reply = await send(h.url, '/oauth2/token', {
      method: 'POST',
      headers: { ...FORM, authorization: basic(h.client.id, h.client.secret) },
      body: 'grant_type=client_credentials',
    });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['cache-control'], 'no-store');
    assert.equal(reply.headers.pragma, 'no-cache');
    assert.match(String(reply.headers['content-type']), /^application\/json/);
    assert.deepEqual(Object.keys(reply.json()).sort(), ['access_token', 'expires_in', 'scope', 'token_type']);
  });

  it('grants every allowed scope when none is requested', async () => {
    const result = await requestToken(h, h.client, 'basic');
    assert.equal(result.scope, 'orders:read orders:write');
  });

  it('narrows requested scopes to the allowed ones, silently dropping the rest', async () => {
    const result = await requestToken(h, h.other, 'basic', 'orders:read orders:write admin');
    assert.equal(result.scope, 'orders:read');
    assert.equal(decodeJwt(result.access_token).scope, 'orders:read');
  });

  it('refuses with invalid_scope when none of the requested scopes is allowed', async () => {
    assert.deepEqual(await oauthErrorOf(requestToken(h, h.other, 'basic', 'orders:write admin')), {
      status: 400,
      error: 'invalid_scope',
    });
  });

  it('refuses a wrong secret with 401 invalid_client and a Basic challenge', async () => {
    assert.deepEqual(await oauthErrorOf(requestToken(h, { ...h.client, secret: 'wrong' }, 'basic')), {
      status: 401,
      error: 'invalid_client',
    });
    const reply = await send(h.url, '/oauth2/token', {
      method: 'POST',
      headers: { ...FORM, authorization: basic(h.client.id, 'wrong') },
      body: 'grant_type=client_credentials',
    });
    assert.equal(reply.status, 401);
    assert.match(String(reply.headers['www-authenticate']), /^Basic /);
  });

  it('refuses a wrong secret sent with client_secret_post with invalid_client', async () => {
    assert.deepEqual(await oauthErrorOf(requestToken(h, { ...h.client, secret: 'wrong' }, 'post')), {
      status: 401,
      error: 'invalid_client',
    });
  });

  it('refuses an unknown client exactly like a wrong secret', async () => {
    assert.deepEqual(
      await oauthErrorOf(
        requestToken(h, { id: 'cli_AAAAAAAAAAAAAAAAAAAAAA', secret: h.client.secret }, 'basic'),
      ),
      { status: 401, error: 'invalid_client' },
    );
  });

  it('refuses a request without client authentication', async () => {
    const reply = await send(h.url, '/oauth2/token', {
      method: 'POST',
      headers: FORM,
      body: `grant_type=client_credentials&client_id=${h.client.id}`,
    });
    assert.equal(reply.status, 401);
    assert.equal(reply.json().error, 'invalid_client');
  });

  it('refuses a request that uses both client_secret_basic and client_secret_post with invalid_request', async () => {
    const reply = await send(h.url, '/oauth2/token', {
      method: 'POST',
      headers: { ...FORM, authorization: basic(h.client.id, h.client.secret) },
      body: `grant_type=client_credentials&client_id=${h.client.id}&client_secret=${h.client.secret}`,
    });
    assert.equal(reply.status, 400);
    assert.equal(reply.json().error, 'invalid_request');
  });

  it('decodes Basic credentials as form-urlencoded (RFC 6749 §2.3.1)', async () => {
    // Percent-encoding a character that needs none must still authenticate.
    const id = h.client.id.replace('_', '%5F');
    const reply = await send(h.url, '/oauth2/token', {
      method: 'POST',
      headers: {
        ...FORM,
        authorization: `Basic ${Buffer.from(`${id}:${h.client.secret}`).toString('base64')}`,
      },
      body: 'grant_type=client_credentials',
    });
    assert.equal(reply.status, 200, reply.body);
  });

  it('refuses a JSON body with invalid_request', async () => {
    const reply = await send(h.url, '/oauth2/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basic(h.client.id, h.client.secret) },
      body: JSON.stringify({ grant_type: 'client_credentials' }),
    });
    assert.equal(reply.status, 400);
    assert.equal(reply.json().error, 'invalid_request');
    assert.match(String(reply.headers['content-type']), /^application\/json/);
  });

  it('refuses a body over 8 KB without reading it all', async () => {
    const body = `grant_type=client_credentials&pad=${'a'.repeat(MAX_FORM_BYTES)}`;
    const declared = await send(h.url, '/oauth2/token', {
      method: 'POST',
      headers: { ...FORM, authorization: basic(h.client.id, h.client.secret) },
      body,
    });
    assert.equal(declared.status, 413);
    assert.equal(declared.json().error, 'invalid_request');
    assert.equal(declared.headers.connection, 'close');
    const chunked = await send(h.url, '/oauth2/token', {
      method: 'POST',
      headers: {
        ...FORM,
        authorization: basic(h.client.id, h.client.secret),
        'transfer-encoding': 'chunked',
      },
      body,
    });
    assert.equal(chunked.status, 413);
  });

  it('refuses another grant type with unsupported_grant_type', async () => {
    const reply = await send(h.url, '/oauth2/token', {
      method: 'POST',
      headers: { ...FORM, authorization: basic(h.client.id, h.client.secret) },
      body: 'grant_type=password&username=a&password=b',
    });
    assert.equal(reply.status, 400);
    assert.equal(reply.json().error, 'unsupported_grant_type');
  });

  it('refuses a parameter given twice (RFC 6749 §3.2)', async () => {
    const reply = await send(h.url, '/oauth2/token', {
      method: 'POST',
      headers: { ...FORM, authorization: basic(h.client.id, h.client.secret) },
      body: 'grant_type=client_credentials&scope=orders:read&scope=orders:write',
    });
    assert.equal(reply.status, 400);
    assert.equal(reply.json().error, 'invalid_request');
  });

  it('refuses client credentials in the URL', async () => {
    const reply = await send(
      h.url,
      `/oauth2/token?client_id=${h.client.id}&client_secret=${h.client.secret}`,
      {
        method: 'POST',
        headers: FORM,
        body: 'grant_type=client_credentials',
      },
    );
    assert.equal(reply.status, 400);
  });

  it('refuses a revoked client', async () => {
    const { client, secret } = await h.clients.create({ name: 'gone', scopes: ['orders:read'] });
    await h.clients.revoke(client.id);
    assert.deepEqual(await oauthErrorOf(requestToken(h, { id: client.id, secret }, 'basic')), {
      status: 401,
      error: 'invalid_client',
    });
  });

  it('revokes a token of the requesting client (RFC 7009), which the provider then reports as revoked', async () => {
    const { access_token } = await requestToken(h, h.client, 'basic');
    const jti = String(decodeJwt(access_token).jti);
    assert.equal(await h.issuer.provider.isRevoked?.(jti), false);
    const response = await oauth.revocationRequest(
      h.as,
      { client_id: h.client.id },
      oauth.ClientSecretBasic(h.client.secret),
      access_token,
      insecure,
    );
    await oauth.processRevocationResponse(response);
    assert.equal(await h.issuer.provider.isRevoked?.(jti), true);
    const [row] = await h.fixture.store.query<{ client_id: string }>(
      'select client_id from revoked_tokens where jti = $1',
      [jti],
    );
    assert.equal(row?.client_id, h.client.id);
  });

  it("answers 200 but revokes nothing when a client presents another client's token", async () => {
    const { access_token } = await requestToken(h, h.client, 'basic');
    const response = await oauth.revocationRequest(
      h.as,
      { client_id: h.other.id },
      oauth.ClientSecretPost(h.other.secret),
      access_token,
      insecure,
    );
    await oauth.processRevocationResponse(response);
    assert.equal(await h.issuer.provider.isRevoked?.(String(decodeJwt(access_token).jti)), false);
  });

  it('answers 200 for a token it never issued, as RFC 7009 §2.2 asks', async () => {
    const reply = await send(h.url, '/oauth2/revoke', {
      method: 'POST',
      headers: { ...FORM, authorization: basic(h.client.id, h.client.secret) },
      body: 'token=not-a-token&token_type_hint=access_token',
    });
    assert.equal(reply.status, 200);
  });

  it('refuses a revocation without client authentication', async () => {
    const { access_token } = await requestToken(h, h.client, 'basic');
    const reply = await send(h.url, '/oauth2/revoke', {
      method: 'POST',
      headers: FORM,
      body: `token=${access_token}`,
    });
    assert.equal(reply.status, 401);
    assert.equal(reply.json().error, 'invalid_client');
    assert.equal(await h.issuer.provider.isRevoked?.(String(decodeJwt(access_token).jti)), false);
  });

  it('describes itself to the verifier as a local ES256 provider with the current keys', async () => {
    const { provider } = h.issuer;
    assert.equal(provider.issuer, h.url);
    assert.deepEqual(provider.audience, ['orders-api']);
    assert.deepEqual(provider.algorithms, ['ES256']);
    assert.equal(provider.scopesClaim, 'scope');
    const { access_token } = await requestToken(h, h.client, 'basic');
    const { payload } = await jwtVerify(access_token, createLocalJWKSet(provider.getKeySet()), {
      issuer: provider.issuer,
      audience: [...provider.audience],
      algorithms: [...provider.algorithms],
    });
    assert.equal(payload.client_id, h.client.id);
  });

  it('stores client secrets only as scrypt hashes', async () => {
    const rows = await h.fixture.store.query<Record<string, unknown>>('select * from oauth_clients');
    const text = JSON.stringify(rows);
    assert.ok(!text.includes(h.client.secret));
    assert.ok(!text.includes(h.other.secret));
    for (const row of rows) assert.match(String(row.secret_hash), /^\$scrypt\$/);
  });

  it('keeps no plaintext private key in signing_keys', async () => {
    const rows = await h.fixture.store.query<Record<string, unknown>>('select * from signing_keys');
    const text = JSON.stringify(rows);
    assert.ok(!text.includes('"d"'));
    const { readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const master = Buffer.from(
      readFileSync(join(h.fixture.dataDir, 'secrets', 'issuer-master-key'), 'utf8').trim(),
      'base64',
    );
    for (const row of rows) {
      const { d } = decryptPrivateJwk(master, String(row.kid), String(row.private_jwk_encrypted));
      assert.ok(d && !text.includes(d));
    }
  });

  it('never writes a client secret or an access token to the log', async () => {
    const { access_token } = await requestToken(h, h.client, 'basic');
    await requestToken(h, h.other, 'post');
    await oauthErrorOf(requestToken(h, { ...h.client, secret: `${h.client.secret}x` }, 'post'));
    // A client that swapped its id and its secret:
    await oauthErrorOf(requestToken(h, { id: h.other.secret, secret: h.other.id }, 'basic'));
    const logged = h.logs.text();
    assert.match(logged, /access token issued/);
    assert.match(logged, /client authentication failed/);
    for (const secret of [h.client.secret, h.other.secret, access_token, access_token.split('.')[2]!]) {
      assert.ok(!logged.includes(secret));
    }
  });

  it('lets the metadata and the JWKS be cached briefly, unlike token answers', async () => {
    for (const path of ['/.well-known/oauth-authorization-server', '/oauth2/jwks']) {
      const reply = await send(h.url, path);
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['cache-control'], 'public, max-age=60');
      assert.equal(reply.headers.pragma, undefined);
      assert.equal(reply.headers['x-content-type-options'], 'nosniff');
    }
  });

  it('answers HEAD on the metadata and JWKS without a body', async () => {
    const reply = await send(h.url, '/oauth2/jwks', { method: 'HEAD' });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, '');
  });
});

describe('the built-in issuer with a brute-force guard', () => {
  let h: Harness;
  const calls: string[] = [];
  let locked = false;
  const guard: BruteForceGuard = {
    check(ip, id) {
      calls.push(`check ${ip} ${id}`);
      if (locked) {
        throw new GatewayError(
          { code: 'auth.locked_out', status: 429, title: 'Too many failed attempts.' },
          { headers: { 'retry-after': '60' } },
        );
      }
    },
    recordFailure: (ip, id) => void calls.push(`failure ${ip} ${id}`),
    recordSuccess: (ip, id) => void calls.push(`success ${ip} ${id}`),
  };
  before(async () => {
    h = await startHarness({ guard });
  });
  after(() => h.close());
  beforeEach(() => {
    calls.length = 0;
    locked = false;
  });

  it('checks before verifying the secret and records the failure after', async () => {
    await oauthErrorOf(requestToken(h, { ...h.client, secret: 'wrong' }, 'basic'));
    assert.deepEqual(calls, [`check 127.0.0.1 ${h.client.id}`, `failure 127.0.0.1 ${h.client.id}`]);
  });

  it('records a success', async () => {
    await requestToken(h, h.client, 'post');
    assert.deepEqual(calls, [`check 127.0.0.1 ${h.client.id}`, `success 127.0.0.1 ${h.client.id}`]);
  });

  it('answers 429 with Retry-After in OAuth form while locked out, without checking the secret', async () => {
    locked = true;
    const reply = await send(h.url, '/oauth2/token', {
      method: 'POST',
      headers: { ...FORM, authorization: basic(h.client.id, 'a-guess') },
      body: 'grant_type=client_credentials',
    });
    assert.equal(reply.status, 429);
    assert.equal(reply.headers['retry-after'], '60');
    assert.equal(reply.json().error, 'temporarily_unavailable');
    assert.deepEqual(calls, [`check 127.0.0.1 ${h.client.id}`]);
  });

  it('lets a secret this instance verified before through while locked out, without asking the guard', async () => {
    await requestToken(h, h.client, 'post');
    calls.length = 0;
    locked = true;
    const reply = await send(h.url, '/oauth2/token', {
      method: 'POST',
      headers: { ...FORM, authorization: basic(h.client.id, h.client.secret) },
      body: 'grant_type=client_credentials',
    });
    assert.equal(reply.status, 200);
    assert.deepEqual(calls, [`success 127.0.0.1 ${h.client.id}`]);
  });
});

describe('the built-in issuer across instances and time', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(() => h.close());

  it('rotates keys: old tokens verify until the old key is retired, new tokens carry the new kid', async () => {
    const verifyAt = async (token: string, at: number) =>
      jwtVerify(token, createRemoteJWKSet(new URL(h.as.jwks_uri!)), {
        issuer: h.url,
        audience: 'orders-api',
        typ: 'at+jwt',
        currentDate: new Date(at),
      });
    const first = await requestToken(h, h.client, 'basic');
    const oldKid = decodeProtectedHeader(first.access_token).kid;

    h.clock.now += DAY;
    await h.issuer.sync();
    const published = (await send(h.url, '/oauth2/jwks')).json<{ keys: { kid: string }[] }>().keys;
    assert.equal(published.length, 2, 'the next key is published ahead of use');
    const lastOld = await requestToken(h, h.client, 'basic');
    const lastOldAt = h.clock.now;
    assert.equal(
      decodeProtectedHeader(lastOld.access_token).kid,
      oldKid,
      'the old key signs until the new one is due',
    );

    h.clock.now += KEY_PUBLISH_AHEAD_MS;
    const fresh = await requestToken(h, h.client, 'basic');
    const newKid = decodeProtectedHeader(fresh.access_token).kid;
    assert.notEqual(newKid, oldKid);
    await verifyAt(lastOld.access_token, lastOldAt);
    await verifyAt(fresh.access_token, h.clock.now);

    h.clock.now += TTL + KEY_RETIRE_MARGIN_MS;
    await h.issuer.sync();
    const after = (await send(h.url, '/oauth2/jwks')).json<{ keys: { kid: string }[] }>().keys;
    assert.deepEqual(
      after.map((k) => k.kid),
      [newKid],
    );
    await assert.rejects(verifyAt(lastOld.access_token, lastOldAt), joseErrors.JWKSNoMatchingKey);
    await verifyAt(fresh.access_token, h.clock.now - TTL);
  });

  it('shares revocations with another instance on its next sync', async () => {
    const second = await createIssuer({
      settings: settingsFor(h.url),
      db: await h.fixture.openAnother(),
      dataDir: h.fixture.dataDir,
      logger: captureLogger().logger,
      now: () => h.clock.now,
    });
    try {
      assert.equal(second.provider.getKeySet().keys[0]?.kid, h.issuer.provider.getKeySet().keys[0]?.kid);
      const { access_token } = await requestToken(h, h.client, 'basic');
      const jti = String(decodeJwt(access_token).jti);
      const reply = await send(h.url, '/oauth2/revoke', {
        method: 'POST',
        headers: { ...FORM, authorization: basic(h.client.id, h.client.secret) },
        body: `token=${access_token}`,
      });
      assert.equal(reply.status, 200);
      assert.equal(second.provider.isRevoked?.(jti), false, 'not before the sync');
      await second.sync();
      assert.equal(second.provider.isRevoked?.(jti), true);
    } finally {
      second.close();
    }
  });

  it('forgets a revocation, and deletes its row, once the token has expired', async () => {
    const { access_token } = await requestToken(h, h.client, 'basic');
    const jti = String(decodeJwt(access_token).jti);
    await send(h.url, '/oauth2/revoke', {
      method: 'POST',
      headers: { ...FORM, authorization: basic(h.client.id, h.client.secret) },
      body: `token=${access_token}`,
    });
    assert.equal(h.issuer.provider.isRevoked?.(jti), true);
    h.clock.now += TTL + 1000;
    await h.issuer.sync();
    assert.equal(h.issuer.provider.isRevoked?.(jti), false);
    assert.deepEqual(await h.fixture.store.query('select jti from revoked_tokens'), []);
  });

  it('refuses to start under a wrong master key with a clear error', async () => {
    await assert.rejects(
      createIssuer({
        settings: settingsFor(h.url, { masterKey: randomBytes(32).toString('base64') }),
        db: h.fixture.store,
        dataDir: h.fixture.dataDir,
        logger: captureLogger().logger,
      }),
      (err: unknown) => {
        assert.ok(err instanceof IssuerError);
        assert.equal(err.code, 'issuer.master_key_mismatch');
        assert.match(err.message, /master key cannot decrypt signing key/);
        return true;
      },
    );
  });

  it('refuses a master key that is not 32 bytes of base64', async () => {
    await assert.rejects(
      createIssuer({
        settings: settingsFor(h.url, { masterKey: 'too-short' }),
        db: h.fixture.store,
        dataDir: h.fixture.dataDir,
        logger: captureLogger().logger,
      }),
      (err: unknown) => err instanceof IssuerError && err.code === 'issuer.invalid_master_key',
    );
  });
});

describe('an issuer whose URL has a path', () => {
  it('serves its metadata at the RFC 8414 §3.1 location and its endpoints under the path', async () => {
    const fixture = await backends[0]!.fresh();
    const server = await startServer();
    const issuer = await createIssuer({
      settings: settingsFor(`${server.url}/auth`),
      db: fixture.store,
      dataDir: fixture.dataDir,
      logger: captureLogger().logger,
    });
    try {
      server.mount(issuer.routes);
      assert.deepEqual(
        issuer.routes.map((r) => `${r.method} ${r.path}`),
        [
          'POST /auth/oauth2/token',
          'POST /auth/oauth2/revoke',
          'GET /auth/oauth2/jwks',
          'GET /.well-known/oauth-authorization-server/auth',
        ],
      );
      const issuerUrl = new URL(`${server.url}/auth`);
      const as = await oauth.processDiscoveryResponse(
        issuerUrl,
        await oauth.discoveryRequest(issuerUrl, { algorithm: 'oauth2', ...insecure }),
      );
      assert.equal(as.token_endpoint, `${server.url}/auth/oauth2/token`);
    } finally {
      issuer.close();
      await server.close();
      await fixture.cleanup();
    }
  });
});
