/**
 * The certificates a listener presents: loaded from PEM files, selected by
 * SNI, replaced as a whole when the files change (or on `reload()`), with
 * the facts readiness and metrics need (names, validity, self-signed).
 *
 * A reload builds every SecureContext anew and swaps the set in one step;
 * connections already established keep the context they were made with, so
 * nothing is dropped. A set that fails to load (a half-written file, a key
 * that does not match) is refused and the previous one keeps serving.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from '../log.js';
import { isDevelopmentCertificate, isSelfSigned } from './dev-cert.js';
import type { CertificateSource } from './types.js';

/** What a listener presents, for readiness, metrics and logs. No key material. */
export interface CertificateInfo {
  /** The first name it is served for. */
  name: string;
  /** Every SNI name it is served for; `*.` marks a wildcard. */
  names: readonly string[];
  /** The certificate file. */
  file: string;
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the DER, colon-separated hex, as `openssl x509 -fingerprint -sha256` prints it. */
  fingerprint256: string;
  selfSigned: boolean;
  /** Issued by a CA made by `portcullis cert dev`. */
  developmentCa: boolean;
}

export interface LoadedCertificate {
  readonly info: CertificateInfo;
  readonly context: SecureContext;
  /** The options the context was made from (for `Server.setSecureContext`). */
  readonly options: SecureContextOptions;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const SNI_NAME = /^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read the ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** The PEM certificates in a file, in order. */
export function splitPemCertificates(pem: string): string[] {
  return pem.match(PEM_CERTIFICATE) ?? [];
}

/** The DNS names of a certificate's subjectAltName, or its CN when it has none. */
export function certificateDnsNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (san !== undefined) {
    const dns = san
      .split(', ')
      .filter((e) => e.startsWith('DNS:'))
      .map((e) => e.slice(4).toLowerCase());
    if (dns.length > 0) return dns;
  }
  const cn = cert.subject
    .split('\n')
    .find((l) => l.startsWith('CN='))
    ?.slice(3)
    .toLowerCase();
  return cn !== undefined && SNI_NAME.test(cn) ? [cn] : [];
}

