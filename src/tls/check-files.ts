/**
 * The TLS files a config names, read and parsed when the config is loaded
 * (`check`, `start`, reload), so that a certificate that is no PEM, a key
 * that does not belong to it or a CA bundle without a certificate is
 * reported at its place in the config (`listen.tls.certificates[0]`,
 * `upstreams.billing.tls.ca`), and nothing starts. Before, `check` called
 * such a config valid and `start` failed naming only the file.
 *
 * A file that cannot be read now is a warning, not an error: `check` often
 * runs where the keys are not (a CI job), and the listener reads the files
 * again when it starts and on every reload (they may change in between:
 * certificate rotation), failing then if they are still missing.
 */
import { accessSync, constants } from 'node:fs';
import { loadCertificate } from './certificates.js';
import { readCaCertificates } from './client-auth.js';
import type { TlsSettings } from './types.js';

type Segment = string | number;

export interface TlsFileIssue {
  path: Segment[];
  message: string;
}

/** Where each TLS file of the raw config is, and what it must hold. */
export interface TlsFilesInput {
  tls: TlsSettings;
  /** `listen.tls.client_auth.ca`, resolved (the listener's settings merge them with the routes'). */
  listenerCaFiles: readonly string[];
  admin: { cert: string; key: string; clientCa: string | undefined } | undefined;
}

function failure(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function checkTlsFiles(input: TlsFilesInput): { issues: TlsFileIssue[]; warnings: TlsFileIssue[] } {
  const issues: TlsFileIssue[] = [];
  const warnings: TlsFileIssue[] = [];
  /** Whether every file can be read now; a warning for each that cannot. */
  const readable = (path: Segment[], files: string[]): boolean =>
    files
      .map((f) => {
        try {
          accessSync(f, constants.R_OK);
          return true;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? 'error';
          warnings.push({
            path,
            message: `cannot read ${f} (${code}) now: starting fails unless it is there then`,
          });
          return false;
        }
      })
      .every(Boolean);
  const pair = (
    path: Segment[],
    source: { cert: string; key: string; passphrase: string | undefined },
  ): void => {
    if (!readable(path, [source.cert, source.key])) return;
    try {
      loadCertificate({ ...source, names: undefined }, {});
    } catch (err) {
      issues.push({ path, message: `expected a PEM certificate and its private key: ${failure(err)}` });
    }
  };
  const ca = (path: Segment[], file: string): void => {
    if (!readable(path, [file])) return;
    try {
      readCaCertificates([file]);
    } catch (err) {
      issues.push({ path, message: `expected a PEM file of CA certificates: ${failure(err)}` });
    }
  };
  input.tls.listener?.certificates.forEach((c, i) => {
    pair(['listen', 'tls', 'certificates', i], c);
  });
  input.listenerCaFiles.forEach((f, j) => {
    ca(['listen', 'tls', 'client_auth', 'ca', j], f);
  });
  input.tls.routes.forEach((route, i) => {
    route?.caFiles.forEach((f, j) => {
      ca(['routes', i, 'mtls', 'ca', j], f);
    });
  });
  for (const [name, u] of Object.entries(input.tls.upstreams)) {
    if (u.caFile !== undefined) ca(['upstreams', name, 'tls', 'ca'], u.caFile);
    if (u.clientCertFile !== undefined && u.clientKeyFile !== undefined) {
      pair(['upstreams', name, 'tls', 'client_cert'], {
        cert: u.clientCertFile,
        key: u.clientKeyFile,
        passphrase: u.clientKeyPassphrase,
      });
    }
  }
  if (input.admin !== undefined) {
    pair(['admin', 'tls'], { cert: input.admin.cert, key: input.admin.key, passphrase: undefined });
    if (input.admin.clientCa !== undefined) ca(['admin', 'tls', 'client_ca'], input.admin.clientCa);
  }
  return { issues, warnings };
}
