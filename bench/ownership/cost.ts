/**
 * What ownership decided on the response (`owner: { response: /owner }`)
 * costs per request, two ways:
 *
 * 1. the filter stage's work alone (the request-side plan, then parsing and
 *    checking the collected body), on contexts without a socket;
 * 2. end to end over loopback: a real gateway in front of a real upstream,
 *    the same route with and without the rule (without it the response
 *    streams through; with it the gateway collects, parses and checks the
 *    body before sending it), sequential requests, mean and p50/p99.
 *
 * Sizes: one order (~200 B), a 1 KB object, and a collection of 100 and of
 * 1,000 orders (~20 KB, ~200 KB). Prints; nothing is asserted.
 *
 * Run: node --import tsx bench/ownership/cost.ts
 *      BENCH_N=20000 BENCH_E2E_N=5000 node --import tsx bench/ownership/cost.ts
 */
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { SignJWT } from 'jose';
import { compilePolicy } from '../../src/authz/policy.js';
import type { RouteSettings } from '../../src/config/types.js';
import { createOwnership } from '../../src/stages/filter/ownership.js';
import { startTestGateway, startUpstream } from '../../src/test-support/gateway.js';
import { captureLogger, fakeContext, principal, testRoute } from '../../src/test-support/stage.js';

const N = Number(process.env.BENCH_N ?? 20_000);
const E2E_N = Number(process.env.BENCH_E2E_N ?? 3_000);
const out = (line: string) => process.stdout.write(`${line}\n`);

const order = (i: number, owner: string) => ({
  id: `ord_${1000 + i}`,
  owner,
  tenant: 'acme',
  item: 'widget',
  qty: 2,
  status: 'paid',
  created_at: '2024-05-01T10:00:00.000Z',
});
const BODIES: Record<string, unknown> = {
  'one order (~150 B)': order(1, '1'),
  '1 KB object': { ...order(1, '1'), note: 'x'.repeat(850) },
  '100 orders (~15 KB), half foreign': Array.from({ length: 100 }, (_, i) => order(i, i % 2 ? '1' : '2')),
  '1000 orders (~150 KB), half foreign': Array.from({ length: 1000 }, (_, i) => order(i, i % 2 ? '1' : '2')),
};

// 1. The stage's work alone.
out(`# The filter stage alone (N=${N}): plan on the request, parse and check the body`);
const route = { ...testRoute('read-order'), authorize: undefined } as unknown as RouteSettings;
const policy = compilePolicy({
  scopes: ['orders:read'],
  any: [{ owner: { response: '/owner' } }, { roles: ['admin'] }],
})!;
const ownership = createOwnership(route, policy, captureLogger('silent').logger);
const alice = principal('jwt', '1', { scopes: ['orders:read'] });
for (const [label, value] of Object.entries(BODIES)) {
  const body = Buffer.from(JSON.stringify(value));
  const run = () => {
    const ctx = fakeContext(route);
    ctx.principal = alice;
    ownership.prepare(ctx);
    const owned = ownership.check(ctx, {
      status: 200,
      headers: ['content-type', 'application/json'],
      body,
    });
    // What the filter then sends when items were removed.
    if (owned?.changed) Buffer.from(JSON.stringify(owned.value));
  };
  const base = () => {
    const ctx = fakeContext(route);
    ctx.principal = alice;
  };
  const micros = (fn: () => void) => {
    for (let i = 0; i < Math.min(N, 2000); i++) fn();
    const start = performance.now();
    for (let i = 0; i < N; i++) fn();
    return ((performance.now() - start) * 1000) / N;
  };
  const us = micros(run) - micros(base);
  out(`${label.padEnd(42)} ${String(body.length).padStart(8)} B ${us.toFixed(2).padStart(9)} µs/request`);
}

// 2. End to end.
out(`\n# End to end over loopback (N=${E2E_N} sequential keep-alive requests per cell)`);
const SECRET = 'a-token-secret-for-the-ownership-benchmark';
process.env.PORTCULLIS_BENCH_SECRET = SECRET;
const payloads = Object.values(BODIES).map((v) => Buffer.from(JSON.stringify(v)));
const upstream = await startUpstream((req, res) => {
  const i = Number((req.url ?? '').split('/').pop());
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': payloads[i]!.length });
  res.end(payloads[i]);
  return true;
});
const authorize = (response: boolean) => ({
  scopes: ['orders:read'],
  any: [response ? { owner: { response: '/owner' } } : { claims: { sub: '1' } }, { roles: ['admin'] }],
});
const gw = await startTestGateway({
  log: { level: 'warn', access: false },
  auth: {
    jwt: {
      providers: [
        {
          name: 'bench',
          issuer: 'urn:bench',
          audience: ['api'],
          algorithms: ['HS256'],
          hmac_secret: '${env:PORTCULLIS_BENCH_SECRET}',
        },
      ],
    },
  },
  upstreams: { api: { url: upstream.url } },
  routes: ['plain', 'owned'].map((name) => ({
    name,
    path: `/${name}/{i}`,
    methods: ['GET'],
    upstream: 'api',
    authorize: authorize(name === 'owned'),
    inspection: { mode: 'off' },
  })),
});
const token = await new SignJWT({ scope: 'orders:read' })
  .setProtectedHeader({ alg: 'HS256' })
  .setIssuer('urn:bench')
  .setAudience('api')
  .setSubject('1')
  .setExpirationTime('1h')
  .sign(new TextEncoder().encode(SECRET));

const get = (path: string) =>
  new Promise<number>((resolve, reject) => {
    const start = performance.now();
    const req = request(
      { host: '127.0.0.1', port: gw.port, path, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(performance.now() - start)
            : reject(new Error(`${path}: ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });

const stats = (ms: number[]) => {
  const sorted = [...ms].sort((a, b) => a - b);
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  return {
    mean: mean * 1000,
    p50: sorted[Math.floor(ms.length / 2)]! * 1000,
    p99: sorted[Math.floor(ms.length * 0.99)]! * 1000,
  };
};
try {
  for (const [i, label] of Object.keys(BODIES).entries()) {
    const cells: Record<string, ReturnType<typeof stats>> = {};
    // Interleaved rounds, so drift on a shared machine hits both alike.
    const samples: Record<string, number[]> = { plain: [], owned: [] };
    for (let w = 0; w < 300; w++) for (const name of ['plain', 'owned']) await get(`/${name}/${i}`);
    for (let n = 0; n < E2E_N; n++) {
      for (const name of ['plain', 'owned']) samples[name]!.push(await get(`/${name}/${i}`));
    }
    for (const name of ['plain', 'owned']) cells[name] = stats(samples[name]!);
    const { plain, owned } = cells as { plain: ReturnType<typeof stats>; owned: ReturnType<typeof stats> };
    out(
      `${label.padEnd(42)} plain ${plain.mean.toFixed(0).padStart(5)} µs (p50 ${plain.p50.toFixed(0)}, p99 ${plain.p99.toFixed(0)})  ` +
        `owned ${owned.mean.toFixed(0).padStart(5)} µs (p50 ${owned.p50.toFixed(0)}, p99 ${owned.p99.toFixed(0)})  ` +
        `→ +${(owned.mean - plain.mean).toFixed(0)} µs mean, +${(owned.p50 - plain.p50).toFixed(0)} µs p50`,
    );
  }
} finally {
  await gw.close();
  await upstream.close();
}
