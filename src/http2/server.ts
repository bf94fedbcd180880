/**
 * HTTP/2 on the public TLS listener (RFC 9113), next to HTTP/1.1 on the
 * same port.
 *
 * How a connection is served: the listener stays Node's `https.Server`,
 * which does the TLS handshake (profile, SNI, tickets, client
 * certificates). ALPN offers `h2` and `http/1.1`; a connection that
 * negotiated `http/1.1` (or no ALPN) goes to the HTTP/1.1 server code
 * exactly as before, so every HTTP/1.1 option, timeout and test is
 * unchanged. A connection that negotiated `h2` is handed to an internal
 * `http2.Http2SecureServer` that never listens itself. Its compatibility
 * API gives the gateway the same `(req, res)` pair as HTTP/1.1, and the
 * normalise stage maps the pseudo-headers onto the one request view
 * (src/http2/request-head.ts), so every stage reads the same view for both
 * protocols.
 *
 * Node's `allowHTTP1` would do the ALPN switch too, but it runs HTTP/1.1 on
 * an HTTP/2 server object that lacks the HTTP/1.1 server's options (header
 * limits, keep-alive timeout), so HTTP/1.1 would change. Handing over the
 * socket keeps it byte for byte.
 *
 * What Node and nghttp2 check themselves (each has a test in
 * src/http2/rfc9113.test.ts): connection-specific header fields, `te`
 * other than `trailers`, upper-case names, missing or repeated
 * pseudo-headers, `:protocol` (extended CONNECT, since
 * SETTINGS_ENABLE_CONNECT_PROTOCOL is not sent) and a `content-length`
 * that the DATA frames do not match are all answered with RST_STREAM
 * PROTOCOL_ERROR. CONNECT is answered here with a 405 problem.
 *
 * The limits on known HTTP/2 attacks (`listen.tls.http2`):
 * - rapid reset (CVE-2023-44487): streams reset before their response was
 *   sent are counted per connection per second; past
 *   `max_resets_per_second` the connection gets GOAWAY ENHANCE_YOUR_CALM
 *   and is closed;
 * - PING and SETTINGS floods: counted the same way
 *   (`max_control_frames_per_second`);
 * - CONTINUATION floods and large header lists: SETTINGS_MAX_HEADER_LIST_SIZE
 *   (`max_header_list_size`; a larger block resets the stream with
 *   ENHANCE_YOUR_CALM), and nghttp2's own cap on CONTINUATION frames
 *   closes the connection;
 * - concurrent streams: SETTINGS_MAX_CONCURRENT_STREAMS
 *   (`max_concurrent_streams`; more are refused with REFUSED_STREAM, and
 *   after `MAX_REJECTED_STREAMS` refusals the connection is closed);
 * - memory and flow-control abuse: `max_session_memory` (Node's
 *   `maxSessionMemory`), `stream_idle_timeout` (a stream whose window is
 *   never opened makes no progress and is reset), `idle_timeout`, and the
 *   HTTP/1.1 `request_timeout` for a request body that never completes;
 * - invalid frames: Node's `maxSessionInvalidFrames`, set to
 *   `MAX_INVALID_FRAMES`.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import {
  constants,
  createSecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { gatewayError, sendProblem } from '../errors.js';
import type { Logger } from '../log.js';
import type { Http2Settings } from '../tls/types.js';
import { type Http2LimitKind, http2Stats } from './stats.js';

/** Invalid frames (Node's `maxSessionInvalidFrames`, default 1000) before the connection is closed. */
export const MAX_INVALID_FRAMES = 100;
/** Streams refused for passing max_concurrent_streams (Node's `maxSessionRejectedStreams`) before the connection is closed. */
export const MAX_REJECTED_STREAMS = 100;
/** Entries in one SETTINGS frame (Node's `maxSettings`). */
export const MAX_SETTINGS_ENTRIES = 32;
/** Header fields in one request (Node's `maxHeaderListPairs`, default 128). */
export const MAX_HEADER_PAIRS = 128;