/** Reads one certificate with its key and builds its SecureContext. Throws a readable Error without secrets. */
export function loadCertificate(source: CertificateSource, shared: SecureContextOptions): LoadedCertificate {
  const certPem = read(source.cert, 'certificate file').toString('utf8');
  const keyPem = read(source.key, 'key file');
  const chain = splitPemCertificates(certPem);
  if (chain.length === 0) throw new Error(`no PEM certificate in ${source.cert}`);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(chain[0]!);
  } catch {
    throw new Error(`the first certificate in ${source.cert} cannot be parsed`);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey({
      key: keyPem,
      format: 'pem',
      ...(source.passphrase === undefined ? {} : { passphrase: source.passphrase }),
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const encrypted = /ENCRYPTED/.test(keyPem.toString('latin1'));
    const why =
      encrypted && source.passphrase === undefined
        ? 'it is encrypted and no passphrase is configured'
        : code === 'ERR_OSSL_BAD_DECRYPT' || /bad decrypt/i.test((err as Error).message)
          ? 'the passphrase is wrong'
          : 'it is not a PEM private key';
    throw new Error(`cannot load the key ${source.key}: ${why}`);
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new Error(`the key ${source.key} does not belong to the certificate in ${source.cert}`);
  }
  const names = (source.names ?? certificateDnsNames(leaf)).map((n) => n.toLowerCase().replace(/\.$/, ''));
  const options: SecureContextOptions = {
    ...shared,
    cert: certPem,
    key: keyPem,
    ...(source.passphrase === undefined ? {} : { passphrase: source.passphrase }),
  };
  let context: SecureContext;
  try {
    context = createSecureContext(options);
  } catch (err) {
    throw new Error(`cannot use ${source.cert}: ${(err as Error).message}`);
  }
  return {
    context,
    options,
    info: Object.freeze({
      name: names[0] ?? basename(source.cert),
      names: Object.freeze(names),
      file: source.cert,
      subject: leaf.subject.replace(/\n/g, ', '),
      issuer: leaf.issuer.replace(/\n/g, ', '),
      notBefore: new Date(leaf.validFrom),
      notAfter: new Date(leaf.validTo),
      fingerprint256: leaf.fingerprint256,
      selfSigned: isSelfSigned(leaf),
      developmentCa: isDevelopmentCertificate(leaf),
    }),
  };
}

/**
 * An immutable set of certificates with SNI selection: an exact name wins
 * over a wildcard (`*.example.com` matches one label only, RFC 6125 §6.4.3);
 * a name no certificate claims, or no SNI at all, gets the first certificate.
 * When two certificates claim the same name, the first listed wins.
 */
export class CertificateSet {
  readonly certificates: readonly LoadedCertificate[];
  private readonly exact = new Map<string, LoadedCertificate>();
  private readonly wildcard = new Map<string, LoadedCertificate>();

  constructor(certificates: readonly LoadedCertificate[]) {
    if (certificates.length === 0) throw new Error('at least one certificate is needed');
    this.certificates = certificates;
    for (const c of certificates) {
      for (const name of c.info.names) {
        const map = name.startsWith('*.') ? this.wildcard : this.exact;
        const key = name.startsWith('*.') ? name.slice(2) : name;
        if (!map.has(key)) map.set(key, c);
      }
    }
  }

  get default(): LoadedCertificate {
    return this.certificates[0]!;
  }

  /** The certificate for an SNI server name. */
  select(servername: string | undefined): LoadedCertificate {
    if (servername === undefined || servername === '') return this.default;
    const name = servername.toLowerCase().replace(/\.$/, '');
    const exact = this.exact.get(name);
    if (exact) return exact;
    const dot = name.indexOf('.');
    const wild = dot > 0 ? this.wildcard.get(name.slice(dot + 1)) : undefined;
    return wild ?? this.default;
  }

  infos(): CertificateInfo[] {
    return this.certificates.map((c) => c.info);
  }
}

export interface CertificateStoreOptions {
  sources: readonly CertificateSource[];
  /** Builds the options shared by every context; called on each load, so CA files are re-read too. */
  sharedOptions(): SecureContextOptions;
  /** Extra files whose change triggers a reload (client CA files). */
  extraFiles?: readonly string[];
  /** Throws to refuse a set (e.g. a self-signed certificate in production). */
  validate?(set: CertificateSet): void;
  /** Called after a new set is in place (the listener swaps its default context). */
  onSwap?(set: CertificateSet): void;
  /** Watch the files' folders and reload on change. */
  watch: boolean;
  /** Quiet time after the last file event before reloading; default 250 ms. */
  debounceMs?: number;
  logger: Logger;
}

export interface CertificateStore {
  current(): CertificateSet;
  /** Loads every file again and swaps the set in; throws, keeping the current set, when anything is wrong. */
  reload(): CertificateSet;
  /** Stops watching. */
  close(): void;
}

function digestFiles(files: readonly string[]): string {
  const hash = createHash('sha256');
  for (const f of files) {
    try {
      hash.update(readFileSync(f));
    } catch {
      hash.update(`missing:${f}`);
    }
    hash.update('\0');
  }
  return hash.digest('hex');
}

/**
 * Loads the certificates and keeps them current. The first load throws on
 * any problem (nothing should start); later loads log and keep the old set.
 */
export function createCertificateStore(options: CertificateStoreOptions): CertificateStore {
  const { logger } = options;
  const files = [
    ...new Set([...options.sources.flatMap((s) => [s.cert, s.key]), ...(options.extraFiles ?? [])]),
  ];
  const build = (): CertificateSet => {
    const shared = options.sharedOptions();
    const set = new CertificateSet(options.sources.map((s) => loadCertificate(s, shared)));
    options.validate?.(set);
    return set;
  };
  let digest = digestFiles(files);
  let set = build();
  const swap = (): CertificateSet => {
    const nextDigest = digestFiles(files);
    const next = build();
    set = next;
    digest = nextDigest;
    options.onSwap?.(next);
    logger.info(
      {
        certificates: next.infos().map((i) => ({ name: i.name, notAfter: i.notAfter.toISOString() })),
      },
      'TLS certificates reloaded',
    );
    return next;
  };

  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  if (options.watch) {
    const onEvent = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        // Editors and cert-manager touch folders often; reload only on a real change.
        if (digestFiles(files) === digest) return;
        try {
          swap();
        } catch (err) {
          logger.warn(
            { err: (err as Error).message },
            'TLS certificate files changed but cannot be loaded; the previous certificates keep serving',
          );
        }
      }, options.debounceMs ?? 250);
      timer.unref();
    };
    // Folders rather than files: a rename (atomic replace, Kubernetes secret
    // symlink swap) leaves a watch on the old file's inode blind.
    for (const dir of new Set(files.map((f) => dirname(f)))) {
      try {
        const w = watch(dir, { persistent: false }, onEvent);
        w.on('error', (err) => logger.warn({ err: err.message, dir }, 'watching TLS files failed'));
        watchers.push(w);
      } catch (err) {
        logger.warn({ err: (err as Error).message, dir }, 'cannot watch TLS files; reload with SIGHUP');
      }
    }
  }

  return {
    current: () => set,
    reload: swap,
    close() {
      clearTimeout(timer);
      for (const w of watchers) w.close();
      watchers.length = 0;
    },
  };
}

export interface ExpiryReport {
  expired: CertificateInfo[];
  expiringSoon: CertificateInfo[];
}

/** Sorts certificates into expired and expiring within `warnMs` of `now`. */
export function checkExpiry(infos: readonly CertificateInfo[], now: number, warnMs: number): ExpiryReport {
  const expired: CertificateInfo[] = [];
  const expiringSoon: CertificateInfo[] = [];
  for (const i of infos) {
    const left = i.notAfter.getTime() - now;
    if (left <= 0) expired.push(i);
    else if (left <= warnMs) expiringSoon.push(i);
  }
  return { expired, expiringSoon };
}

/** One certificate's line in `/readyz`: no key material, nothing a client could not see in the handshake. */
export interface CertificateStatus {
  name: string;
  not_after: string;
  days_left: number;
  status: 'ok' | 'expiring' | 'expired';
}

/** A JSON-ready summary of the certificates for readiness output. */
export function certificateReport(
  infos: readonly CertificateInfo[],
  now: number,
  warnMs: number,
): CertificateStatus[] {
  return infos.map((i) => {
    const left = i.notAfter.getTime() - now;
    return {
      name: i.name,
      not_after: i.notAfter.toISOString(),
      days_left: Math.floor(left / 86_400_000),
      status: left <= 0 ? 'expired' : left <= warnMs ? 'expiring' : 'ok',
    };
  });
}
