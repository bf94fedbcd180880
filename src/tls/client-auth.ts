/**
 * Mutual TLS: what a verified client certificate says about the caller, and
 * how a route or an access token is held to it.
 *
 * The handshake does the cryptography: with `client_auth.mode: required` the
 * listener refuses any connection without a certificate that chains to a
 * configured CA and is within its validity (expired → refused); with
 * `optional` (or only some routes asking) the handshake accepts the
 * connection and these functions refuse, per request, anything the TLS layer
 * did not verify (`socket.authorized`).
 */
import { createHash, timingSafeEqual, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Principal } from '../contracts/principal.js';
import { splitPemCertificates } from './certificates.js';
import type { PrincipalMapping, RouteMtlsSettings } from './types.js';

/** A printable, bounded id: certificate fields must never smuggle control characters into headers or logs. */
const SAFE_ID = /^[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?$/;

function asTls(socket: Socket | TLSSocket): TLSSocket | undefined {
  return (socket as TLSSocket).encrypted === true ? (socket as TLSSocket) : undefined;
}

/** Why a request's client certificate is not accepted; internal (logs, audit), never sent. */
export type ClientCertificateRefusal =
  | 'not_tls'
  | 'no_certificate'
  /** The TLS layer could not verify it: unknown CA, expired, not yet valid, wrong key usage… */
  | 'not_verified'
  /** Verified by the listener, but not issued by a CA this route accepts. */
  | 'wrong_ca'
  /** The mapped id is missing or not printable. */
  | 'unmappable';

export type ClientCertificateResult =
  | { ok: true; certificate: X509Certificate }
  | { ok: false; reason: ClientCertificateRefusal; detail?: string };

/**
 * The client certificate of a connection, if the TLS layer verified it. On a
 * listener that does not refuse unverified certificates at the handshake,
 * this is the check that does.
 */
export function verifiedClientCertificate(socket: Socket | TLSSocket): ClientCertificateResult {
  const tls = asTls(socket);
  if (!tls) return { ok: false, reason: 'not_tls' };
  const cert = tls.getPeerX509Certificate();
  if (!cert) return { ok: false, reason: 'no_certificate' };
  if (!tls.authorized) {
    const detail = tls.authorizationError;
    return {
      ok: false,
      reason: 'not_verified',
      ...(detail === undefined ? {} : { detail: String(detail) }),
    };
  }
  return { ok: true, certificate: cert };
}

/** Lower-case hex SHA-256 of the certificate, without colons. */
export function certificateFingerprint(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('hex');
}

/** The principal id a certificate maps to, or undefined when the mapped field is absent or unsafe. */
export function certificatePrincipalId(cert: X509Certificate, mapping: PrincipalMapping): string | undefined {
  let id: string | undefined;
  if (mapping === 'fingerprint') id = `sha256:${certificateFingerprint(cert)}`;
  else if (mapping === 'subject') {
    const cns = cert.subject.split('\n').filter((l) => l.startsWith('CN='));
    // Two CNs are ambiguous: which one a relying party reads differs between libraries.
    id = cns.length === 1 ? cns[0]!.slice(3) : undefined;
  } else {
    const first = (cert.subjectAltName ?? '')
      .split(', ')
      .find((e) => e.startsWith('URI:') || e.startsWith('DNS:') || e.startsWith('email:'));
    id = first?.slice(first.indexOf(':') + 1);
  }
  return id !== undefined && SAFE_ID.test(id) ? id : undefined;
}

/**
 * The Principal for a connection's verified client certificate, or undefined
 * when there is none, it was not verified, or the mapped field is unusable.
 * Scopes and roles are empty: a certificate says who, not what.
 */
export function clientCertificatePrincipal(
  socket: Socket | TLSSocket,
  mapping: PrincipalMapping,
): Principal | undefined {
  const verified = verifiedClientCertificate(socket);
  if (!verified.ok) return undefined;
  return principalFromCertificate(verified.certificate, mapping);
}

/** Builds the Principal for a certificate already known to be verified. */
export function principalFromCertificate(
  cert: X509Certificate,
  mapping: PrincipalMapping,
): Principal | undefined {
  const id = certificatePrincipalId(cert, mapping);
  if (id === undefined) return undefined;
  return {
    kind: 'mtls',
    id,
    scopes: [],
    roles: [],
    claims: Object.freeze({
      subject: cert.subject.replace(/\n/g, ', '),
      issuer: cert.issuer.replace(/\n/g, ', '),
      san: cert.subjectAltName,
      serial: cert.serialNumber,
      fingerprint: `sha256:${certificateFingerprint(cert)}`,
      not_after: new Date(cert.validTo).toISOString(),
      'x5t#S256': createHash('sha256').update(cert.raw).digest('base64url'),
    }),
    tenant: undefined,
  };
}

/** RFC 8705 §3.1 `x5t#S256`: base64url SHA-256 of the DER of the connection's verified client certificate. */
export function certificateThumbprint(socket: Socket | TLSSocket): string | undefined {
  const verified = verifiedClientCertificate(socket);
  return verified.ok ? createHash('sha256').update(verified.certificate.raw).digest('base64url') : undefined;
}

export type TokenBindingResult =
  | { ok: true; bound: boolean }
  | { ok: false; reason: 'unbound_token' | 'no_certificate' | 'certificate_mismatch' | 'bad_confirmation' };

/**
 * RFC 8705 §3: a token whose `cnf` carries `x5t#S256` may only be used over a
 * connection with that very client certificate. A token without it passes
 * unless `required` (every token must be bound).
 */
export function checkTokenBinding(
  principal: Principal,
  socket: Socket | TLSSocket,
  options: { required?: boolean } = {},
): TokenBindingResult {
  const cnf = principal.claims.cnf;
  const expected =
    cnf !== null && typeof cnf === 'object' ? (cnf as Record<string, unknown>)['x5t#S256'] : undefined;
  if (expected === undefined)
    return options.required ? { ok: false, reason: 'unbound_token' } : { ok: true, bound: false };
  if (typeof expected !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(expected)) {
    return { ok: false, reason: 'bad_confirmation' };
  }
  const actual = certificateThumbprint(socket);
  if (actual === undefined) return { ok: false, reason: 'no_certificate' };
  const same = timingSafeEqual(Buffer.from(actual), Buffer.from(expected));
  return same ? { ok: true, bound: true } : { ok: false, reason: 'certificate_mismatch' };
}

/** Reads CA certificates from PEM files (each may hold several). */
export function readCaCertificates(files: readonly string[]): X509Certificate[] {
  return files.flatMap((f) => {
    let pem: string;
    try {
      pem = readFileSync(f, 'utf8');
    } catch (err) {
      throw new Error(`cannot read the CA file ${f} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    const certs = splitPemCertificates(pem);
    if (certs.length === 0) throw new Error(`no PEM certificate in ${f}`);
    return certs.map((c) => new X509Certificate(c));
  });
}

function issuedBy(cert: X509Certificate, ca: X509Certificate): boolean {
  return cert.fingerprint256 === ca.fingerprint256 || (cert.checkIssued(ca) && cert.verify(ca.publicKey));
}

/** The chain the client sent and Node completed from the trust store, leaf first, as X509Certificates. */
function peerChain(socket: TLSSocket): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  let cur: import('node:tls').DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  for (let i = 0; i < 10 && cur?.raw && !seen.has(cur.fingerprint256); i++) {
    seen.add(cur.fingerprint256);
    out.push(new X509Certificate(cur.raw));
    cur = cur.issuerCertificate;
  }
  return out;
}

/** A route's mTLS requirement, built once: `check(socket)` runs per request. */
export interface RouteMtlsCheck {
  readonly mode: 'required' | 'optional';
  /**
   * `ok` with the certificate when a verified one from an accepted CA is
   * present; `ok` without one when the route is `optional` and none was sent;
   * a refusal otherwise (an unverified or wrong-CA certificate is refused
   * even on an `optional` route: presenting a bad certificate is not the same
   * as presenting none).
   */
  check(
    socket: Socket | TLSSocket,
  ):
    | { ok: true; certificate: X509Certificate | undefined }
    | { ok: false; reason: ClientCertificateRefusal; detail?: string };
}

/** Builds a route's mTLS check; reads the route's CA files now, so a bad file fails at start-up. */
export function createRouteMtlsCheck(settings: RouteMtlsSettings): RouteMtlsCheck {
  const cas = readCaCertificates(settings.caFiles);
  return {
    mode: settings.mode,
    check(socket) {
      const verified = verifiedClientCertificate(socket);
      if (!verified.ok) {
        if (verified.reason === 'no_certificate' && settings.mode === 'optional') {
          return { ok: true, certificate: undefined };
        }
        return verified;
      }
      if (cas.length > 0) {
        const chain = peerChain(socket as TLSSocket);
        if (!chain.some((c) => cas.some((ca) => issuedBy(c, ca)))) return { ok: false, reason: 'wrong_ca' };
      }
      return { ok: true, certificate: verified.certificate };
    },
  };
}
