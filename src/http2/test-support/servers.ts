/** The set-up the HTTP/2 tests share: a test PKI with a `localhost` server certificate, and a TLS listener on it. */
import type { RequestListener } from 'node:http';
import type { HttpsListenerOptions } from '../../tls/listener.js';
import { listenerSettings, type RunningListener, startListener } from '../../tls/test-support/clients.js';
import { createTempPki, type PemFiles, type TempPki } from '../../tls/test-support/pki.js';
import type { TlsListenerSettings } from '../../tls/types.js';

export interface ServerPki {
  pki: TempPki;
  ca: PemFiles;
  /** A server certificate for `localhost` (and 127.0.0.1 when asked), from `ca`. */
  server: PemFiles;
}

/** A temporary PKI: the CA `caName` and a 30-day `localhost` server certificate from it. */
export async function serverPki(caName: string, options: { ip?: boolean } = {}): Promise<ServerPki> {
  const pki = createTempPki();
  try {
    const ca = await pki.ca(caName);
    const server = await pki.leaf('server', {
      ca,
      commonName: 'localhost',
      dns: ['localhost'],
      ...(options.ip === true ? { ip: ['127.0.0.1'] } : {}),
      usage: 'server',
      days: 30,
    });
    return { pki, ca, server };
  } catch (err) {
    pki.cleanup();
    throw err;
  }
}

/** `listen.tls.certificates` of a gateway config: the one server certificate. */
export const certificatesOf = (server: PemFiles) => [{ cert: server.certFile, key: server.keyFile }];

/** Starts the TLS listener (HTTP/2 on) with the one server certificate, answering with `handler`. */
export function startServerListener(
  server: PemFiles,
  handler: RequestListener,
  overrides: Partial<TlsListenerSettings> = {},
  options?: HttpsListenerOptions,
): Promise<RunningListener> {
  return startListener(
    listenerSettings(
      [{ cert: server.certFile, key: server.keyFile, passphrase: undefined, names: undefined }],
      overrides,
    ),
    handler,
    options,
  );
}
