/**
 * Run by `jwks-hang.test.ts` as `node --expose-gc --import tsx`: key fetching
 * against a JWKS server that accepts connections and never answers, with
 * garbage collection forced all the while, then the server recovering.
 * Prints one JSON line with what it measured; the test asserts on it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { startTestGateway, startUpstream } from '../../../test-support/gateway.js';
import { send } from '../../../test-support/http.js';
import { captureLogger } from '../../../test-support/log.js';
import { RemoteKeySource } from '../jwks.js';

const exposed = (globalThis as { gc?: () => void }).gc;
if (exposed === undefined) throw new Error('run with --expose-gc');
let gcMs = 0;
let gcRuns = 0;
const gc = (): void => {
  const t = performance.now();
  exposed();
  gcMs += performance.now() - t;
  gcRuns++;
};

const RUNS = Number(process.env.RUNS ?? 20);
const TIMEOUT_MS = 300;

const signing = await generateKeyPair('ES256', { extractable: true });
const jwk = { ...(await exportJWK(signing.publicKey)), kid: 'k1', alg: 'ES256' };

/** Answers nothing while `hang` is set (the connection stays open); the JWKS otherwise. */
let hang = true;
const held: ServerResponse[] = [];
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  if (hang) {
    held.push(res);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
  void req;
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const jwksUri = `${origin}/jwks.json`;

// Forced collections while fetches are pending: a timeout that is only weakly held would be lost.
const collector = setInterval(() => gc(), 50);

const settleMs: number[] = [];
let pendingAfterRuns = 0;
for (let run = 0; run < RUNS; run++) {
  const controller = new AbortController();
  const source = new RemoteKeySource({
    name: `run${run}`,
    issuer: origin,
    jwksUri,
    jwksCacheMs: 600_000,
    jwksCooldownMs: 30_000,
    jwksTimeoutMs: TIMEOUT_MS,
    logger: captureLogger('fatal').logger,
    now: Date.now,
    stats: { jwksFetches: 0 },
    signal: controller.signal,
  });
  const started = Date.now();
  let settled = false;
  let settledAt = 0;
  const fetching = source.refresh().then(() => {
    settled = true;
    settledAt = Date.now();
  });
  // Collect between start and the deadline, as a busy process would.
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, TIMEOUT_MS / 4));
    gc();
  }
  await Promise.race([fetching, new Promise((r) => setTimeout(r, TIMEOUT_MS * 10))]);
  if (!settled) pendingAfterRuns++;
  settleMs.push((settled ? settledAt : Date.now()) - started);
  controller.abort();
}

// The same source, through its own retries: hung first, then the server answers.
const controller = new AbortController();
const source = new RemoteKeySource({
  name: 'recovering',
  issuer: origin,
  jwksUri,
  jwksCacheMs: 600_000,
  jwksCooldownMs: 30_000,
  jwksTimeoutMs: TIMEOUT_MS,
  logger: captureLogger('fatal').logger,
  now: Date.now,
  stats: { jwksFetches: 0 },
  signal: controller.signal,
});
await source.refresh();
const hadKeysWhileHung = source.hasKeys;
hang = false;
const recoverStarted = Date.now();
while (!source.hasKeys && Date.now() - recoverStarted < 10_000) {
  await new Promise((r) => setTimeout(r, 20));
}
const selfRecoveryMs = source.hasKeys ? Date.now() - recoverStarted : -1;
controller.abort();

// Through a gateway: a cold start with the provider hung, then it answers.
hang = true;
const upstream = await startUpstream();
const gw = await startTestGateway({
  log: { level: 'fatal' },
  auth: {
    jwt: {
      providers: [
        {
          name: 'idp',
          issuer: origin,
          jwks_uri: jwksUri,
          audience: ['api'],
          algorithms: ['ES256'],
          jwks_timeout: `${TIMEOUT_MS}ms`,
        },
      ],
    },
  },
  upstreams: { app: { url: upstream.url } },
  routes: [{ path: '/orders', methods: ['GET'], upstream: 'app', authorize: 'any-authenticated' }],
});
const token = await new SignJWT({ scope: 'orders' })
  .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
  .setIssuer(origin)
  .setAudience('api')
  .setSubject('user-1')
  .setIssuedAt()
  .setExpirationTime('10m')
  .sign(signing.privateKey);
const gatewayWhileHung: { status: number; ms: number }[] = [];
for (let i = 0; i < 5; i++) {
  const t = Date.now();
  const reply = await send(gw.url, '/orders', { headers: { authorization: `Bearer ${token}` } });
  gatewayWhileHung.push({ status: reply.status, ms: Date.now() - t });
  gc();
}
const readyWhileHung = (await send(gw.adminUrl, '/readyz')).status;
hang = false;
const back = Date.now();
let gatewayRecoveryMs = -1;
while (Date.now() - back < 15_000) {
  const reply = await send(gw.url, '/orders', { headers: { authorization: `Bearer ${token}` } });
  if (reply.status === 200) {
    gatewayRecoveryMs = Date.now() - back;
    break;
  }
  await new Promise((r) => setTimeout(r, 100));
}

clearInterval(collector);
await gw.close();
await upstream.close();
for (const res of held) res.destroy();
server.closeAllConnections();
server.close();
process.stdout.write(
  `${JSON.stringify({
    timeoutMs: TIMEOUT_MS,
    settleMs,
    pendingAfterRuns,
    hadKeysWhileHung,
    selfRecoveryMs,
    gatewayWhileHung,
    readyWhileHung,
    gatewayRecoveryMs,
    gcRuns,
    gcMs: Math.round(gcMs),
  })}\n`,
);
