/**
 * Demo access tokens for the quick start: what an identity provider would
 * issue to the demo's users. Signed with HS256 under a secret generated into
 * the data folder on first use (the demo config names it by reference).
 */
import { SignJWT } from 'jose';
import { ensureLocalSecret } from '../util/local-secret.js';

export const DEMO_ISSUER = 'urn:portcullis:demo';
export const DEMO_AUDIENCE = 'orders-api';
export const DEMO_SECRET_ENV = 'PORTCULLIS_DEMO_TOKEN_SECRET';

export interface DemoUser {
  sub: string;
  name: string;
  tenant: string;
  roles: string[];
  scope: string;
}

export const DEMO_USERS: readonly DemoUser[] = [
  { sub: '1', name: 'alice', tenant: 'acme', roles: ['user'], scope: 'orders:read orders:write users:read' },
  { sub: '2', name: 'bob', tenant: 'globex', roles: ['user'], scope: 'orders:read users:read' },
  { sub: '3', name: 'carol', tenant: 'acme', roles: ['admin'], scope: 'orders:read orders:write users:read' },
];

/** The demo's token secret, created in the data folder when missing. */
export function demoTokenSecret(dataDir: string): string {
  return ensureLocalSecret(dataDir, 'demo-token-secret');
}

/** Signs a demo access token (RFC 9068 shape) for `user`, valid for `ttlSeconds`. */
export function signDemoToken(secret: string, user: DemoUser, ttlSeconds = 24 * 3600): Promise<string> {
  return new SignJWT({ scope: user.scope, roles: user.roles, tenant: user.tenant, name: user.name })
    .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
    .setIssuer(DEMO_ISSUER)
    .setAudience(DEMO_AUDIENCE)
    .setSubject(user.sub)
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .setJti(crypto.randomUUID())
    .sign(new TextEncoder().encode(secret));
}
