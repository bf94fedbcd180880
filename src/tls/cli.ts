/**
 * `portcullis cert`: a development CA and a localhost certificate
 * (`cert dev`), and the pin of a certificate's public key (`cert pin`).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { splitPemCertificates } from './certificates.js';
import { ensureDevCertificates } from './dev-cert.js';
import { spkiSha256 } from './upstream-tls.js';

/** Where `runCertCommand` writes and reads its environment. */
export interface CertCommandIo {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
}

const USAGE = `Usage:
  portcullis cert dev [--out DIR] [--force]
      make a local development CA and a certificate for localhost, 127.0.0.1
      and ::1 issued by it (default DIR: $PORTCULLIS_DATA/tls, i.e. ./data/tls);
      an existing CA is kept, so a CA you already trust stays trusted
  portcullis cert pin FILE
      print the pin_sha256 value of each certificate in a PEM file`;

/** The folder `cert dev` writes to by default, and where the demo looks. */
export function defaultDevCertificateDir(env: NodeJS.ProcessEnv): string {
  return resolve(env.PORTCULLIS_DATA ?? 'data', 'tls');
}

/** Runs `portcullis cert …`; resolves with the exit code (0 ok, 1 failure, 2 bad usage). */
export async function runCertCommand(argv: readonly string[], io: CertCommandIo): Promise<number> {
  const [sub, ...rest] = argv;
  let values: { out?: string; force?: boolean; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...rest], options: OPTIONS, allowPositionals: true }));
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help || sub === undefined || sub === 'help') {
    io.out(USAGE);
    return sub === undefined ? 2 : 0;
  }
  try {
    if (sub === 'dev' && positionals.length === 0) return await dev(values.out, values.force ?? false, io);
    if (sub === 'pin' && positionals.length === 1) return pin(positionals[0]!, io);
  } catch (err) {
    io.err(`portcullis cert ${sub}: ${(err as Error).message}`);
    return 1;
  }
  io.err(`unknown or incomplete command "cert ${argv.join(' ')}"\n\n${USAGE}`);
  return 2;
}

const OPTIONS = {
  out: { type: 'string', short: 'o' },
  force: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

async function dev(out: string | undefined, force: boolean, io: CertCommandIo): Promise<number> {
  const dir = out === undefined ? defaultDevCertificateDir(io.env) : resolve(out);
  const result = await ensureDevCertificates(dir, { force });
  const f = result.files;
  io.out(
    [
      result.createdCa
        ? `Created a development CA:   ${f.caCert}`
        : `Kept the development CA:     ${f.caCert}`,
      `${result.createdCertificate ? 'Created' : 'Kept'} the certificate:     ${f.cert} (localhost, 127.0.0.1, ::1; valid until ${result.notAfter.toISOString().slice(0, 10)})`,
      `Its key:                     ${f.key} (mode 0600; the CA key ${f.caKey} too)`,
      '',
      'Use it in the config:',
      '  listen:',
      '    tls:',
      '      certificates:',
      `        - cert: ${f.cert}`,
      `          key: ${f.key}`,
      '',
      'Trust it without installing anything:',
      `  curl --cacert ${f.caCert} https://localhost:8443/public/catalog`,
      `  NODE_EXTRA_CA_CERTS=${f.caCert} node your-client.js`,
      'Or trust the CA for this machine (it can only vouch for localhost and loopback addresses):',
      `  Debian/Ubuntu: sudo cp ${f.caCert} /usr/local/share/ca-certificates/portcullis-dev.crt && sudo update-ca-certificates`,
      `  macOS:         sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain ${f.caCert}`,
      '',
      'Never use it in production: mode: production refuses development certificates.',
    ].join('\n'),
  );
  return 0;
}

function pin(file: string, io: CertCommandIo): number {
  const pems = splitPemCertificates(readFileSync(file, 'utf8'));
  if (pems.length === 0) throw new Error(`no PEM certificate in ${file}`);
  for (const pem of pems) {
    const cert = new X509Certificate(pem);
    io.out(`${spkiSha256(cert)}  ${cert.subject.replace(/\n/g, ', ')}`);
  }
  return 0;
}
