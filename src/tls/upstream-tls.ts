/**
 * TLS from the gateway to an https:// upstream: the undici `connect` options
 * (`new Pool(origin, { connect })`). The certificate chain and host name are
 * verified by default; a CA bundle, public-key pins and a client certificate
 * are optional; turning verification off is a config decision that the
 * config loader reports as a warning at every start.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type ConnectionOptions, checkServerIdentity, type PeerCertificate } from 'node:tls';
import { splitPemCertificates } from './certificates.js';
import type { UpstreamTlsSettings } from './types.js';

/** Options for undici's `connect` (its `buildConnector` options are Node's `tls.connect` options plus a few). */
export type UpstreamConnectOptions = ConnectionOptions & { maxCachedSessions?: number };

/** Base64 SHA-256 of a certificate's DER SubjectPublicKeyInfo: the value `pin_sha256` lists (as in RFC 7469). */
export function spkiSha256(cert: X509Certificate): string {
  return createHash('sha256')
    .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');
}

function readFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(
      `cannot read the upstream ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}

/** Every certificate the server presented (and Node linked), leaf first. */
function presentedChain(cert: PeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  let cur: PeerCertificate | undefined = cert;
  for (let i = 0; i < 10 && cur?.raw && !seen.has(cur.fingerprint256); i++) {
    seen.add(cur.fingerprint256);
    out.push(new X509Certificate(cur.raw));
    cur = (cur as PeerCertificate & { issuerCertificate?: PeerCertificate }).issuerCertificate;
  }
  return out;
}

/**
 * A `checkServerIdentity` that runs Node's host-name check first and then
 * requires one certificate of the verified chain (the leaf, an intermediate
 * or the root) to have one of the pinned public keys.
 */
export function pinningServerIdentity(
  pins: readonly string[],
): (host: string, cert: PeerCertificate) => Error | undefined {
  const accepted = new Set(pins);
  return (host, cert) => {
    const err = checkServerIdentity(host, cert);
    if (err) return err;
    if (presentedChain(cert).some((c) => accepted.has(spkiSha256(c)))) return undefined;
    const mismatch = new Error(`the public key of ${host} matches no pin_sha256`) as NodeJS.ErrnoException;
    mismatch.code = 'ERR_TLS_PIN_MISMATCH';
    return mismatch;
  };
}

/**
 * The undici connect options for one upstream. Reads the CA bundle and client
 * certificate files now, so a missing file fails at start-up, not on the
 * first request.
 */
export function upstreamConnectOptions(settings: UpstreamTlsSettings): UpstreamConnectOptions {
  const options: UpstreamConnectOptions = {
    rejectUnauthorized: settings.verify,
    minVersion: 'TLSv1.2',
  };
  if (settings.caFile !== undefined) {
    const pem = readFile(settings.caFile, 'CA bundle').toString('utf8');
    const certs = splitPemCertificates(pem);
    if (certs.length === 0)
      throw new Error(`no PEM certificate in the upstream CA bundle ${settings.caFile}`);
    options.ca = certs;
  }
  if (settings.servername !== undefined) options.servername = settings.servername;
  if (settings.clientCertFile !== undefined && settings.clientKeyFile !== undefined) {
    options.cert = readFile(settings.clientCertFile, 'client certificate');
    options.key = readFile(settings.clientKeyFile, 'client key');
    if (settings.clientKeyPassphrase !== undefined) options.passphrase = settings.clientKeyPassphrase;
  }
  if (settings.pinSha256.length > 0) {
    options.checkServerIdentity = pinningServerIdentity(settings.pinSha256);
    // Node skips checkServerIdentity on a resumed session; without a session
    // cache every new connection is checked against the pins.
    options.maxCachedSessions = 0;
  }
  return options;
}
