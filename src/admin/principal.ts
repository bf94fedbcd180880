/**
 * Who an admin is, however they authenticated: an admin token (`pcla_…`), a
 * JWT from one of the gateway's providers with a role claim
 * (`admin.auth.jwt`), or a verified client certificate (`admin.auth.mtls`).
 * The admin API audits every act with this identity; console sessions hold it.
 */
import type { X509Certificate } from 'node:crypto';
import type { Principal } from '../contracts/principal.js';
import { ADMIN_ROLES, type AdminRole, type AdminTokenRecord } from './tokens/store.js';

/** How an admin authenticated. */
export type AdminAuthKind = 'token' | 'jwt' | 'mtls';

/**
 * An authenticated admin. An {@link AdminTokenRecord} is one as it is
 * (`kind` left out means an admin token).
 */
export interface AdminPrincipal {
  /** `adt_…` for a token, `jwt:<provider>:<sub>`, or `mtls:<certificate identity>`. */
  id: string;
  name: string;
  role: AdminRole;
  kind?: AdminAuthKind | undefined;
  /** The audit actor; `admin-api:<id>` when left out (admin tokens). */
  actor?: string | undefined;
  /** Epoch ms after which the credential is no longer valid (the JWT's `exp`, the certificate's notAfter). */
  expiresAt?: number | undefined;
  /** The gateway principal a JWT verified to, to check the token kill switch again later. */
  source?: Principal | undefined;
}

/** The audit actor of an admin: `admin-api:adt_…`, `admin-jwt:<provider>:<sub>`, `admin-mtls:<identity>`. */
export function actorOf(p: AdminPrincipal | AdminTokenRecord): string {
  return ('actor' in p && p.actor) || `admin-api:${p.id}`;
}

/** The highest role that `values` map to in `roles`, or undefined when none does. */
export function highestRole(
  values: readonly unknown[],
  roles: Readonly<Record<string, AdminRole>>,
): AdminRole | undefined {
  let best = -1;
  for (const v of values) {
    if (typeof v !== 'string' || !Object.hasOwn(roles, v)) continue;
    best = Math.max(best, ADMIN_ROLES.indexOf(roles[v]!));
  }
  return best < 0 ? undefined : ADMIN_ROLES[best];
}

/**
 * The values of `claim` in `claims`: the claim of that very name if present
 * (names such as `https://example.com/roles` hold dots), else the dotted
 * path (`realm_access.roles`). A string is one value, a list its strings.
 */
export function claimValues(claims: Readonly<Record<string, unknown>>, claim: string): unknown[] {
  let value: unknown;
  if (Object.hasOwn(claims, claim)) value = claims[claim];
  else {
    value = claims;
    for (const part of claim.split('.')) {
      if (
        value === null ||
        typeof value !== 'object' ||
        Array.isArray(value) ||
        !Object.hasOwn(value, part)
      ) {
        return [];
      }
      value = (value as Record<string, unknown>)[part];
    }
  }
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.slice(0, 1000) : [];
}

const PRINTABLE = /^[\x20-\x7e]{1,200}$/;

/** A JWT admin's display name: `name`, `preferred_username` or `email` when printable, else the subject. */
export function jwtAdminName(principal: Principal): string {
  for (const claim of ['name', 'preferred_username', 'email']) {
    const v = principal.claims[claim];
    if (typeof v === 'string' && PRINTABLE.test(v)) return v;
  }
  return principal.id.slice(0, 200);
}

/** The admin a verified JWT stands for, given its mapped role. */
export function jwtAdmin(principal: Principal, role: AdminRole): AdminPrincipal {
  const provider = (principal.provider ?? '').replace(/^jwt:/, '');
  const exp = principal.claims.exp;
  return {
    id: `jwt:${provider}:${principal.id}`,
    name: jwtAdminName(principal),
    role,
    kind: 'jwt',
    actor: `admin-jwt:${provider}:${principal.id}`,
    expiresAt: typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined,
    source: principal,
  };
}

/** The admin a verified client certificate stands for, given its identity and mapped role. */
export function certificateAdmin(cert: X509Certificate, identity: string, role: AdminRole): AdminPrincipal {
  const cns = cert.subject.split('\n').filter((l) => l.startsWith('CN='));
  const cn = cns.length === 1 ? cns[0]!.slice(3) : undefined;
  const notAfter = Date.parse(cert.validTo);
  return {
    id: `mtls:${identity}`,
    name: cn !== undefined && PRINTABLE.test(cn) ? cn : identity,
    role,
    kind: 'mtls',
    actor: `admin-mtls:${identity}`,
    expiresAt: Number.isFinite(notAfter) ? notAfter : undefined,
  };
}
