/**
 * Key discovery, JWKS caching and refetching, readiness, and the
 * verified-token cache, against a real JWKS server on a loopback port.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';
import { AuthFailure, AuthUnavailable, type LocalJwtProvider } from '../types.js';
import { createJwtVerifier, type JwtVerifier, type JwtVerifierOptions } from './index.js';
import {
  captureLogger,
  type KeyServer,
  providerSettings,
  startKeyServer,
  waitFor,
} from './test-support/fixtures.js';

const signing = await generateKeyPair('ES256', { extractable: true });
const rotated = await generateKeyPair('ES256', { extractable: true });
const attacker = await generateKeyPair('ES256', { extractable: true });
const jwkOf = async (key: CryptoKey, kid: string): Promise<JWK> => ({
  ...(await exportJWK(key)),
  kid,
  alg: 'ES256',
});
const signingJwk = await jwkOf(signing.publicKey, 'k1');
const rotatedJwk = await jwkOf(rotated.publicKey, 'k2');

/** A test clock: starts at the real time, moves only when told. */
function testClock() {
  let t = Date.now();
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function token(
  issuer: string,
  options: { key?: CryptoKey; kid?: string; claims?: JWTPayload; nowMs?: number; ttlSeconds?: number } = {},
): Promise<string> {
  const iat = Math.floor((options.nowMs ?? Date.now()) / 1000);
  return new SignJWT({ scope: 'orders:read', ...options.claims })
    .setProtectedHeader({ alg: 'ES256', kid: options.kid ?? 'k1', typ: 'at+jwt' })
    .setIssuer(issuer)
    .setAudience('orders')
    .setSubject('user-1')
    .setIssuedAt(iat)
    .setExpirationTime(iat + (options.ttlSeconds ?? 300))
    .sign(options.key ?? signing.privateKey);
}

const isFailure = (reason: string) => (err: unknown) => {
  assert.ok(err instanceof AuthFailure, `expected AuthFailure(${reason}), got ${String(err)}`);
  assert.equal(err.reason, reason);
  return true;
};

describe('JWKS discovery and caching', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup(
    options: {
      keys?: JWK[];
      discover?: boolean;
      cacheSize?: number;
      settings?: Partial<Parameters<typeof providerSettings>[0]>;
    } = {},
  ) {
    const server = await startKeyServer(options.keys ?? [signingJwk]);
    const clock = testClock();
    const { logger, lines } = captureLogger();
    const verifier = createJwtVerifier({
      providers: [
        providerSettings({
          name: 'corp',
          issuer: server.origin,
          jwksUri: options.discover === true ? undefined : server.jwksUri,
          ...options.settings,
        }),
      ],
      cacheSize: options.cacheSize ?? 0,
      logger,
      now: clock.now,
    });
    cleanup.push(
      () => server.close(),
      () => verifier.close(),
    );
    return { server, clock, lines, verifier };
  }

  it('discovers the JWKS through the issuer’s openid-configuration', async () => {
    const { server, verifier } = await setup({ discover: true });
    await verifier.start();
    await verifier.readiness();
    const principal = await verifier.verify(await token(server.origin));
    assert.equal(principal.id, 'user-1');
    assert.deepEqual(principal.scopes, ['orders:read']);
    assert.equal(server.hits.get('/.well-known/openid-configuration'), 1);
    assert.equal(server.jwksHits(), 1);
  });

  it('refuses a discovery document that names another issuer', async () => {
    const { server, verifier, lines } = await setup({ discover: true });
    server.discoveryIssuer = 'https://attacker.test';
    await verifier.start();
    assert.equal(server.jwksHits(), 0);
    await assert.rejects(verifier.readiness(), /JWT provider "corp" has no signing keys/);
    await assert.rejects(
      verifier.verify(await token(server.origin)),
      (err) => err instanceof AuthUnavailable && err.reason === 'jwks_unavailable',
    );
    assert.ok(lines.some((l) => l.level === 'error' && /different issuer/.test(String(l.cause))));
  });

  it('does not count an empty or secret-only JWKS as having keys', async () => {
    const { verifier, lines } = await setup({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'k1' }] });
    await verifier.start();
    await assert.rejects(verifier.readiness(), /JWT provider "corp" has no signing keys/);
    assert.ok(lines.some((l) => l.level === 'warn' && /not public keys/.test(String(l.msg))));
    assert.ok(lines.some((l) => l.level === 'error' && /no usable public keys/.test(String(l.cause))));
  });

  it('refetches once for 100 tokens with random kids, then waits for the cooldown', async () => {
    const { server, verifier, clock } = await setup({ settings: { jwksCooldownMs: 30_000 } });
    await verifier.start();
    assert.equal(server.jwksHits(), 1);
    const bogus = await Promise.all(
      Array.from({ length: 100 }, () =>
        token(server.origin, { key: attacker.privateKey, kid: crypto.randomUUID() }),
      ),
    );
    // Half at once (they share one fetch), half one after another (the cooldown holds).
    await Promise.all(
      bogus.slice(0, 50).map((t) => assert.rejects(verifier.verify(t), isFailure('unknown_kid'))),
    );
    for (const t of bogus.slice(50)) await assert.rejects(verifier.verify(t), isFailure('unknown_kid'));
    assert.equal(server.jwksHits(), 2);

    clock.advance(30_000);
    await assert.rejects(verifier.verify(bogus[0]!), isFailure('unknown_kid'));
    assert.equal(server.jwksHits(), 3);
    assert.equal(verifier.stats.jwksFetches, 3);
    assert.equal(verifier.stats.failures.unknown_kid, 101);
  });

  it('picks up a rotated key with one refetch', async () => {
    const { server, verifier } = await setup();
    await verifier.start();
    server.keys = [rotatedJwk, signingJwk];
    const principal = await verifier.verify(
      await token(server.origin, { key: rotated.privateKey, kid: 'k2' }),
    );
    assert.equal(principal.id, 'user-1');
    await verifier.verify(await token(server.origin));
    assert.equal(server.jwksHits(), 2);
  });

  it('shares one fetch between concurrent first requests', async () => {
    const { server, verifier } = await setup();
    const tokens = await Promise.all(Array.from({ length: 20 }, () => token(server.origin)));
    await Promise.all(tokens.map((t) => verifier.verify(t)));
    assert.equal(server.jwksHits(), 1);
  });

  it('keeps the cached keys working while the provider is down, and logs it', async () => {
    const { server, verifier, clock, lines } = await setup({ settings: { jwksCacheMs: 60_000 } });
    await verifier.start();
    server.status = 503;
    clock.advance(61_000);
    const t = await token(server.origin, { nowMs: clock.now() });
    assert.equal((await verifier.verify(t)).id, 'user-1');
    await waitFor(() => lines.some((l) => l.level === 'warn' && l.provider === 'corp'));
    const warning = lines.find((l) => l.level === 'warn' && l.provider === 'corp')!;
    assert.match(String(warning.msg), /cached keys stay in use/);
    assert.match(String(warning.cause), /503/);
    // Still working after the failed refresh, and no refetch on every request.
    const hits = server.jwksHits();
    for (let i = 0; i < 5; i++) await verifier.verify(await token(server.origin, { nowMs: clock.now() }));
    assert.equal(server.jwksHits(), hits);
  });

  it('refreshes stale keys in the background without holding up the request', async () => {
    const { server, verifier, clock } = await setup({ settings: { jwksCacheMs: 60_000 } });
    await verifier.start();
    server.keys = [rotatedJwk];
    clock.advance(60_000);
    // Still verified with the cached key, while the refresh fetches the new set.
    await verifier.verify(await token(server.origin, { nowMs: clock.now() }));
    await waitFor(() => server.jwksHits() === 2);
    await verifier.verify(
      await token(server.origin, { key: rotated.privateKey, kid: 'k2', nowMs: clock.now() }),
    );
  });

  it('gives up on a JWKS server that does not answer within the timeout', async () => {
    const silent = createServer(() => {});
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    cleanup.push(async () => {
      silent.closeAllConnections();
      silent.close();
      await once(silent, 'close');
    });
    const { port } = silent.address() as AddressInfo;
    const { verifier, lines } = await setup({
      settings: { jwksUri: `http://127.0.0.1:${port}/jwks.json`, jwksTimeoutMs: 200 },
    });
    const started = Date.now();
    await verifier.start();
    assert.ok(Date.now() - started < 2000);
    assert.ok(lines.some((l) => l.level === 'error' && l.provider === 'corp'));
  });

  it('rejects readiness until keys were obtained, and retries after a short backoff, not the cooldown', async () => {
    const { server, verifier, clock } = await setup({ settings: { jwksCooldownMs: 30_000 } });
    server.status = 503;
    await verifier.start();
    await assert.rejects(verifier.readiness(), /JWT provider "corp" has no signing keys/);
    await assert.rejects(
      verifier.verify(await token(server.origin)),
      (err) => err instanceof AuthUnavailable && err.reason === 'jwks_unavailable' && err.status === 503,
    );
    assert.equal(server.jwksHits(), 1);

    server.status = 200;
    await assert.rejects(verifier.readiness(), /JWT provider "corp" has no signing keys/);
    assert.equal(server.jwksHits(), 1, 'no retry inside the backoff');
    // A cold start retries within seconds, not after the 30 s cooldown.
    clock.advance(1_000);
    await verifier.readiness();
    assert.equal(server.jwksHits(), 2);
    await verifier.verify(await token(server.origin, { nowMs: clock.now() }));
  });
});

