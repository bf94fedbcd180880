/**
 * The HTTPS public listener and the plain-HTTP listener that only redirects
 * to it. The HTTPS listener speaks HTTP/1.1 and, negotiated by ALPN when
 * `listen.tls.http2` is on, HTTP/2 (src/http2/server.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer, type RequestListener } from 'node:http';
import {
  createServer as createHttpsServerNode,
  type Server as HttpsServer,
  type ServerOptions,
} from 'node:https';
import type { SecureContextOptions } from 'node:tls';
import { gatewayError, sendProblem } from '../errors.js';
import { attachHttp2, type Http2Attachment } from '../http2/server.js';
import type { Logger } from '../log.js';
import { createHostCheck, parseHost } from '../request/host.js';
import {
  type CertificateInfo,
  type CertificateSet,
  type CertificateStatus,
  certificateReport,
  checkExpiry,
  createCertificateStore,
} from './certificates.js';
import { readCaCertificates } from './client-auth.js';
import { alpnProtocols, serverContextOptions, TLS_PROFILES } from './tls-options.js';
import type { TlsListenerSettings } from './types.js';

export { hstsHeaderValue } from './types.js';

/** The running HTTPS listener's handles. */
export interface HttpsListener {
  /** Not yet listening: the caller calls `listen` (and later `close`, which drains). */
  readonly server: HttpsServer;
  /** Reads every certificate, key and CA file again and swaps them in; rejects, keeping the current ones, on any problem. */
  reload(): Promise<readonly CertificateInfo[]>;
  /** The certificates presented now. */
  certificates(): readonly CertificateInfo[];
  /** Rejects when a certificate has expired (for `/readyz`). */
  readinessCheck(): Promise<void>;
  /** Each certificate's name, expiry and status (`ok`, `expiring` within expiry_warning, `expired`), for `/readyz`. */
  report(): CertificateStatus[];
  /** Replaces the session ticket key now (the timer does it every `ticketKeyRotationMs`). */
  rotateTicketKeys(): void;
  /** HTTP/2 connections (undefined when `listen.tls.http2` is off). */
  readonly http2: Http2Attachment | undefined;
  /** Stops the file watchers and timers. Closing and draining the server stays with the caller. */
  close(): void;
}

export interface HttpsListenerOptions {
  /** HTTP options (header limits, timeouts) for the server. */
  http?: ServerOptions;
  /** Quiet time after a file event before reloading; default 250 ms. */
  debounceMs?: number;
  /** Clock for expiry checks (tests). */
  now?: () => number;
}

/** Thrown when the listener cannot start (bad files, a self-signed certificate in production). */
export class TlsStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TlsStartError';
  }
}

const EXPIRY_CHECK_INTERVAL_MS = 12 * 3_600_000;
const TICKET_KEY_BYTES = 48;

function untrustedReason(info: CertificateInfo): string | undefined {
  if (info.selfSigned) return 'is self-signed';
  if (info.developmentCa) return 'is issued by a development CA (portcullis cert dev)';
  return undefined;
}

/**
 * Creates the HTTPS server for the public listener: the profile's protocol
 * versions and suites, certificates by SNI with reload, rotating session
 * ticket keys, optional client certificates, a short handshake timeout, and
 * HTTP/2 next to HTTP/1.1 when `settings.http2` is set.
 * `handler` is the gateway's request handler. Throws TlsStartError when a
 * certificate cannot be loaded or is refused (self-signed in production).
 */
