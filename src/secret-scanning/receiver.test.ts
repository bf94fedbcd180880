import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sendProblem } from '../errors.js';
import type { AdminEvent, SecurityEvent } from '../events/types.js';
import { runKeysCommand } from '../keys/cli.js';
import { generateApiKey } from '../keys/format.js';
import { createApiKeyStore } from '../keys/store.js';
import { openStore } from '../store/index.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { createKeyRing } from './public-keys.js';
import { createSecretScanningEndpoint } from './receiver.js';

/** A scanning provider made at test time: its key pair, and the key list it publishes. */
function provider(keyIdentifier: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return { keyIdentifier, privateKey, pem };
}

/** ECDSA P-256 / SHA-256, DER, base64: what GitHub puts in Github-Public-Key-Signature. */
const signBody = (body: string, key: KeyObject) => sign('sha256', Buffer.from(body), key).toString('base64');

interface Listener {
  url: string;
  hits: number;
  bodies: string[];
  close(): Promise<void>;
}

async function listen(handler: (body: string) => [number, string]): Promise<Listener> {
  const state = { hits: 0, bodies: [] as string[] };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.hits++;
      const body = Buffer.concat(chunks).toString();
      state.bodies.push(body);
      const [status, answer] = handler(body);
      res.writeHead(status, { 'content-type': 'application/json' }).end(answer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get hits() {
      return state.hits;
    },
    bodies: state.bodies,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function keys(args: string[], gw: TestGateway): Promise<string> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runKeysCommand([...args, '--config', gw.configFile], {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    env: { PORTCULLIS_DATA: gw.dataDir },
  });
  assert.equal(code, 0, err.join('\n'));
  return out.join('\n');
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const waitFor = async (check: () => boolean, ms = 3000) => {
  const until = Date.now() + ms;
  while (!check() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  assert.ok(check(), 'timed out');
};

describe('the secret-scanning receiver', () => {
  const github = provider('90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a');
  const stranger = provider('f9525bf080f75b3506ca1ead061add62b8633a346606dc5fe544e29231c6ee0d');
  let keyList: Listener;
  let webhook: Listener;
  let upstream: TestUpstream;
  let gw: TestGateway;
  const events: SecurityEvent[] = [];
  const PATH = '/.well-known/portcullis/secret-scanning';

  before(async () => {
    keyList = await listen(() => [
      200,
      JSON.stringify({
        public_keys: [{ key_identifier: github.keyIdentifier, key: github.pem, is_current: true }],
      }),
    ]);
    webhook = await listen(() => [200, '{}']);
    upstream = await startUpstream();
    gw = await startTestGateway({
      auth: { api_keys: {} },
      alerts: { webhooks: [{ name: 'security', url: `${webhook.url}/hook`, min_severity: 'warning' }] },
      secret_scanning: { enabled: true, public_keys_url: `${keyList.url}/meta/public_keys/secret_scanning` },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' }],
    });
    gw.running.events.subscribe({ emit: (e) => events.push(e) });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
    await keyList.close();
    await webhook.close();
  });

  const report = (body: string, headers: Record<string, string> = {}) =>
    send(gw.url, PATH, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        'github-public-key-identifier': github.keyIdentifier,
        'github-public-key-signature': signBody(body, github.privateKey),
        ...headers,
      },
    });
  const get = (key: string) => send(gw.url, '/orders', { headers: { 'x-api-key': key } });

  it('revokes a reported key at once, answers in the partner format, audits it and alerts the webhooks', async () => {
    const leaked = (await keys(['create', '--name', 'ci-bot', '--scopes', 'orders:read'], gw)).trim();
    const kept = (await keys(['create', '--name', 'billing', '--scopes', 'orders:read'], gw)).trim();
    // Cached by the gateway before the report: revocation must reach the cache, not wait for its ttl.
    assert.equal((await get(leaked)).status, 200);
    const unknown = generateApiKey().key;
    const body = JSON.stringify([
      {
        token: leaked,
        type: 'portcullis_api_key',
        url: 'https://github.com/octo/app/blob/abc/.env',
        source: 'content',
      },
      {
        token: unknown,
        type: 'portcullis_api_key',
        url: 'https://github.com/octo/app/blob/abc/x',
        source: 'content',
      },
      { token: 'pcl_not-a-key', type: 'portcullis_api_key', url: '', source: 'commit' },
    ]);
    const answer = await report(body);
    const answeredAt = Date.now();
    assert.equal(answer.status, 200, answer.body);
    assert.match(String(answer.headers['content-type']), /^application\/json/);
    assert.deepEqual(answer.json(), [
      { token_hash: sha256(leaked), token_type: 'portcullis_api_key', label: 'true_positive' },
      { token_hash: sha256(unknown), token_type: 'portcullis_api_key', label: 'false_positive' },
      { token_hash: sha256('pcl_not-a-key'), token_type: 'portcullis_api_key', label: 'false_positive' },
    ]);
    assert.ok(!answer.body.includes(leaked));

    // Within the same second, through the gateway: the leaked key is refused, the other still works.
    assert.equal((await get(leaked)).status, 401);
    assert.ok(Date.now() - answeredAt < 1000);
    assert.equal((await get(kept)).status, 200);
    const id = `key_${leaked.slice(4, 20)}`;
    const list = await keys(['list', '--json'], gw);
    const rows = JSON.parse(list) as Array<{ id: string; status: string }>;
    assert.deepEqual(
      rows.map((r) => [r.id, r.status]),
      [
        [id, 'revoked'],
        [`key_${kept.slice(4, 20)}`, 'active'],
      ],
    );

    const admin = events.filter((e): e is AdminEvent => e.type === 'admin' && e.target === id);
    assert.deepEqual(
      admin.map((e) => [e.action, e.actor]).filter(([a]) => a !== 'alert.raised'),
      [
        ['key.leaked', 'secret-scanning'],
        ['key.revoked', 'secret-scanning'],
      ],
    );
    assert.equal(admin[0]!.detail?.outcome, 'revoked');
    assert.equal(admin[0]!.detail?.url, 'https://github.com/octo/app/blob/abc/.env');
    await waitFor(() => webhook.bodies.length > 0);
    const alert = JSON.parse(webhook.bodies[0]!) as Record<string, unknown>;
    assert.equal(alert.detector, 'leaked_key');
    assert.equal(alert.severity, 'critical');
    assert.deepEqual(alert.subject, { kind: 'api_key', id });
    assert.match(
      String(alert.summary),
      /found at https:\/\/github\.com\/octo\/app\/blob\/abc\/\.env by secret scanning and revoked/,
    );
    for (const text of [JSON.stringify(events), JSON.stringify(gw.logs), ...webhook.bodies]) {
      assert.ok(!text.includes(leaked) && !text.includes(unknown), 'a reported token was recorded');
    }

    // Reported again (GitHub re-reports): still a true positive, nothing revoked twice.
    const again = await report(
      JSON.stringify([{ token: leaked, type: 'portcullis_api_key', url: '', source: 'content' }]),
    );
    assert.deepEqual(
      again.json<Array<{ label: string }>>().map((e) => e.label),
      ['true_positive'],
    );
    assert.equal(
      events.filter((e) => e.type === 'admin' && e.action === 'key.revoked' && e.target === id).length,
      1,
    );
  });

  it('refuses a tampered, unsigned or foreign-signed report with 403, and looks at nothing in it', async () => {
    const key = (await keys(['create', '--name', 'victim', '--scopes', 'orders:read'], gw)).trim();
    const body = JSON.stringify([{ token: key, type: 'portcullis_api_key', url: '', source: 'content' }]);
    const signature = signBody(body, github.privateKey);
    const tampered = body.replace('victim', 'victim').replace('"source":"content"', '"source":"contenu"');
    const attempts = [
      // The body changed after signing.
      await report(tampered, { 'github-public-key-signature': signature }),
      // One bit of the signature flipped.
      await report(body, {
        'github-public-key-signature': Buffer.from(
          Buffer.from(signature, 'base64').map((b, i) => (i === 10 ? b ^ 1 : b)),
        ).toString('base64'),
      }),
      // Signed by a key GitHub does not publish, under GitHub's identifier.
      await report(body, { 'github-public-key-signature': signBody(body, stranger.privateKey) }),
      // An identifier nobody publishes.
      await report(body, {
        'github-public-key-identifier': stranger.keyIdentifier,
        'github-public-key-signature': signBody(body, stranger.privateKey),
      }),
      // No signature at all, or not base64.
      await send(gw.url, PATH, { method: 'POST', body, headers: { 'content-type': 'application/json' } }),
      await report(body, { 'github-public-key-signature': 'not base64!' }),
    ];
    for (const r of attempts) {
      assert.equal(r.status, 403, r.body);
      assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
      assert.equal(r.json().code, 'secret_scanning.bad_signature');
      assert.ok(!r.body.includes(key));
    }
    assert.equal((await get(key)).status, 200);
    assert.ok(
      !events.some(
        (e) => e.type === 'admin' && e.action === 'key.leaked' && e.target === `key_${key.slice(4, 20)}`,
      ),
    );
  });

  it('answers 4xx problems for a signed report that is not one, never a 500', async () => {
    const notArray = '{"token":"x"}';
    const r1 = await report(notArray);
    assert.equal(r1.status, 400);
    assert.equal(r1.json().code, 'secret_scanning.bad_report');
    const r2 = await report('[{"type":"portcullis_api_key"}]');
    assert.equal(r2.status, 400);
    const r3 = await report('[]', { 'content-type': 'text/plain' });
    assert.equal(r3.status, 415);
    const r4 = await report('[]');
    assert.equal(r4.status, 200);
    assert.deepEqual(r4.json(), []);
    const many = JSON.stringify(Array.from({ length: 1001 }, () => ({ token: 'x', type: 't' })));
    const r6 = await report(many);
    assert.equal(r6.status, 413);
    assert.match(String(r6.headers['content-type']), /^application\/problem\+json/);
    const huge = `[${' '.repeat(1024 * 1024)}]`;
    assert.equal((await report(huge)).status, 413);
    const r5 = await send(gw.url, PATH, { method: 'GET' });
    assert.notEqual(r5.status, 200);
    assert.ok(r5.status < 500);
  });

  it('fetches the provider’s keys once, and again at most every 10 seconds for an unknown identifier', async () => {
    const before = keyList.hits;
    for (let i = 0; i < 5; i++) {
      const body = '[]';
      await report(body, {
        'github-public-key-identifier': `made-up-${i}`,
        'github-public-key-signature': signBody(body, stranger.privateKey),
      });
    }
    assert.ok(keyList.hits - before <= 1, `${keyList.hits - before} fetches`);
  });
});

describe('the secret-scanning receiver with inline keys and action: flag', () => {
  it('only flags a leaked key: it keeps working, and the alert says it was not revoked', async () => {
    const github = provider('inline-1');
    const webhook = await listen(() => [200, '{}']);
    const upstream = await startUpstream();
    const gw = await startTestGateway({
      auth: { api_keys: {} },
      alerts: { webhooks: [{ name: 'security', url: `${webhook.url}/hook`, min_severity: 'info' }] },
      secret_scanning: {
        enabled: true,
        action: 'flag',
        path: '/hooks/leaks',
        public_keys: [{ key_identifier: github.keyIdentifier, key: github.pem }],
      },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' }],
    });
    try {
      const key = (await keys(['create', '--name', 'ci', '--scopes', 'orders:read'], gw)).trim();
      const body = JSON.stringify([{ token: key, type: 'portcullis_api_key', url: '', source: 'content' }]);
      const r = await send(gw.url, '/hooks/leaks', {
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/json',
          'github-public-key-identifier': github.keyIdentifier,
          'github-public-key-signature': signBody(body, github.privateKey),
        },
      });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json<Array<{ label: string }>>()[0]!.label, 'true_positive');
      assert.equal((await send(gw.url, '/orders', { headers: { 'x-api-key': key } })).status, 200);
      await waitFor(() => webhook.bodies.length > 0);
      assert.match(JSON.parse(webhook.bodies[0]!).summary, /flagged only/);
      // The default path is not served when another is configured.
      assert.equal(
        (await send(gw.url, '/.well-known/portcullis/secret-scanning', { method: 'POST', body })).status,
        404,
      );
    } finally {
      await gw.close();
      await upstream.close();
      await webhook.close();
    }
  });

  it('is off by default: the path is just another unrouted path', async () => {
    const upstream = await startUpstream();
    const gw = await startTestGateway({
      auth: { api_keys: {} },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' }],
    });
    try {
      const r = await send(gw.url, '/.well-known/portcullis/secret-scanning', {
        method: 'POST',
        body: '[]',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(r.status, 404);
    } finally {
      await gw.close();
      await upstream.close();
    }
  });
});

describe('the receiver’s work per token', () => {
  it('is the same for a malformed token, an unknown key and a real one: one lookup and one HMAC each; a store outage is a 503', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-scan-work-'));
    const store = await openStore({ dataDir });
    const server = createServer();
    try {
      await store.migrate();
      const pepper = 'a pepper of at least sixteen bytes';
      const real = await createApiKeyStore(store, { pepper, logger: { warn: () => {} } }).create({
        name: 'real',
        scopes: [],
      });
      const lookups: string[] = [];
      let storeDown = false;
      const counting = {
        ...store,
        dialect: store.dialect,
        query: (sql: string, params?: readonly unknown[]) => {
          if (storeDown) return Promise.reject(new Error('connection refused'));
          if (sql.includes('from api_keys where id')) lookups.push(String(params?.[0]));
          return store.query(sql, params);
        },
        execute: store.execute.bind(store),
        transaction: store.transaction.bind(store),
      } as typeof store;
      const github = provider('k');
      const endpoint = createSecretScanningEndpoint(
        {
          enabled: true,
          path: '/scan',
          action: 'flag',
          publicKeysUrl: undefined,
          publicKeys: [{ keyIdentifier: 'k', key: github.pem }],
          refreshMs: 60_000,
          timeoutMs: 1000,
          maxBodyBytes: 65536,
          maxTokens: 10,
          severity: 'critical',
        },
        {
          db: counting,
          pepper,
          keyRing: createKeyRing({
            url: undefined,
            inline: [{ keyIdentifier: 'k', key: github.pem }],
            refreshMs: 60_000,
            timeoutMs: 1000,
            logger: { warn: () => {} },
          }),
          invalidate: () => {},
          emit: () => {},
          alert: () => {},
          logger: { warn: () => {} },
        },
      );
      server.on('request', (req, res) => {
        // As the gateway serves its endpoints: a thrown error becomes a problem answer.
        endpoint
          .handle(req, res, { clientIp: '127.0.0.1', requestId: 'req_test' })
          .catch((err) => sendProblem(res, err, 'req_test'));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      const tokens = ['garbage', 'x'.repeat(5000), generateApiKey().key, real.key];
      const body = JSON.stringify(tokens.map((token) => ({ token, type: 't', url: '', source: 'content' })));
      const r = await send(`http://127.0.0.1:${port}`, '/scan', {
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/json',
          'github-public-key-identifier': 'k',
          'github-public-key-signature': signBody(body, github.privateKey),
        },
      });
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(
        r.json<Array<{ label: string }>>().map((e) => e.label),
        ['false_positive', 'false_positive', 'false_positive', 'true_positive'],
      );
      assert.equal(lookups.length, 4, 'one store lookup per token, whatever it is');
      assert.equal(lookups[0], lookups[1]);

      storeDown = true;
      const down = await send(`http://127.0.0.1:${port}`, '/scan', {
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/json',
          'github-public-key-identifier': 'k',
          'github-public-key-signature': signBody(body, github.privateKey),
        },
      });
      assert.equal(down.status, 503);
      assert.equal(down.headers['retry-after'], '30');
      assert.ok(!down.body.includes(real.key));
    } finally {
      server.close();
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
