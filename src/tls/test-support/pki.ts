/**
 * Test PKI made at test time with the openssl command line: CAs, server and
 * client certificates, an expired client certificate, written into a temp
 * folder. Nothing here is ever committed.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createCertificateAuthority,
  generateKey,
  issueCertificate,
  type KeyAndCertificate,
  type LeafOptions,
} from '../dev-cert.js';
import { runOpenssl } from '../openssl.js';

export interface PemFiles extends KeyAndCertificate {
  certFile: string;
  keyFile: string;
}

export interface TempPki {
  dir: string;
  /** Writes a key and certificate to `<name>.crt` / `<name>.key` and returns both paths and PEMs. */
  save(name: string, pair: KeyAndCertificate): PemFiles;
  ca(name: string, keyType?: 'ec' | 'rsa'): Promise<PemFiles>;
  leaf(name: string, options: LeafOptions): Promise<PemFiles>;
  /** A client certificate from `ca` whose validity ended in 2020. */
  expiredClient(name: string, ca: KeyAndCertificate): Promise<PemFiles>;
  cleanup(): void;
}

export function createTempPki(): TempPki {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-test-'));
  const save = (name: string, pair: KeyAndCertificate): PemFiles => {
    const certFile = join(dir, `${name}.crt`);
    const keyFile = join(dir, `${name}.key`);
    writeFileSync(certFile, pair.cert);
    writeFileSync(keyFile, pair.key, { mode: 0o600 });
    return { ...pair, certFile, keyFile };
  };
  return {
    dir,
    save,
    async ca(name, keyType = 'ec') {
      return save(name, await createCertificateAuthority({ commonName: name, days: 30, keyType }));
    },
    async leaf(name, options) {
      return save(name, await issueCertificate(options));
    },
    async expiredClient(name, ca) {
      // `openssl x509 -days` cannot go back in time; `openssl ca` takes explicit dates.
      const work = mkdtempSync(join(dir, 'ca-'));
      const conf = join(work, 'ca.cnf');
      writeFileSync(join(work, 'index.txt'), '');
      writeFileSync(join(work, 'ca.crt'), ca.cert);
      writeFileSync(join(work, 'ca.key'), ca.key, { mode: 0o600 });
      writeFileSync(
        conf,
        [
          '[ca]',
          'default_ca = d',
          '[d]',
          `database = ${join(work, 'index.txt')}`,
          `new_certs_dir = ${work}`,
          'default_md = sha256',
          'policy = p',
          'unique_subject = no',
          'rand_serial = yes',
          '[p]',
          'commonName = supplied',
          '[v3]',
          'basicConstraints = critical,CA:FALSE',
          'keyUsage = critical,digitalSignature',
          'extendedKeyUsage = clientAuth',
          '',
        ].join('\n'),
      );
      const key = await generateKey('ec');
      const keyFile = join(work, 'leaf.key');
      writeFileSync(keyFile, key, { mode: 0o600 });
      const csrFile = join(work, 'leaf.csr');
      await runOpenssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${name}`, '-out', csrFile]);
      const out = join(work, 'leaf.crt');
      await runOpenssl([
        'ca',
        '-batch',
        '-config',
        conf,
        '-cert',
        join(work, 'ca.crt'),
        '-keyfile',
        join(work, 'ca.key'),
        '-in',
        csrFile,
        '-out',
        out,
        '-startdate',
        '20200101000000Z',
        '-enddate',
        '20200102000000Z',
        '-extfile',
        conf,
        '-extensions',
        'v3',
        '-notext',
      ]);
      return save(name, { cert: readFileSync(out, 'utf8'), key });
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
