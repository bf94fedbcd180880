/** Real TLS clients for the tests: Node's `tls`, raw HTTP/1.1 over one kept-open connection, and `openssl s_client`. */
import { execFile } from 'node:child_process';
import type { X509Certificate } from 'node:crypto';
import type { RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ConnectionOptions, connect, type TLSSocket } from 'node:tls';
import { captureLogger } from '../../test-support/log.js';
import { createHttpsServer, type HttpsListener, type HttpsListenerOptions } from '../listener.js';
import type { Http2Settings, TlsListenerSettings } from '../types.js';

export { captureLogger };

/** The schema's defaults for `listen.tls.http2`. */
export const DEFAULT_HTTP2: Http2Settings = Object.freeze({
  maxConcurrentStreams: 100,
  maxHeaderListSize: 16 * 1024,
  maxResetsPerSecond: 100,
  maxControlFramesPerSecond: 50,
  maxSessionMemoryMb: 10,
  idleTimeoutMs: 30_000,
  streamIdleTimeoutMs: 60_000,
});

/** Listener settings for tests: one certificate, intermediate profile, no watching, HTTP/2 on with the defaults. */
export function listenerSettings(
  certificates: TlsListenerSettings['certificates'],
  overrides: Partial<TlsListenerSettings> = {},
): TlsListenerSettings {
  return {
    certificates,
    profile: 'intermediate',
    handshakeTimeoutMs: 5000,
    sessionTickets: true,
    ticketKeyRotationMs: 3_600_000,
    expiryWarningMs: 30 * 86_400_000,
    watch: false,
    clientAuth: {
      mode: 'off',
      request: false,
      caFiles: [],
      principal: 'fingerprint',
      tokenBinding: 'if_present',
    },
    hsts: undefined,
    http2: { ...DEFAULT_HTTP2 },
    selfSigned: 'allow',
    ...overrides,
  };
}

export interface RunningListener {
  listener: HttpsListener;
  port: number;
  lines: Record<string, unknown>[];
  close(): Promise<void>;
}

/** Answers `ok <path>` with keep-alive. */
export const okHandler: RequestListener = (req, res) => {
  const body = `ok ${req.url}`;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
};

/** Starts an HTTPS listener on 127.0.0.1, an ephemeral port. */
export async function startListener(
  settings: TlsListenerSettings,
  handler: RequestListener = okHandler,
  options: HttpsListenerOptions = {},
): Promise<RunningListener> {
  const { logger, lines } = captureLogger();
  const listener = createHttpsServer(settings, handler, logger, {
    http: { keepAliveTimeout: 10_000 },
    ...options,
  });
  await new Promise<void>((resolve) => listener.server.listen(0, '127.0.0.1', resolve));
  const port = (listener.server.address() as AddressInfo).port;
  return {
    listener,
    port,
    lines,
    async close() {
      listener.close();
      listener.server.closeAllConnections();
      await new Promise<void>((resolve) => listener.server.close(() => resolve()));
    },
  };
}

export interface Handshake {
  socket: TLSSocket;
  protocol: string | null;
  cipher: string;
  certificate: X509Certificate | undefined;
}

/** Completes a TLS handshake (and, for TLS 1.3, waits for a possible post-handshake alert); rejects if the server refuses. */
export function handshake(options: ConnectionOptions, settleMs = 0): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', ...options });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('handshake timed out'));
    }, 5000);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('secureConnect', () => {
      const done = () => {
        clearTimeout(timer);
        if (socket.destroyed) return;
        resolve({
          socket,
          protocol: socket.getProtocol(),
          cipher: socket.getCipher().name,
          certificate: socket.getPeerX509Certificate(),
        });
      };
      if (settleMs > 0) setTimeout(done, settleMs);
      else done();
    });
  });
}

/** Sends one keep-alive GET on an open TLS socket and resolves with the status and body. */
export function requestOn(
  socket: TLSSocket,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new Error('no response')), 5000);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const text = buf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = text.slice(0, end).split('\r\n');
      const parsed: Record<string, string> = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(':');
        parsed[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      const length = Number(parsed['content-length'] ?? 0);
      if (buf.length < end + 4 + length) return;
      finish(undefined, {
        status: Number(head[0]!.split(' ')[1]),
        body: buf.subarray(end + 4, end + 4 + length).toString(),
        headers: parsed,
      });
    };
    const onError = (err: Error) => finish(err);
    const onClose = () => finish(new Error('connection closed before a response'));
    const finish = (
      err: Error | undefined,
      value?: { status: number; body: string; headers: Record<string, string> },
    ) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (err) reject(err);
      else resolve(value!);
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    const extra = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`);
  });
}

/** Connects, sends one request and closes; rejects when the TLS layer refuses. */
export async function tlsGet(
  options: ConnectionOptions,
  path = '/',
): Promise<{ status: number; body: string; certificate: X509Certificate | undefined }> {
  const h = await handshake(options);
  try {
    const res = await requestOn(h.socket, path);
    return { status: res.status, body: res.body, certificate: h.certificate };
  } finally {
    h.socket.destroy();
  }
}

/**
 * Runs `openssl s_client -brief` against 127.0.0.1:port with the given
 * arguments and no input, and reports whether a handshake completed and with
 * what. `OPENSSL_CONF=/dev/null` keeps the machine's config out of it.
 */
export function sClient(
  port: number,
  args: readonly string[],
): Promise<{ connected: boolean; protocol: string | undefined; cipher: string | undefined; output: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-brief', ...args],
      { timeout: 10_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', OPENSSL_CONF: '/dev/null' } },
      (_err, stdout, stderr) => {
        const output = `${stdout}${stderr}`;
        const protocol = /Protocol version: (\S+)/.exec(output)?.[1];
        const cipher = /Ciphersuite: (\S+)/.exec(output)?.[1];
        resolve({ connected: protocol !== undefined, protocol, cipher, output });
      },
    );
    child.stdin?.end();
  });
}
