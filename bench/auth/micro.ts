/**
 * Micro-benchmark of authentication per request: JWT verification with the
 * verified-token cache warm and cold (RS256, ES256, HS256), and API key
 * checks with the lookup cache warm and cold. Prints µs per operation;
 * nothing is asserted. Run: node --import tsx bench/auth/micro.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createJwtVerifier } from '../../src/auth/jwt/index.js';
import { providerSettings, startKeyServer } from '../../src/auth/jwt/test-support/fixtures.js';
import { createApiKeyAuthenticator } from '../../src/keys/authenticator.js';
import { createApiKeyStore } from '../../src/keys/store.js';
import { createLogger } from '../../src/log.js';
import { openStore } from '../../src/store/index.js';

const N = Number(process.env.BENCH_N ?? 20_000);
const logger = createLogger({ level: 'silent' });

async function time(label: string, n: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < Math.min(n, 500); i++) await fn(i); // warm-up
  const start = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  const us = ((performance.now() - start) * 1000) / n;
  process.stdout.write(`${label.padEnd(44)} ${us.toFixed(2).padStart(9)} µs/op\n`);
}

const secret = 'micro-bench-secret-of-at-least-32-bytes!';
const keyServerKeys = [];
const rsa = await generateKeyPair('RS256', { extractable: true });
const ec = await generateKeyPair('ES256', { extractable: true });
keyServerKeys.push({ ...(await exportJWK(rsa.publicKey)), kid: 'rsa', alg: 'RS256' });
keyServerKeys.push({ ...(await exportJWK(ec.publicKey)), kid: 'ec', alg: 'ES256' });
const server = await startKeyServer(keyServerKeys);

const sign = (alg: string, key: Parameters<SignJWT['sign']>[0], kid: string | undefined, i: number) =>
  new SignJWT({ scope: 'a b' })
    .setProtectedHeader({ alg, ...(kid ? { kid } : {}) })
    .setIssuer(alg.startsWith('HS') ? 'urn:hs' : server.origin)
    .setAudience('orders')
    .setSubject(`user-${i}`)
    .setExpirationTime('1h')
    .sign(key);

for (const cacheSize of [10_000, 0]) {
  const verifier = createJwtVerifier({
    providers: [
      providerSettings({
        name: 'remote',
        issuer: server.origin,
        jwksUri: server.jwksUri,
        algorithms: ['RS256', 'ES256'],
      }),
      providerSettings({ name: 'hs', issuer: 'urn:hs', algorithms: ['HS256'], hmacSecret: secret }),
    ],
    cacheSize,
    logger,
  });
  await verifier.start();
  const cache = cacheSize > 0 ? 'cache warm' : 'no cache';
  for (const [alg, key, kid] of [
    ['RS256', rsa.privateKey, 'rsa'],
    ['ES256', ec.privateKey, 'ec'],
    ['HS256', new TextEncoder().encode(secret), undefined],
  ] as const) {
    const tokens = await Promise.all(Array.from({ length: 100 }, (_, i) => sign(alg, key, kid, i)));
    await time(`jwt ${alg}, ${cache}`, cacheSize > 0 ? N : N / 10, (i) => verifier.verify(tokens[i % 100]!));
  }
  verifier.close();
}
await server.close();

const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
const store = await openStore({ dataDir: dir });
await store.migrate();
const pepper = 'micro-bench-pepper-0123456789abcdef';
const keys = createApiKeyStore(store, { pepper, logger: { warn() {} } });
const created = await Promise.all(
  Array.from({ length: 100 }, (_, i) => keys.create({ name: `k${i}`, scopes: ['a'] })),
);
for (const [cacheSize, label] of [
  [10_000, 'cache warm'],
  [0, 'no cache (SQLite lookup)'],
] as const) {
  const auth = createApiKeyAuthenticator({
    settings: { cacheSize, cacheTtlMs: 60_000 },
    pepper,
    db: store,
    logger,
  });
  await time(`api key, ${label}`, cacheSize > 0 ? N : N / 10, (i) =>
    auth.authenticate(created[i % 100]!.key),
  );
}
await store.close();
rmSync(dir, { recursive: true, force: true });
