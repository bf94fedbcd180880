/**
 * The server TLS profiles, as Node `tls` options.
 *
 * `intermediate` is Mozilla's "intermediate" server-side profile (v5.7)
 * restricted to ECDHE key exchange: TLS 1.2 and 1.3, only forward-secret AEAD
 * suites. The DHE-RSA suites of the Mozilla list are left out because they
 * need a Diffie-Hellman group file and add nothing a client from the last ten
 * years lacks. `modern` is TLS 1.3 only.
 *
 * What Node 20 (OpenSSL 3.0) does on its own, and what is set here:
 * - Compression: Node's bundled OpenSSL is built with `no-comp`, and
 *   `SSL_OP_NO_COMPRESSION` is set here as well, so CRIME cannot apply even on
 *   a build against a system OpenSSL.
 * - Renegotiation: insecure (pre-RFC 5746) renegotiation is refused by OpenSSL
 *   by default. Secure client-initiated renegotiation is, in TLS 1.2, allowed
 *   by Node and only rate-limited (`tls.CLIENT_RENEG_LIMIT` = 3 per
 *   `tls.CLIENT_RENEG_WINDOW` = 600 s, then the socket is destroyed), which
 *   still lets a client make the server do handshakes for free. Here
 *   `SSL_OP_NO_RENEGOTIATION` refuses every renegotiation with a
 *   `no_renegotiation` alert; TLS 1.3 has no renegotiation at all.
 * - Session tickets: enabled with keys the listener rotates on a timer
 *   (`setTicketKeys`), or turned off with `SSL_OP_NO_TICKET`.
 * - ALPN: `h2` and `http/1.1` are offered (`listen.tls.http2`, see
 *   src/http2/server.ts); with HTTP/2 off only `http/1.1` is, and a client
 *   that offers only `h2` is refused with `no_application_protocol` instead
 *   of speaking the wrong protocol.
 */
import { constants } from 'node:crypto';
import type { SecureContextOptions, SecureVersion } from 'node:tls';

export type TlsProfileName = 'intermediate' | 'modern';

/** TLS 1.3 suites, in Mozilla's order (AES-GCM first: hardware-accelerated on servers). */
export const TLS13_SUITES = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
];

/** TLS 1.2 suites: ECDHE key exchange (forward secrecy) with an AEAD cipher, nothing else. */
export const TLS12_SUITES = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];

/** Key-exchange groups, Mozilla's list. */
export const ECDH_CURVES = 'X25519:prime256v1:secp384r1';

/** The protocol and cipher part of a profile: what every SecureContext of a listener shares. */
export interface TlsProfile {
  readonly name: TlsProfileName;
  readonly minVersion: SecureVersion;
  readonly maxVersion: SecureVersion;
  /** OpenSSL cipher string; Node sends the `TLS_*` names to the TLS 1.3 list and the rest to the 1.2 list. */
  readonly ciphers: string;
  readonly ecdhCurve: string;
  /**
   * The server's order wins. Every suite offered is strong, so this mostly
   * keeps AES-GCM ahead of ChaCha20 and makes the choice predictable for
   * scanners and tests.
   */
  readonly honorCipherOrder: boolean;
}

export const TLS_PROFILES: Readonly<Record<TlsProfileName, TlsProfile>> = Object.freeze({
  intermediate: Object.freeze({
    name: 'intermediate',
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: [...TLS13_SUITES, ...TLS12_SUITES].join(':'),
    ecdhCurve: ECDH_CURVES,
    honorCipherOrder: true,
  }),
  modern: Object.freeze({
    name: 'modern',
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: TLS13_SUITES.join(':'),
    ecdhCurve: ECDH_CURVES,
    honorCipherOrder: true,
  }),
});

/** ALPN protocols the public listener speaks, in the server's order of preference. */
export function alpnProtocols(http2: boolean): string[] {
  return http2 ? ['h2', 'http/1.1'] : ['http/1.1'];
}

/** OpenSSL option bits every server context gets; `SSL_OP_NO_TICKET` is added when tickets are off. */
export function secureOptionsFor(options: { sessionTickets: boolean }): number {
  let bits = constants.SSL_OP_NO_RENEGOTIATION | constants.SSL_OP_NO_COMPRESSION;
  if (!options.sessionTickets) bits |= constants.SSL_OP_NO_TICKET;
  return bits;
}

/**
 * The options shared by every SecureContext of a listener (the default
 * certificate and each SNI certificate): protocol versions, suites, groups,
 * option bits, the client CA list for mTLS, and one session-id context, so a
 * session resumed under another SNI name cannot fail with
 * `session id context uninitialized` when client certificates are requested.
 */
export function serverContextOptions(
  profile: TlsProfile,
  extra: { sessionTickets: boolean; sessionIdContext: string; clientCa?: readonly string[] },
): SecureContextOptions {
  return {
    minVersion: profile.minVersion,
    maxVersion: profile.maxVersion,
    ciphers: profile.ciphers,
    ecdhCurve: profile.ecdhCurve,
    honorCipherOrder: profile.honorCipherOrder,
    secureOptions: secureOptionsFor(extra),
    sessionIdContext: extra.sessionIdContext,
    ...(extra.clientCa && extra.clientCa.length > 0 ? { ca: [...extra.clientCa] } : {}),
  };
}
