/**
 * Certificates made with the `openssl` command line: a local development CA
 * and a certificate for localhost (`portcullis cert dev`), and the small
 * building blocks the tests use to make CAs, server and client certificates.
 *
 * The development CA is name-constrained to localhost and the loopback
 * addresses: trusting it in a browser or the system store cannot let anyone
 * holding its key impersonate a real site.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runOpenssl } from './openssl.js';

export type KeyType = 'ec' | 'rsa';

/** A certificate and its private key, both PEM. */
export interface KeyAndCertificate {
  cert: string;
  key: string;
}

/** The organisation every development CA carries in its subject; certificates it issues are refused in production. */
export const DEV_CA_ORGANIZATION = 'Portcullis development CA';

const SAFE_NAME = /^[A-Za-z0-9 ._@():*-]{1,64}$/;
const DNS_NAME =
  /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IP_ADDRESS = /^[0-9a-fA-F.:]{2,45}$/;

function subjectPart(field: string, value: string): string {
  // Subject strings are passed to -subj, where "/" and "=" are syntax.
  if (!SAFE_NAME.test(value)) throw new Error(`${field} must be letters, digits, spaces and ._@():*- only`);
  return `/${field}=${value}`;
}

/** Generates a private key (EC P-256 by default, or RSA 2048) as unencrypted PKCS#8 PEM. */
export async function generateKey(type: KeyType = 'ec'): Promise<string> {
  const args =
    type === 'ec'
      ? ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']
      : ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'];
  return (await runOpenssl(args)).toString();
}

/** Runs `fn` with a private scratch folder (mode 0700) that is removed afterwards. */
async function withScratch<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-pki-'));
  chmodSync(dir, 0o700);
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface CaOptions {
  commonName: string;
  organization?: string;
  days: number;
  keyType?: KeyType;
  /** Restrict what the CA may issue for (RFC 5280 §4.2.1.10); unset: unconstrained. */
  permitted?: { dns: readonly string[]; ip: readonly string[] };
}

/** Makes a self-signed CA certificate and its key. */
export async function createCertificateAuthority(options: CaOptions): Promise<KeyAndCertificate> {
  const key = await generateKey(options.keyType);
  const subject =
    (options.organization === undefined ? '' : subjectPart('O', options.organization)) +
    subjectPart('CN', options.commonName);
  const ext = [
    'basicConstraints=critical,CA:TRUE,pathlen:0',
    'keyUsage=critical,keyCertSign,cRLSign',
    'subjectKeyIdentifier=hash',
  ];
  if (options.permitted) {
    const permitted = [
      ...options.permitted.dns.map((d) => `permitted;DNS:${d}`),
      ...options.permitted.ip.map((i) => `permitted;IP:${i}`),
    ];
    ext.push(`nameConstraints=critical,${permitted.join(',')}`);
  }
  const cert = await withScratch(async (dir) => {
    const keyFile = join(dir, 'ca.key');
    writeFileSync(keyFile, key, { mode: 0o600 });
    const args = ['req', '-x509', '-new', '-key', keyFile, '-sha256', '-days', String(options.days)];
    args.push('-subj', subject, '-set_serial', `0x${randomBytes(16).toString('hex')}`);
    for (const e of ext) args.push('-addext', e);
    return (await runOpenssl(args)).toString();
  });
  return { cert, key };
}

export interface LeafOptions {
  /** The issuing CA; omit for a self-signed certificate. */
  ca?: KeyAndCertificate;
  commonName: string;
  organization?: string;
  dns?: readonly string[];
  ip?: readonly string[];
  /** Extended key usage: TLS server, TLS client, or both. */
  usage: 'server' | 'client' | 'both';
  days: number;
  keyType?: KeyType;
}

/** Makes a certificate for a server or a client, issued by `ca` (or self-signed), and its key. */
export async function issueCertificate(options: LeafOptions): Promise<KeyAndCertificate> {
  const names = [
    ...(options.dns ?? []).map((d) => {
      if (!DNS_NAME.test(d)) throw new Error(`not a DNS name: ${d}`);
      return `DNS:${d}`;
    }),
    ...(options.ip ?? []).map((i) => {
      if (!IP_ADDRESS.test(i)) throw new Error(`not an IP address: ${i}`);
      return `IP:${i}`;
    }),
  ];
  const eku = { server: 'serverAuth', client: 'clientAuth', both: 'serverAuth,clientAuth' }[options.usage];
  const extensions = [
    '[v3]',
    'basicConstraints=critical,CA:FALSE',
    `keyUsage=critical,digitalSignature${options.keyType === 'rsa' ? ',keyEncipherment' : ''}`,
    `extendedKeyUsage=${eku}`,
    'subjectKeyIdentifier=hash',
    ...(options.ca ? ['authorityKeyIdentifier=keyid'] : []),
    ...(names.length > 0 ? [`subjectAltName=${names.join(',')}`] : []),
    '',
  ].join('\n');
  const key = await generateKey(options.keyType);
  const subject =
    (options.organization === undefined ? '' : subjectPart('O', options.organization)) +
    subjectPart('CN', options.commonName);
  const cert = await withScratch(async (dir) => {
    const keyFile = join(dir, 'leaf.key');
    const extFile = join(dir, 'ext.cnf');
    writeFileSync(keyFile, key, { mode: 0o600 });
    writeFileSync(extFile, extensions);
    const csr = await runOpenssl(['req', '-new', '-key', keyFile, '-subj', subject]);
    const args = ['x509', '-req', '-sha256', '-days', String(options.days), '-extfile', extFile];
    args.push('-extensions', 'v3', '-set_serial', `0x${randomBytes(16).toString('hex')}`);
    if (options.ca) {
      const caKey = join(dir, 'ca.key');
      const caCert = join(dir, 'ca.crt');
      writeFileSync(caKey, options.ca.key, { mode: 0o600 });
      writeFileSync(caCert, options.ca.cert);
      args.push('-CA', caCert, '-CAkey', caKey);
    } else {
      args.push('-key', keyFile);
    }
    return (await runOpenssl(args, { input: csr })).toString();
  });
  return { cert, key };
}

