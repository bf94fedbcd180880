/** The API document's security requirements are enforced as written, on top of a route's own rules. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { startOrdersApi } from '../demo/orders-api.js';
import { startTestGateway, type TestGateway } from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { explainRequest } from './explain.js';

const SECRET = 'document-security-test-secret-32-bytes!';

const token = (scope: string) =>
  new SignJWT({ scope })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('urn:test')
    .setAudience('api')
    .setSubject('1')
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));

describe('security requirements stated by the API document', () => {
  let gw: TestGateway;
  let api: Awaited<ReturnType<typeof startOrdersApi>>;

  before(async () => {
    process.env.PC_DOCSEC_SECRET = SECRET;
    api = await startOrdersApi(0);
    gw = await startTestGateway({
      auth: {
        jwt: {
          providers: [
            {
              name: 't',
              issuer: 'urn:test',
              audience: ['api'],
              algorithms: ['HS256'],
              hmac_secret: '${env:PC_DOCSEC_SECRET}',
            },
          ],
        },
      },
      api: { document: new URL('../../demo/openapi.yaml', import.meta.url).pathname },
      upstreams: { orders: { url: `http://127.0.0.1:${api.port}` } },
      // The route itself asks only for an authenticated caller; the document asks for users:read.
      routes: [
        { path: '/users/{userId}', methods: ['GET'], upstream: 'orders', authorize: 'any-authenticated' },
      ],
    });
  });

  after(async () => {
    await gw.close();
    await api.close();
  });

  it('denies a token without the scope the document requires', async () => {
    const reply = await send(gw.url, '/users/1', {
      headers: { authorization: `Bearer ${await token('orders:read')}` },
    });
    assert.equal(reply.status, 403);
  });

  it('lets a token with that scope through', async () => {
    const reply = await send(gw.url, '/users/1', {
      headers: { authorization: `Bearer ${await token('users:read')}` },
    });
    assert.equal(reply.status, 200);
  });

  it('shows the document rule in explain', async () => {
    const gateway = gw.running.current();
    const e = await explainRequest(
      gateway.config,
      { store: gw.running.store, auth: gw.running.authServices() },
      {
        method: 'GET',
        target: '/users/1',
        headers: {},
        clientIp: '127.0.0.1',
        claims: { sub: '1', scope: 'orders:read', iss: 'urn:test' },
      },
    );
    assert.equal(e.decision, 'deny');
    assert.ok(e.rules.some((r) => r.rule.startsWith('document security') && !r.pass));
  });
});
