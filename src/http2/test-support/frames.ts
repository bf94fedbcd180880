/**
 * A small HTTP/2 frame writer and reader over `node:tls` (ALPN h2), for the
 * tests that must send what no well-behaved client sends: malformed header
 * blocks, CONTINUATION, RST_STREAM, PING and SETTINGS floods. Hand-written
 * because Node's `http2` client refuses to send these (it validates and
 * lowercases headers and paces its own frames), and a dependency for a few
 * dozen lines of framing is not worth it.
 *
 * HPACK: header blocks are written as literals without indexing and without
 * Huffman coding (RFC 7541 §6.2.2), which every decoder accepts. Responses
 * are only decoded as far as a `:status` from the static table (indexed
 * field, RFC 7541 Appendix A, entries 8–14), which is what nghttp2 sends for
 * the common statuses.
 */
import { connect, type TLSSocket } from 'node:tls';

export const FRAME = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

/** HTTP/2 error codes (RFC 9113 §7). */
export const ERROR = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  FLOW_CONTROL_ERROR: 0x3,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  ENHANCE_YOUR_CALM: 0xb,
} as const;

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** One frame: 9-byte header (length, type, flags, stream id) and the payload. */
export function frame(
  type: number,
  flags: number,
  stream: number,
  payload: Buffer = Buffer.alloc(0),
): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1); the prefix's high bits are left 0. */
function hpackInt(value: number, prefixBits: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([value]);
  const out = [max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  return Buffer.concat([hpackInt(bytes.length, 7), bytes]);
}

/** A header block of literals without indexing, new names, no Huffman (RFC 7541 §6.2.2). */
export function headerBlock(fields: readonly (readonly [string, string])[]): Buffer {
  return Buffer.concat(
    fields.flatMap(([name, value]) => [Buffer.from([0x00]), hpackString(name), hpackString(value)]),
  );
}

/** SETTINGS payload from (id, value) pairs. */
export function settings(pairs: readonly (readonly [number, number])[] = []): Buffer {
  const out = Buffer.alloc(pairs.length * 6);
  pairs.forEach(([id, value], i) => {
    out.writeUInt16BE(id, i * 6);
    out.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FRAME.SETTINGS, 0, 0, out);
}

export function rstStream(stream: number, code: number = ERROR.CANCEL): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, stream, payload);
}

export function ping(data = 0): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(data >>> 0, 4);
  return frame(FRAME.PING, 0, 0, payload);
}

/** The request headers of a GET to `path` on `authority`, as a list of fields. */
export function getFields(
  path: string,
  authority = 'localhost',
  extra: readonly (readonly [string, string])[] = [],
) {
  return [[':method', 'GET'], [':scheme', 'https'], [':authority', authority], [':path', path], ...extra] as [
    string,
    string,
  ][];
}

/** What a raw connection has read so far, and ways to wait for it. */
export interface RawConnection {
  readonly socket: TLSSocket;
  readonly frames: Frame[];
  /** Writes bytes; ignores a socket the server has already closed. */
  send(...chunks: Buffer[]): void;
  /** Sends HEADERS (END_HEADERS; END_STREAM unless `body` follows). */
  request(
    stream: number,
    fields: readonly (readonly [string, string])[],
    options?: { endStream?: boolean },
  ): void;
  /** Resolves with the first frame `match` accepts (already read or later); rejects after `timeoutMs`. */
  waitFor(match: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /** Resolves once the server has closed the connection. */
  closed(timeoutMs?: number): Promise<void>;
  /** The GOAWAY's error code, when one was read. */
  goawayCode(): number | undefined;
  destroy(): void;
}

/** The `:status` of a response HEADERS frame, when it is an indexed static-table status; undefined otherwise. */
export function statusOf(f: Frame): number | undefined {
  const first = f.payload[0];
  const STATIC: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };
  if (first === undefined || (first & 0x80) === 0) return undefined;
  return STATIC[first & 0x7f];
}

/** Runs `use` on a new raw connection to `port` (see connectRaw), destroyed afterwards whatever happens. */
export async function withRawConnection<T>(
  port: number,
  use: (conn: RawConnection) => Promise<T>,
): Promise<T> {
  const conn = await connectRaw(port);
  try {
    return await use(conn);
  } finally {
    conn.destroy();
  }
}

/** Connects with ALPN h2 only, sends the preface and an empty SETTINGS, and starts reading frames. */
export function connectRaw(port: number, options: { settings?: Buffer } = {}): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      ALPNProtocols: ['h2'],
      rejectUnauthorized: false,
      servername: 'localhost',
    });
    const frames: Frame[] = [];
    const waiters: { match: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
    let buffered = Buffer.alloc(0);
    let isClosed = false;
    const closeWaiters: (() => void)[] = [];
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3);
        if (buffered.length < 9 + length) break;
        const f: Frame = {
          type: buffered.readUInt8(3),
          flags: buffered.readUInt8(4),
          stream: buffered.readUInt32BE(5) & 0x7fffffff,
          payload: buffered.subarray(9, 9 + length),
        };
        buffered = buffered.subarray(9 + length);
        frames.push(f);
        // Acknowledge the server's SETTINGS, as every client must.
        if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0 && !socket.destroyed) {
          socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
        }
        for (const w of [...waiters]) {
          if (w.match(f)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(f);
          }
        }
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      isClosed = true;
      for (const c of closeWaiters.splice(0)) c();
    });
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== 'h2') {
        socket.destroy();
        reject(new Error(`ALPN negotiated ${String(socket.alpnProtocol)}, not h2`));
        return;
      }
      const conn: RawConnection = {
        socket,
        frames,
        send(...chunks) {
          if (!socket.destroyed && socket.writable) socket.write(Buffer.concat(chunks));
        },
        request(stream, fields, opts = {}) {
          const flags = FLAG.END_HEADERS | (opts.endStream === false ? 0 : FLAG.END_STREAM);
          conn.send(frame(FRAME.HEADERS, flags, stream, headerBlock(fields)));
        },
        waitFor(match, timeoutMs = 5000) {
          const seen = frames.find(match);
          if (seen) return Promise.resolve(seen);
          return new Promise((res, rej) => {
            const timer = setTimeout(() => rej(new Error('no matching frame in time')), timeoutMs);
            waiters.push({
              match,
              resolve: (f) => {
                clearTimeout(timer);
                res(f);
              },
            });
          });
        },
        closed(timeoutMs = 5000) {
          if (isClosed) return Promise.resolve();
          return new Promise((res, rej) => {
            const timer = setTimeout(() => rej(new Error('the connection is still open')), timeoutMs);
            closeWaiters.push(() => {
              clearTimeout(timer);
              res();
            });
          });
        },
        goawayCode() {
          const g = frames.find((f) => f.type === FRAME.GOAWAY);
          return g === undefined ? undefined : g.payload.readUInt32BE(4);
        },
        destroy() {
          socket.destroy();
        },
      };
      conn.send(PREFACE, options.settings ?? settings());
      resolve(conn);
    });
    socket.once('error', reject);
  });
}