export function createHttpsServer(
  settings: TlsListenerSettings,
  handler: RequestListener,
  logger: Logger,
  options: HttpsListenerOptions = {},
): HttpsListener {
  const now = options.now ?? Date.now;
  const profile = TLS_PROFILES[settings.profile];
  const ca = settings.clientAuth;
  // One id for every context: sessions stay valid across SNI contexts, and a
  // different client-auth setup never resumes another's session.
  const sessionIdContext = createHash('sha256')
    .update(`portcullis:${ca.mode}:${ca.caFiles.join(',')}`)
    .digest('hex')
    .slice(0, 32);
  const shared = (): SecureContextOptions => {
    const clientCa = ca.request ? readCaCertificates(ca.caFiles).map((c) => c.toString()) : undefined;
    return serverContextOptions(profile, {
      sessionTickets: settings.sessionTickets,
      sessionIdContext,
      ...(clientCa ? { clientCa } : {}),
    });
  };

  const reportTrust = (set: CertificateSet, when: 'start' | 'reload') => {
    for (const info of set.infos()) {
      const reason = untrustedReason(info);
      if (reason === undefined) continue;
      if (settings.selfSigned === 'refuse') {
        throw new TlsStartError(
          `the certificate ${info.file} ${reason}: production refuses it unless allow_insecure.self_signed is true`,
        );
      }
      if (settings.selfSigned === 'warn') {
        logger.warn(
          { file: info.file, name: info.name, when },
          `TLS certificate ${reason}; clients cannot verify it (allow_insecure.self_signed)`,
        );
      }
    }
  };
  const reportExpiry = (infos: readonly CertificateInfo[]) => {
    const { expired, expiringSoon } = checkExpiry(infos, now(), settings.expiryWarningMs);
    for (const i of expired) {
      logger.error(
        { name: i.name, file: i.file, notAfter: i.notAfter.toISOString() },
        'TLS certificate has expired',
      );
    }
    for (const i of expiringSoon) {
      const days = Math.floor((i.notAfter.getTime() - now()) / 86_400_000);
      logger.warn(
        { name: i.name, file: i.file, notAfter: i.notAfter.toISOString(), daysLeft: days },
        'TLS certificate expires soon; renew it',
      );
    }
  };

  let server: HttpsServer | undefined;
  let ticketKey = randomBytes(TICKET_KEY_BYTES);
  let store: ReturnType<typeof createCertificateStore>;
  try {
    store = createCertificateStore({
      sources: settings.certificates,
      sharedOptions: shared,
      extraFiles: ca.request ? ca.caFiles : [],
      validate: (set) => reportTrust(set, server ? 'reload' : 'start'),
      onSwap: (set) => {
        if (!server) return;
        // Connections without SNI get the server's own context, so it is replaced too;
        // a fresh context has fresh ticket keys, so the current key is put back.
        server.setSecureContext(set.default.options);
        server.setTicketKeys(ticketKey);
        reportExpiry(set.infos());
      },
      watch: settings.watch,
      ...(options.debounceMs === undefined ? {} : { debounceMs: options.debounceMs }),
      logger,
    });
  } catch (err) {
    if (err instanceof TlsStartError) throw err;
    throw new TlsStartError(`cannot start HTTPS: ${(err as Error).message}`, { cause: err });
  }

  const initial = store.current();
  const srv = createHttpsServerNode(
    {
      ...options.http,
      ...initial.default.options,
      requestCert: ca.request,
      rejectUnauthorized: ca.mode === 'required',
      SNICallback: (servername, cb) => cb(null, store.current().select(servername).context),
      ALPNProtocols: alpnProtocols(settings.http2 !== undefined),
      handshakeTimeout: settings.handshakeTimeoutMs,
      ticketKeys: ticketKey,
      sessionTimeout: Math.max(1, Math.floor(settings.ticketKeyRotationMs / 1000)),
    },
    handler,
  );
  server = srv;
  const http2 =
    settings.http2 === undefined
      ? undefined
      : attachHttp2(srv, handler, settings.http2, logger, { requestTimeoutMs: options.http?.requestTimeout });
  if (http2 !== undefined) {
    // The drain (src/runtime.ts) and the tests close connections through these two: they
    // cover the HTTP/2 connections too. closeIdle sends GOAWAY, so an HTTP/2 client
    // finishes its streams and opens no new ones, as Connection: close does for HTTP/1.1.
    const closeIdle = srv.closeIdleConnections.bind(srv);
    const closeAll = srv.closeAllConnections.bind(srv);
    srv.closeIdleConnections = () => {
      closeIdle();
      http2.closeIdle();
    };
    srv.closeAllConnections = () => {
      closeAll();
      http2.closeAll();
    };
  }
  srv.on('tlsClientError', (err: NodeJS.ErrnoException) => {
    logger.debug({ code: err.code }, 'TLS handshake failed');
  });
  reportExpiry(initial.infos());

  const rotation = setInterval(() => {
    ticketKey = randomBytes(TICKET_KEY_BYTES);
    srv.setTicketKeys(ticketKey);
  }, settings.ticketKeyRotationMs);
  rotation.unref();
  const expiryTimer = setInterval(() => reportExpiry(store.current().infos()), EXPIRY_CHECK_INTERVAL_MS);
  expiryTimer.unref();

  const listener: HttpsListener = {
    server: srv,
    http2,
    async reload() {
      return store.reload().infos();
    },
    certificates: () => store.current().infos(),
    async readinessCheck() {
      const { expired } = checkExpiry(store.current().infos(), now(), 0);
      if (expired.length > 0) {
        throw new Error(
          `TLS certificate expired: ${expired.map((i) => `${i.name} (${i.notAfter.toISOString()})`).join(', ')}`,
        );
      }
    },
    report: () => certificateReport(store.current().infos(), now(), settings.expiryWarningMs),
    rotateTicketKeys() {
      ticketKey = randomBytes(TICKET_KEY_BYTES);
      srv.setTicketKeys(ticketKey);
    },
    close() {
      clearInterval(rotation);
      clearInterval(expiryTimer);
      store.close();
    },
  };
  return listener;
}