/** Whether a certificate was issued by a development CA made by `portcullis cert dev`. */
export function isDevelopmentCertificate(cert: X509Certificate): boolean {
  return cert.issuer.split('\n').includes(`O=${DEV_CA_ORGANIZATION}`);
}

/** Whether a certificate is signed by its own key (its own issuer). */
export function isSelfSigned(cert: X509Certificate): boolean {
  return cert.issuer === cert.subject && cert.verify(cert.publicKey);
}

export interface DevCertificateFiles {
  dir: string;
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

export interface DevCertificateResult {
  files: DevCertificateFiles;
  createdCa: boolean;
  createdCertificate: boolean;
  notAfter: Date;
}

const RENEW_BEFORE_MS = 30 * 86_400_000;
/** Below the 398 days browsers accept for a server certificate. */
const LEAF_DAYS = 365;
const CA_DAYS = 3650;

export function devCertificateFiles(dir: string): DevCertificateFiles {
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    cert: join(dir, 'localhost.crt'),
    key: join(dir, 'localhost.key'),
  };
}

/** Writes a file through a temporary name and a rename, so a watching gateway never reads half of it. */
function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function readValid(path: string, now: number): X509Certificate | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const cert = new X509Certificate(readFileSync(path));
    return Date.parse(cert.validTo) - now > RENEW_BEFORE_MS ? cert : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Makes sure `dir` holds a development CA and a certificate for localhost,
 * 127.0.0.1 and ::1 issued by it. An existing CA is kept (so a CA already
 * trusted stays trusted) unless it expires within 30 days; the certificate is
 * remade when missing, not issued by that CA, expiring within 30 days, or
 * when `force` is set. Keys are written with mode 0600, the folder 0700.
 */
export async function ensureDevCertificates(
  dir: string,
  options: { force?: boolean; now?: number } = {},
): Promise<DevCertificateResult> {
  const now = options.now ?? Date.now();
  const files = devCertificateFiles(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  let ca = readValid(files.caCert, now);
  let createdCa = false;
  if (!ca || !existsSync(files.caKey)) {
    const host =
      hostname()
        .replace(/[^A-Za-z0-9.-]/g, '')
        .slice(0, 40) || 'localhost';
    const made = await createCertificateAuthority({
      organization: DEV_CA_ORGANIZATION,
      commonName: `Portcullis development CA (${host})`,
      days: CA_DAYS,
      permitted: {
        dns: ['localhost'],
        ip: ['127.0.0.0/255.0.0.0', '::1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
      },
    });
    writeAtomic(files.caKey, made.key, 0o600);
    writeAtomic(files.caCert, made.cert, 0o644);
    ca = new X509Certificate(made.cert);
    createdCa = true;
  }
  let leaf = options.force || createdCa ? undefined : readValid(files.cert, now);
  if (leaf && !(leaf.checkIssued(ca) && leaf.verify(ca.publicKey) && existsSync(files.key))) leaf = undefined;
  let createdCertificate = false;
  if (!leaf) {
    const made = await issueCertificate({
      ca: { cert: readFileSync(files.caCert, 'utf8'), key: readFileSync(files.caKey, 'utf8') },
      organization: 'Portcullis development',
      commonName: 'localhost',
      dns: ['localhost'],
      ip: ['127.0.0.1', '::1'],
      usage: 'server',
      days: LEAF_DAYS,
    });
    // The key first: a gateway watching the folder reloads after the certificate lands.
    writeAtomic(files.key, made.key, 0o600);
    writeAtomic(files.cert, made.cert, 0o644);
    leaf = new X509Certificate(made.cert);
    createdCertificate = true;
  }
  return { files, createdCa, createdCertificate, notAfter: new Date(leaf.validTo) };
}