export interface Http2Attachment {
  /** Open HTTP/2 connections. */
  connections(): number;
  /** Sends GOAWAY to every connection: no new streams; each closes once its streams are done. */
  closeIdle(): void;
  /** Closes every HTTP/2 connection now. */
  closeAll(): void;
}

interface ConnectionGuard {
  windowStartedAt: number;
  resets: number;
  controlFrames: number;
  openStreams: number;
  closing: boolean;
}

const { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_NO_ERROR, NGHTTP2_CANCEL } = constants;
const REMOTE_OPEN = new Set([
  constants.NGHTTP2_STREAM_STATE_IDLE,
  constants.NGHTTP2_STREAM_STATE_OPEN,
  constants.NGHTTP2_STREAM_STATE_HALF_CLOSED_LOCAL,
]);

/**
 * Serves connections of `server` that negotiate `h2` with `handler`,
 * under the limits of `settings`. Call before the server listens, with the
 * listener's ALPN list including `h2`. `requestTimeoutMs` is the HTTP/1.1
 * `request_timeout`, applied to each stream's request.
 */
export function attachHttp2(
  server: HttpsServer,
  handler: RequestListener,
  settings: Http2Settings,
  logger: Logger,
  options: { requestTimeoutMs?: number | undefined } = {},
): Http2Attachment {
  const h2 = createSecureServer({
    settings: {
      maxConcurrentStreams: settings.maxConcurrentStreams,
      maxHeaderListSize: settings.maxHeaderListSize,
      enablePush: false,
      enableConnectProtocol: false,
    },
    maxSessionMemory: settings.maxSessionMemoryMb,
    maxSessionInvalidFrames: MAX_INVALID_FRAMES,
    maxSessionRejectedStreams: MAX_REJECTED_STREAMS,
    maxSettings: MAX_SETTINGS_ENTRIES,
    maxHeaderListPairs: MAX_HEADER_PAIRS,
  });
  const sessions = new Map<Http2Session, ConnectionGuard>();

  const limited = (session: Http2Session, kind: Http2LimitKind, message: string) => {
    const guard = sessions.get(session);
    if (guard === undefined || guard.closing) return;
    guard.closing = true;
    http2Stats.limited[kind]++;
    logger.warn({ kind, remoteAddress: session.socket?.remoteAddress }, message);
    // GOAWAY first (destroy() alone sends NO_ERROR), and the socket closed a turn later: called
    // from inside nghttp2's frame processing, an immediate destroy() would replace the GOAWAY.
    // Meanwhile nghttp2 opens no stream the GOAWAY did not cover.
    session.goaway(NGHTTP2_ENHANCE_YOUR_CALM);
    setImmediate(() => session.destroy());
  };
  /** Counts one event in the connection's current one-second window; true when past `max`. */
  const count = (guard: ConnectionGuard, field: 'resets' | 'controlFrames', max: number): boolean => {
    const now = performance.now();
    if (now - guard.windowStartedAt >= 1000) {
      guard.windowStartedAt = now;
      guard.resets = 0;
      guard.controlFrames = 0;
    }
    guard[field]++;
    return guard[field] > max;
  };

  h2.on('session', (session: Http2Session) => {
    http2Stats.connections++;
    const guard: ConnectionGuard = {
      windowStartedAt: performance.now(),
      resets: 0,
      // The client's first SETTINGS is part of its preface, not a flood.
      controlFrames: -1,
      openStreams: 0,
      closing: false,
    };
    sessions.set(session, guard);
    session.on('close', () => sessions.delete(session));
    session.on('error', (err: NodeJS.ErrnoException) => {
      // nghttp2's own refusals (ERR_HTTP2_*); a client that drops its socket (ECONNRESET) is not one.
      if (err.code?.startsWith('ERR_HTTP2') === true) http2Stats.limited.session_error++;
      logger.debug(
        { code: err.code, remoteAddress: session.socket?.remoteAddress },
        'HTTP/2 connection error',
      );
    });
    const control = () => {
      if (count(guard, 'controlFrames', settings.maxControlFramesPerSecond)) {
        limited(
          session,
          'control_frame_flood',
          'HTTP/2 connection closed: too many PING/SETTINGS frames (listen.tls.http2.max_control_frames_per_second)',
        );
      }
    };
    session.on('ping', control);
    session.on('remoteSettings', control);
    session.setTimeout(settings.idleTimeoutMs, () => {
      if (guard.openStreams > 0 || session.closed) return;
      http2Stats.limited.idle_timeout++;
      session.close();
    });
  });

  h2.on('stream', (stream: ServerHttp2Stream) => {
    http2Stats.streams++;
    const session = stream.session;
    const guard = session === undefined ? undefined : sessions.get(session);
    if (guard !== undefined) guard.openStreams++;
    let requestTimer: NodeJS.Timeout | undefined;
    stream.once('finish', () => {
      // RFC 9113 §8.1: the response is complete; a request body still arriving is not wanted.
      if (!stream.closed && REMOTE_OPEN.has(stream.state.state ?? -1)) stream.close(NGHTTP2_NO_ERROR);
    });
    stream.once('close', () => {
      if (requestTimer !== undefined) clearTimeout(requestTimer);
      if (guard === undefined || session === undefined) return;
      guard.openStreams--;
      // `aborted`: the stream closed before its response was complete (a reset by the client, or by
      // nghttp2 or a timeout here because of what the client did).
      if (!stream.aborted || stream.rstCode === NGHTTP2_NO_ERROR) return;
      if (count(guard, 'resets', settings.maxResetsPerSecond)) {
        limited(
          session,
          'rapid_reset',
          'HTTP/2 connection closed: too many streams reset (rapid reset, listen.tls.http2.max_resets_per_second)',
        );
      }
    });
    stream.setTimeout(settings.streamIdleTimeoutMs, () => {
      if (stream.closed) return;
      http2Stats.limited.stream_idle_timeout++;
      stream.close(NGHTTP2_CANCEL);
    });
    const requestTimeoutMs = options.requestTimeoutMs;
    if (requestTimeoutMs !== undefined && requestTimeoutMs > 0 && !stream.endAfterHeaders) {
      requestTimer = setTimeout(() => {
        requestTimer = undefined;
        if (stream.closed || !REMOTE_OPEN.has(stream.state.state ?? -1)) return;
        http2Stats.limited.request_timeout++;
        stream.close(NGHTTP2_CANCEL);
      }, requestTimeoutMs);
      requestTimer.unref();
    }
  });

  // The compatibility API: the same (req, res) the HTTP/1.1 server gives. The request and
  // response objects duck-type IncomingMessage and ServerResponse for everything the
  // gateway reads (method, url, rawHeaders, socket, writeHead with a flat list, write, end).
  const serve = handler as unknown as (req: Http2ServerRequest, res: Http2ServerResponse) => void;
  h2.on('request', serve);
  h2.on('checkContinue', serve);
  // CONNECT (a tunnel) is not something an API gateway offers; Node answers it without a
  // listener with a bare 405, this gives the same problem+json as every other refusal.
  h2.on('connect', (_req: Http2ServerRequest, res: Http2ServerResponse) => {
    sendProblem(
      res as unknown as ServerResponse,
      gatewayError('methodNotAllowed', { internal: 'CONNECT over HTTP/2' }),
      undefined,
    );
  });
  h2.on('sessionError', () => {});

  // Hand each TLS connection to the protocol it negotiated. The HTTP/1.1 listener that
  // https.Server installed is kept and called as it was.
  const http1 = server.listeners('secureConnection') as ((socket: TLSSocket) => void)[];
  server.removeAllListeners('secureConnection');
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') h2.emit('secureConnection', socket);
    else for (const listener of http1) listener.call(server, socket);
  });

  return {
    connections: () => sessions.size,
    closeIdle() {
      for (const session of sessions.keys()) if (!session.closed) session.close();
    },
    closeAll() {
      for (const session of sessions.keys()) session.destroy();
    },
  };
}

/** Whether a request arrived over HTTP/2. */
export function isHttp2(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 2;
}