/** Characters a Location path and query may carry as they are (RFC 3986 pchar, "/", "?"); anything else is percent-encoded. */
const URI_SAFE = /[A-Za-z0-9\-._~!$&'()*+,;=:@/?]/;

/**
 * The host part of a Host header (without its port) when it is a well-formed
 * name or address (`parseHost` in src/request/host.ts: lower case, no
 * trailing dot, IPv6 in brackets); undefined otherwise.
 */
export function parseHostHeader(value: string | undefined): string | undefined {
  return value === undefined ? undefined : parseHost(value)?.hostname;
}

/** Percent-encodes every character of an origin-form request target that is not safe in a Location as it is. */
function encodeTarget(target: string): string {
  let out = '';
  for (let i = 0; i < target.length; i++) {
    const ch = target[i]!;
    if (ch === '%' && /^[0-9A-Fa-f]{2}$/.test(target.slice(i + 1, i + 3))) out += ch;
    else if (URI_SAFE.test(ch)) out += ch;
    else {
      const code = ch.charCodeAt(0);
      // llhttp hands over raw bytes as latin1, so each char is one byte.
      out += code <= 0xff ? `%${code.toString(16).toUpperCase().padStart(2, '0')}` : encodeURIComponent(ch);
    }
  }
  return out;
}

/** How many Host header lines a request has (`rawHeaders` alternates names and values). */
function hostHeaderCount(rawHeaders: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === 'host') n++;
  return n;
}

/** The host name a canonical host setting stands for, or undefined when it is not a bare host (a port, userinfo…). */
function canonicalHostname(canonicalHost: string): string | undefined {
  const parsed = parseHost(canonicalHost);
  return parsed === undefined || parsed.port !== undefined ? undefined : parsed.hostname;
}

/**
 * The `https://` URL a plain-HTTP request is redirected to, or undefined when
 * the request cannot be redirected safely. The host is the canonical host
 * when there is one, whatever the request's Host says; otherwise the
 * request's Host, only when it is well formed and `isAllowedHost` (default:
 * any well-formed host) accepts it. Undefined also for a target that is not
 * a path, and for a canonical host that is not a bare host name.
 */
export function redirectLocation(
  hostHeader: string | undefined,
  target: string | undefined,
  options: {
    httpsPort: number;
    canonicalHost?: string | undefined;
    isAllowedHost?: ((host: string | undefined) => boolean) | undefined;
  },
): string | undefined {
  let host: string | undefined;
  if (options.canonicalHost !== undefined) {
    host = canonicalHostname(options.canonicalHost);
  } else if (options.isAllowedHost === undefined || options.isAllowedHost(hostHeader)) {
    host = parseHostHeader(hostHeader);
  }
  if (host === undefined || target === undefined || !target.startsWith('/')) return undefined;
  const port = options.httpsPort === 443 ? '' : `:${options.httpsPort}`;
  return `https://${host}${port}${encodeTarget(target)}`;
}

export interface RedirectServerOptions {
  /** The port put in the Location; 443 is left out. */
  httpsPort: number;
  /** Redirect everything to this host instead of the request's Host (a bare host name: no port). */
  canonicalHost?: string | undefined;
  /**
   * `listen.hosts` (GatewayConfig `listen.hosts`): without a canonical host,
   * only a Host on this list is redirected to; others get 400. Exact names
   * and `*.domain` wildcards, see `createHostCheck`. Undefined or empty: any
   * well-formed Host.
   */
  allowedHosts?: readonly string[] | undefined;
  headersTimeoutMs?: number;
  maxHeaderBytes?: number;
}

/**
 * A plain-HTTP server that answers every request with 308 to the same path
 * on HTTPS, and never serves anything else: no API, no HSTS (RFC 6797 §7.2
 * forbids it over HTTP). The Location's host is the canonical host when one
 * is set; otherwise the request's Host, when it is well formed and on the
 * allow-list. A missing, malformed or not allowed Host, or a target that is
 * not a path, gets a 400 problem+json with no Location, so nothing a client
 * sends is reflected. The body is never read; the connection closes after
 * the answer.
 *
 * @throws TypeError when `canonicalHost` is not a bare host name or an
 * `allowedHosts` entry is not a host name or `*.domain` pattern.
 */
export function createRedirectServer(options: RedirectServerOptions): HttpServer {
  if (options.canonicalHost !== undefined && canonicalHostname(options.canonicalHost) === undefined) {
    throw new TypeError(`not a host name: ${JSON.stringify(options.canonicalHost)}`);
  }
  const locationOptions = {
    httpsPort: options.httpsPort,
    canonicalHost: options.canonicalHost,
    isAllowedHost: createHostCheck(options.allowedHosts),
  };
  const headersTimeout = options.headersTimeoutMs ?? 10_000;
  const server = createHttpServer(
    {
      maxHeaderSize: options.maxHeaderBytes ?? 16 * 1024,
      headersTimeout,
      requestTimeout: headersTimeout,
      keepAliveTimeout: 1000,
      connectionsCheckingInterval: Math.min(1000, headersTimeout),
      requireHostHeader: false,
    },
    (req, res) => {
      // Node keeps the first of two Host headers and drops the other: two are no Host at all here
      // (RFC 9112 §3.2), so only a canonical host can answer them.
      const host = hostHeaderCount(req.rawHeaders) > 1 ? undefined : req.headers.host;
      const location = redirectLocation(host, req.url, locationOptions);
      if (location === undefined) {
        sendProblem(res, gatewayError('badRequest'), undefined, { connection: 'close' });
        return;
      }
      res.writeHead(308, { location, 'content-length': 0, connection: 'close' });
      res.end();
    },
  );
  return server;
}