describe('the verified-token cache', () => {
  let server: KeyServer;
  let verifier: JwtVerifier;
  afterEach(async () => {
    verifier.close();
    await server.close();
  });

  async function setup(cacheSize: number, extra: Partial<JwtVerifierOptions> = {}) {
    server = await startKeyServer([signingJwk]);
    const clock = testClock();
    verifier = createJwtVerifier({
      providers: [providerSettings({ name: 'corp', issuer: server.origin, jwksUri: server.jwksUri })],
      cacheSize,
      logger: captureLogger().logger,
      now: clock.now,
      ...extra,
    });
    await verifier.start();
    return clock;
  }

  it('answers a repeated token without signature work', async () => {
    await setup(10);
    const t = await token(server.origin);
    const first = await verifier.verify(t);
    const checks = verifier.stats.signatureChecks;
    const second = await verifier.verify(t);
    assert.equal(verifier.stats.signatureChecks, checks);
    assert.equal(verifier.stats.cacheHits, 1);
    assert.equal(verifier.stats.cacheMisses, 1);
    assert.equal(second, first);
    assert.ok(Object.isFrozen(second) && Object.isFrozen(second.scopes) && Object.isFrozen(second.claims));
  });

  it('never serves a token past its exp, and rejects it once the skew is over', async () => {
    const clock = await setup(10);
    const t = await token(server.origin, { nowMs: clock.now(), ttlSeconds: 60 });
    await verifier.verify(t);
    const exp = (Math.floor(clock.now() / 1000) + 60) * 1000;
    clock.advance(exp - clock.now() + 1_000);
    // Past exp but within the 30 s skew: verified again, not taken from the cache.
    await verifier.verify(t);
    assert.equal(verifier.stats.cacheHits, 0);
    clock.advance(30_000);
    await assert.rejects(verifier.verify(t), isFailure('token_expired'));
    assert.equal(verifier.stats.cacheHits, 0);
  });

  it('keeps at most cacheSize tokens, dropping the least recently used', async () => {
    await setup(3);
    const tokens = await Promise.all(
      Array.from({ length: 5 }, (_, i) => token(server.origin, { claims: { n: i } })),
    );
    for (const t of tokens) await verifier.verify(t);
    const checks = verifier.stats.signatureChecks;
    await verifier.verify(tokens[4]!);
    await verifier.verify(tokens[2]!);
    assert.equal(verifier.stats.signatureChecks, checks, 'the three most recent are cached');
    await verifier.verify(tokens[0]!);
    assert.equal(verifier.stats.signatureChecks, checks + 1, 'the oldest was evicted');
  });

  it('does nothing when cacheSize is 0', async () => {
    await setup(0);
    const t = await token(server.origin);
    await verifier.verify(t);
    await verifier.verify(t);
    assert.equal(verifier.stats.signatureChecks, 2);
    assert.equal(verifier.stats.cacheHits, 0);
  });

  it('drops a cached token once its key is withdrawn from the JWKS', async () => {
    const clock = await setup(10);
    // Long-lived, so that only the withdrawn key (not exp) can end its cache entry.
    const old = await token(server.origin, { ttlSeconds: 3600 });
    await verifier.verify(old);
    server.keys = [rotatedJwk];
    clock.advance(600_000);
    await verifier.verify(
      await token(server.origin, { key: rotated.privateKey, kid: 'k2', nowMs: clock.now() }),
    );
    await assert.rejects(verifier.verify(old), isFailure('unknown_kid'));
  });
});

