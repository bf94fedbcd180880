/** Attempts to get around authorization; each must be denied, and its legitimate twin allowed. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { send } from '../test-support/http.js';

const SECRET = 'bypass-test-secret-that-is-at-least-32-bytes';

function token(sub: string, extra: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ scope: 'orders:read', tenant: 'acme', roles: ['user'], ...extra })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('urn:test')
    .setAudience('api')
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
}

describe('authorization bypass attempts', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let alice: Record<string, string>;
  let user42: Record<string, string>;

  before(async () => {
    process.env.PC_BYPASS_SECRET = SECRET;
    upstream = await startUpstream();
    gw = await startTestGateway({
      listen: { trusted_proxies: ['127.0.0.1'] },
      auth: {
        jwt: {
          providers: [
            {
              name: 'test',
              issuer: 'urn:test',
              audience: ['api'],
              algorithms: ['HS256'],
              hmac_secret: '${env:PC_BYPASS_SECRET}',
              roles_claim: 'roles',
              tenant_claim: 'tenant',
            },
          ],
        },
      },
      authorization: { network: { deny: ['192.0.2.0/24'] } },
      upstreams: { app: { url: upstream.url } },
      routes: [
        {
          path: '/users/{userId}/orders',
          methods: ['GET'],
          upstream: 'app',
          authorize: { any: [{ owner: { param: 'path.userId' } }, { roles: ['admin'] }] },
        },
        {
          path: '/search',
          methods: ['GET'],
          upstream: 'app',
          authorize: { owner: { param: 'query.userId' } },
        },
        {
          path: '/transfer/{userId}',
          methods: ['POST'],
          upstream: 'app',
          authorize: { owner: { param: ['path.userId', 'body.userId'] } },
        },
        {
          path: '/tenant-data',
          methods: ['GET'],
          upstream: 'app',
          authorize: { tenant: { param: 'header.x-tenant-id' } },
        },
        // Inspection off: the raw target `/public/../admin/users` is itself a
        // traversal the inspect stage refuses; here authorization must decide.
        {
          path: '/admin/*',
          methods: ['GET'],
          upstream: 'app',
          authorize: { roles: ['admin'] },
          inspection: { mode: 'off' },
        },
        { path: '/beta', methods: ['GET'], upstream: 'app', authorize: { mode: 'shadow', roles: ['beta'] } },
        { path: '/public/*', methods: ['GET'], upstream: 'app', auth: 'none' },
      ],
    });
    alice = { authorization: `Bearer ${await token('alice')}` };
    user42 = { authorization: `Bearer ${await token('42')}` };
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  const status = async (
    path: string,
    headers: Record<string, string>,
    init: { method?: string; body?: string } = {},
  ) => (await send(gw.url, path, { headers, ...init })).status;

  it('lets the owner read their own objects (the legitimate request)', async () => {
    assert.equal(await status('/users/alice/orders', alice), 200);
  });

  it("denies another user's id in the path", async () => {
    assert.equal(await status('/users/bob/orders', alice), 403);
  });

  it('compares ids exactly: another case or leading zeros are not the same id', async () => {
    assert.equal(await status('/users/Alice/orders', alice), 403);
    assert.equal(await status('/users/ALICE/orders', alice), 403);
    assert.equal(await status('/users/042/orders', user42), 403);
    assert.equal(await status('/users/42/orders', user42), 200);
  });

  it('decodes an encoded id once, to the same canonical id the upstream receives', async () => {
    const before = upstream.requests.length;
    assert.equal(await status('/users/%61lice/orders', alice), 200);
    assert.equal(upstream.requests[before]?.url, '/users/alice/orders');
    assert.equal(await status('/users/%62ob/orders', alice), 403);
    assert.equal(await status('/users/alice%2f..%2fbob/orders', alice), 400);
  });

  it('denies parameter pollution: every occurrence must be the principal’s', async () => {
    assert.equal(await status('/search?userId=alice', alice), 200);
    assert.equal(await status('/search?userId=alice&userId=bob', alice), 403);
    assert.equal(await status('/search?userId=bob&userId=alice', alice), 403);
    assert.equal(await status('/search', alice), 403);
  });

  it('denies a body id that disagrees with the path id', async () => {
    const json = { ...alice, 'content-type': 'application/json' };
    assert.equal(
      await status('/transfer/alice', json, { method: 'POST', body: '{"userId":"alice","amount":5}' }),
      200,
    );
    assert.equal(
      await status('/transfer/alice', json, { method: 'POST', body: '{"userId":"bob","amount":5}' }),
      403,
    );
    // The rule names the body: a body without the field may still bind it some other way.
    assert.equal(await status('/transfer/alice', json, { method: 'POST', body: '{"amount":5}' }), 403);
    assert.equal(await status('/transfer/bob', json, { method: 'POST', body: '{"userId":"alice"}' }), 403);
    // Duplicate keys: a last-wins parser would see alice, a first-wins upstream bob.
    assert.equal(
      await status('/transfer/alice', json, { method: 'POST', body: '{"userId":"bob","userId":"alice"}' }),
      400,
    );
  });

  it('denies a tenant header naming another tenant, and never forwards a forged identity', async () => {
    assert.equal(await status('/tenant-data', { ...alice, 'x-tenant-id': 'acme' }), 200);
    assert.equal(await status('/tenant-data', { ...alice, 'x-tenant-id': 'globex' }), 403);
    const reply = await send(gw.url, '/tenant-data', {
      headers: {
        ...alice,
        'x-tenant-id': 'acme',
        'x-portcullis-tenant': 'globex',
        'x-portcullis-subject': 'admin',
      },
    });
    const headers = reply.json().headers as Record<string, string>;
    assert.equal(headers['x-portcullis-tenant'], 'acme');
    assert.equal(headers['x-portcullis-subject'], 'alice');
  });

  it('authorizes the method actually sent; override headers never reach the upstream', async () => {
    const reply = await send(gw.url, '/users/alice/orders', {
      headers: { ...alice, 'x-http-method-override': 'DELETE', 'x-method-override': 'DELETE' },
    });
    assert.equal(reply.status, 200);
    const seen = reply.json() as { method: string; headers: Record<string, string> };
    assert.equal(seen.method, 'GET');
    assert.equal(seen.headers['x-http-method-override'], undefined);
    assert.equal(await status('/users/alice/orders', alice, { method: 'DELETE' }), 405);
  });

  it('applies the admin rule to every spelling of an admin path', async () => {
    for (const path of [
      '/admin/users',
      '/public/../admin/users',
      '//admin/users',
      '/%2e%2e/admin/users',
      '/public/%2e%2e/admin/users',
    ]) {
      const reply = await send(gw.url, path, { headers: alice });
      assert.equal(reply.status, 403, path);
      assert.equal(reply.json().code, 'authz.forbidden', path);
    }
    assert.equal(await status('/admin%2f..', alice), 400);
    const admin = { authorization: `Bearer ${await token('root', { roles: ['admin'] })}` };
    assert.equal(await status('/public/../admin/users', admin), 200);
  });

  it('lets a shadow-mode denial through and reports it', async () => {
    assert.equal(await status('/beta', alice), 200);
    assert.ok(gw.logs.some((l) => l.msg === 'authorization would deny (shadow)' && l.route === 'GET /beta'));
  });

  it('denies a globally denied network even on a public route', async () => {
    assert.equal(await status('/public/x', { 'x-forwarded-for': '192.0.2.7' }), 403);
    assert.equal(await status('/public/x', { 'x-forwarded-for': '198.51.100.7' }), 200);
  });

  it('says nothing about which rule failed', async () => {
    const reply = await send(gw.url, '/users/bob/orders', { headers: alice });
    assert.doesNotMatch(reply.body, /owner|admin|alice|bob|rule/);
  });
});
