/**
 * The principal is issuer + subject: two providers that issue the same `sub`
 * are two principals to every key (rate limits, quotas, tenant), and a route
 * may restrict which providers it accepts. Through a real gateway.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import { loadConfig } from '../../config/load.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';

const A = {
  name: 'corp',
  issuer: 'https://corp.idp.test',
  secret: 'provider-a-hmac-secret-of-32-bytes-at-least',
};
const B = {
  name: 'partner',
  issuer: 'https://partner.idp.test',
  secret: 'provider-b-hmac-secret-of-32-bytes-at-least',
};
process.env.PC_PROVIDER_A_SECRET = A.secret;
process.env.PC_PROVIDER_B_SECRET = B.secret;

function token(p: typeof A, sub: string, extra: Record<string, unknown> = {}): Promise<string> {
  const t = Math.floor(Date.now() / 1000);
  return new SignJWT({ scope: 'orders:read', ...extra })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(p.issuer)
    .setAudience('orders')
    .setSubject(sub)
    .setIssuedAt(t - 5)
    .setExpirationTime(t + 600)
    .sign(new TextEncoder().encode(p.secret));
}

describe('two providers issuing the same sub', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startUpstream();
    const provider = (p: typeof A, env: string) => ({
      name: p.name,
      issuer: p.issuer,
      audience: ['orders'],
      algorithms: ['HS256'],
      hmac_secret: `\${env:${env}}`,
      tenant_claim: 'org',
    });
    gw = await startTestGateway({
      auth: {
        jwt: { providers: [provider(A, 'PC_PROVIDER_A_SECRET'), provider(B, 'PC_PROVIDER_B_SECRET')] },
      },
      rate_limit: {
        limits: {
          per_principal: { key: ['principal'], rate: '2/h' },
          per_tenant: { key: ['tenant'], rate: '2/h' },
        },
      },
      upstreams: { app: { url: upstream.url } },
      routes: [
        {
          name: 'limited',
          path: '/limited',
          methods: ['GET'],
          upstream: 'app',
          authorize: 'any-authenticated',
          rate_limits: ['per_principal'],
        },
        {
          name: 'tenant-limited',
          path: '/tenant',
          methods: ['GET'],
          upstream: 'app',
          authorize: 'any-authenticated',
          rate_limits: ['per_tenant'],
        },
        {
          name: 'corp-only',
          path: '/users/{id}',
          methods: ['GET'],
          upstream: 'app',
          providers: ['corp'],
          authorize: { owner: { param: 'path.id' } },
        },
      ],
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  const get = async (path: string, t: string) =>
    (await send(gw.url, path, { headers: { authorization: `Bearer ${t}` } })).status;

  it('counts them as different principals in rate-limit keys', async () => {
    const a = await token(A, 'alice');
    const b = await token(B, 'alice');
    assert.equal(await get('/limited', a), 200);
    assert.equal(await get('/limited', a), 200);
    assert.equal(await get('/limited', a), 429);
    // The same sub from the other provider has its own budget.
    assert.equal(await get('/limited', b), 200);
    assert.equal(await get('/limited', b), 200);
    assert.equal(await get('/limited', b), 429);
  });

  it('counts the same tenant name from two providers as two tenants', async () => {
    const a = await token(A, 'u1', { org: 'acme' });
    const b = await token(B, 'u2', { org: 'acme' });
    assert.equal(await get('/tenant', a), 200);
    assert.equal(await get('/tenant', a), 200);
    assert.equal(await get('/tenant', a), 429);
    assert.equal(await get('/tenant', b), 200);
  });

  it('lets a route accept only the providers it names: the owner rule compares within that provider', async () => {
    const a = await token(A, 'bob');
    const b = await token(B, 'bob');
    assert.equal(await get('/users/bob', a), 200);
    // The partner's "bob" is not corp's bob: refused before ownership is even compared.
    assert.equal(await get('/users/bob', b), 401);
  });
});

describe('owner rules on a route that accepts several providers', () => {
  it('warns until the route names the providers it accepts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-providers-'));
    const write = (route: Record<string, unknown>) => {
      const file = join(dir, 'portcullis.yaml');
      const provider = (p: typeof A, env: string) => ({
        name: p.name,
        issuer: p.issuer,
        audience: ['orders'],
        algorithms: ['HS256'],
        hmac_secret: `\${env:${env}}`,
      });
      writeFileSync(
        file,
        stringify({
          auth: {
            jwt: { providers: [provider(A, 'PC_PROVIDER_A_SECRET'), provider(B, 'PC_PROVIDER_B_SECRET')] },
          },
          upstreams: { app: { url: 'http://127.0.0.1:9' } },
          routes: [
            {
              path: '/users/{id}',
              methods: ['GET'],
              upstream: 'app',
              authorize: { owner: { param: 'path.id' } },
              ...route,
            },
          ],
        }),
      );
      return loadConfig(file, { env: { ...process.env, PORTCULLIS_DATA: dir } });
    };
    try {
      const open = await write({});
      assert.ok(open.warnings.some((w) => w.path.includes('providers')));
      const closed = await write({ providers: ['corp'] });
      assert.ok(!closed.warnings.some((w) => w.path.includes('providers')));
      await assert.rejects(write({ providers: ['nobody'] }), /providers/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