describe('the gateway’s own issuer as a local provider', () => {
  it('takes keys from getKeySet at verification time and checks revocation, cached or not', async () => {
    let keys: JWK[] = [signingJwk];
    const revoked = new Set<string>();
    const local: LocalJwtProvider = {
      name: 'portcullis',
      issuer: 'https://gateway.test',
      audience: ['orders'],
      algorithms: ['ES256'],
      getKeySet: () => ({ keys }),
      isRevoked: (jti) => revoked.has(jti),
      scopesClaim: 'scope',
      clockSkewSeconds: 30,
      maxTokenBytes: 4096,
    };
    const verifier = createJwtVerifier({
      providers: [],
      local: [local],
      cacheSize: 10,
      logger: captureLogger().logger,
    });
    await verifier.start();
    await verifier.readiness();
    const a = await token(local.issuer, { claims: { jti: 'tok_a' } });
    assert.equal((await verifier.verify(a)).id, 'user-1');

    keys = [rotatedJwk, signingJwk];
    const b = await token(local.issuer, { key: rotated.privateKey, kid: 'k2', claims: { jti: 'tok_b' } });
    await verifier.verify(b);

    revoked.add('tok_a');
    await assert.rejects(verifier.verify(a), isFailure('token_revoked'));
    await assert.rejects(verifier.verify(await token(local.issuer)), isFailure('missing_jti'));

    keys = [rotatedJwk];
    const c = await token(local.issuer, { claims: { jti: 'tok_c' } });
    await assert.rejects(verifier.verify(c), isFailure('unknown_kid'));
    assert.equal(verifier.stats.jwksFetches, 0);
    verifier.close();
  });
});
