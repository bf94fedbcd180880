/**
 * The known HTTP/2 attacks against the TLS listener, each from raw frames
 * (src/http2/test-support/frames.ts): the attacking connection is closed
 * (GOAWAY read back, then the socket closes) or its stream reset, the
 * limit is counted and logged, and another client is served afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_HTTP2, type RunningListener } from '../tls/test-support/clients.js';
import type { PemFiles, TempPki } from '../tls/test-support/pki.js';
import { http2Stats } from './stats.js';
import { h2Request, openSession } from './test-support/client.js';
import {
  connectRaw,
  ERROR,
  FLAG,
  FRAME,
  frame,
  getFields,
  headerBlock,
  ping,
  rstStream,
  settings,
  statusOf,
  withRawConnection,
} from './test-support/frames.js';
import { serverPki, startServerListener } from './test-support/servers.js';

const LIMITS = {
  ...DEFAULT_HTTP2,
  maxResetsPerSecond: 10,
  maxControlFramesPerSecond: 10,
  maxConcurrentStreams: 4,
  maxHeaderListSize: 4096,
  streamIdleTimeoutMs: 400,
  idleTimeoutMs: 1500,
};

describe('HTTP/2 attacks against the TLS listener', () => {
  let pki: TempPki;
  let ca: PemFiles;
  let running: RunningListener;

  before(async () => {
    let server: PemFiles;
    ({ pki, ca, server } = await serverPki('ca', { ip: true }));
    running = await startServerListener(
      server,
      (req, res) => {
        req.resume();
        if (req.url === '/large') {
          // More than the default 64 KiB window: a client that never opens it stalls the stream.
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.end(Buffer.alloc(256 * 1024, 1));
          return;
        }
        if (req.url === '/trickle') {
          req.on('end', () => res.end('ok'));
          return;
        }
        // Slow enough that a stream reset right after its HEADERS is reset before its answer.
        const timer = setTimeout(() => res.end('ok'), req.url === '/slow' ? 300 : 0);
        res.on('close', () => clearTimeout(timer));
      },
      { http2: LIMITS },
      { http: { keepAliveTimeout: 10_000, requestTimeout: 2000 } },
    );
  });

  after(async () => {
    await running.close();
    pki.cleanup();
  });

  /** Another client, on its own connection, is still answered. */
  async function othersServed(): Promise<void> {
    const session = await openSession(running.port, ca.cert);
    try {
      const reply = await h2Request(session, '/other');
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'ok');
    } finally {
      session.close();
    }
  }

  const logged = (kind: string) => running.lines.filter((l) => l.kind === kind);

  it('closes a connection that resets streams faster than max_resets_per_second (rapid reset), with GOAWAY ENHANCE_YOUR_CALM', async () => {
    const before = http2Stats.limited.rapid_reset;
    const conn = await connectRaw(running.port);
    const burst: Buffer[] = [];
    for (let i = 0, id = 1; i < 200; i++, id += 2) {
      burst.push(
        frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, headerBlock(getFields('/slow'))),
      );
      burst.push(rstStream(id, ERROR.CANCEL));
    }
    conn.send(...burst);
    await conn.closed();
    assert.equal(conn.goawayCode(), ERROR.ENHANCE_YOUR_CALM);
    assert.equal(http2Stats.limited.rapid_reset, before + 1);
    const line = logged('rapid_reset').at(-1);
    assert.ok(line, 'the limit is logged');
    assert.equal(line.remoteAddress, '127.0.0.1');
    assert.doesNotMatch(JSON.stringify(line), /slow|localhost/, 'nothing the client sent is logged');
    await othersServed();
  });

  it('lets a client reset a few streams without closing its connection', async () => {
    await withRawConnection(running.port, async (conn) => {
      for (let id = 1; id <= 9; id += 2)
        conn.send(
          frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, headerBlock(getFields('/slow'))),
          rstStream(id),
        );
      conn.request(11, getFields('/after'));
      const head = await conn.waitFor((f) => f.stream === 11 && f.type === FRAME.HEADERS);
      assert.equal(statusOf(head), 200);
      assert.equal(conn.goawayCode(), undefined);
    });
  });

  it('closes a connection that floods PING frames, with GOAWAY ENHANCE_YOUR_CALM', async () => {
    const before = http2Stats.limited.control_frame_flood;
    const conn = await connectRaw(running.port);
    conn.send(...Array.from({ length: 100 }, (_, i) => ping(i)));
    await conn.closed();
    assert.equal(conn.goawayCode(), ERROR.ENHANCE_YOUR_CALM);
    assert.equal(http2Stats.limited.control_frame_flood, before + 1);
    assert.ok(logged('control_frame_flood').length >= 1);
    await othersServed();
  });

  it('closes a connection that floods SETTINGS frames, with GOAWAY ENHANCE_YOUR_CALM', async () => {
    const before = http2Stats.limited.control_frame_flood;
    const conn = await connectRaw(running.port);
    conn.send(...Array.from({ length: 100 }, () => settings([[0x3, 100]])));
    await conn.closed();
    assert.equal(conn.goawayCode(), ERROR.ENHANCE_YOUR_CALM);
    assert.equal(http2Stats.limited.control_frame_flood, before + 1);
    await othersServed();
  });

  it('closes a connection that floods CONTINUATION frames, never answering the endless header block', async () => {
    const before = http2Stats.limited.session_error;
    const conn = await connectRaw(running.port);
    conn.send(frame(FRAME.HEADERS, FLAG.END_STREAM, 1, headerBlock(getFields('/continuation'))));
    for (let i = 0; i < 500 && !conn.socket.destroyed; i++) {
      conn.send(frame(FRAME.CONTINUATION, 0, 1, headerBlock([[`x-pad-${i}`, 'a'.repeat(16)]])));
    }
    await conn.closed();
    assert.ok(conn.goawayCode() !== undefined, 'a GOAWAY was read back');
    assert.equal(
      conn.frames.some((f) => f.stream === 1 && f.type === FRAME.HEADERS),
      false,
      'the stream was never answered',
    );
    assert.ok(http2Stats.limited.session_error > before, 'counted as a session error');
    await othersServed();
  });

  it('closes a connection that sends endless empty CONTINUATION frames (no header growth to limit)', async () => {
    const conn = await connectRaw(running.port);
    conn.send(frame(FRAME.HEADERS, FLAG.END_STREAM, 1, headerBlock(getFields('/continuation'))));
    for (let i = 0; i < 500 && !conn.socket.destroyed; i++) conn.send(frame(FRAME.CONTINUATION, 0, 1));
    await conn.closed();
    // nghttp2 answers PROTOCOL_ERROR, or INTERNAL_ERROR when the flood arrives in one read.
    assert.ok(
      [ERROR.PROTOCOL_ERROR, 0x2].includes(conn.goawayCode() as number),
      `GOAWAY ${conn.goawayCode()}`,
    );
    assert.equal(
      conn.frames.some((f) => f.stream === 1 && f.type === FRAME.HEADERS),
      false,
    );
    await othersServed();
  });

  it('resets a stream whose header block is larger than max_header_list_size, and serves the next one', async () => {
    await withRawConnection(running.port, async (conn) => {
      // The limit holds once the client has acknowledged the server's SETTINGS (before, Node's 64 KiB cap does).
      await conn.waitFor((f) => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) !== 0);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const big = headerBlock(getFields('/big', 'localhost', [['x-big', 'a'.repeat(8000)]]));
      conn.send(frame(FRAME.HEADERS, FLAG.END_STREAM, 1, big.subarray(0, 4000)));
      conn.send(frame(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, big.subarray(4000)));
      const reset = await conn.waitFor(
        (f) => f.stream === 1 && (f.type === FRAME.RST_STREAM || f.type === FRAME.HEADERS),
      );
      assert.equal(reset.type, FRAME.RST_STREAM);
      assert.equal(reset.payload.readUInt32BE(0), ERROR.ENHANCE_YOUR_CALM);
      conn.request(3, getFields('/after'));
      const head = await conn.waitFor((f) => f.stream === 3 && f.type === FRAME.HEADERS);
      assert.equal(statusOf(head), 200);
    });
  });

  it('refuses streams past max_concurrent_streams with REFUSED_STREAM and answers the others', async () => {
    await withRawConnection(running.port, async (conn) => {
      // Sent before the client acknowledged the server's SETTINGS: nghttp2 refuses the excess streams.
      const ids = [1, 3, 5, 7, 9, 11, 13, 15];
      conn.send(
        ...ids.map((id) =>
          frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, headerBlock(getFields('/slow'))),
        ),
      );
      const answers = await Promise.all(
        ids.map((id) =>
          conn.waitFor((f) => f.stream === id && (f.type === FRAME.RST_STREAM || f.type === FRAME.HEADERS)),
        ),
      );
      const refused = answers.filter(
        (f) => f.type === FRAME.RST_STREAM && f.payload.readUInt32BE(0) === ERROR.REFUSED_STREAM,
      );
      const served = answers.filter((f) => f.type === FRAME.HEADERS && statusOf(f) === 200);
      assert.equal(served.length, LIMITS.maxConcurrentStreams);
      assert.equal(refused.length, ids.length - LIMITS.maxConcurrentStreams);
    });
  });

  it('closes a connection that opens more streams than the max_concurrent_streams it acknowledged', async () => {
    const conn = await connectRaw(running.port);
    await conn.waitFor((f) => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) !== 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const ids = [1, 3, 5, 7, 9, 11, 13, 15];
    conn.send(
      ...ids.map((id) =>
        frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, headerBlock(getFields('/slow'))),
      ),
    );
    await conn.closed();
    const answered = conn.frames.filter((f) => f.type === FRAME.HEADERS && f.stream > 0);
    assert.deepEqual(answered, [], 'no stream of the connection was answered');
    await othersServed();
  });

  it('resets a stream whose client never opens its flow-control window, after stream_idle_timeout', async () => {
    const before = http2Stats.limited.stream_idle_timeout;
    // SETTINGS_INITIAL_WINDOW_SIZE 0: the server may send no DATA on any stream until a WINDOW_UPDATE that never comes.
    const conn = await connectRaw(running.port, { settings: settings([[0x4, 0]]) });
    try {
      conn.request(1, getFields('/large'));
      const reset = await conn.waitFor((f) => f.stream === 1 && f.type === FRAME.RST_STREAM);
      assert.equal(reset.payload.readUInt32BE(0), ERROR.CANCEL);
      assert.equal(
        conn.frames.some((f) => f.stream === 1 && f.type === FRAME.DATA && f.payload.length > 0),
        false,
        'no body byte was sent into the closed window',
      );
      assert.equal(http2Stats.limited.stream_idle_timeout, before + 1);
    } finally {
      conn.destroy();
    }
    await othersServed();
  });

  it('resets a stream whose body trickles in for longer than the request timeout', async () => {
    const before = http2Stats.limited.request_timeout;
    const conn = await connectRaw(running.port);
    let timer: NodeJS.Timeout | undefined;
    try {
      conn.request(
        1,
        [
          [':method', 'POST'],
          [':scheme', 'https'],
          [':authority', 'localhost'],
          [':path', '/trickle'],
        ],
        {
          endStream: false,
        },
      );
      // One byte every 100 ms: never idle long enough for stream_idle_timeout.
      timer = setInterval(() => conn.send(frame(FRAME.DATA, 0, 1, Buffer.from('a'))), 100);
      const reset = await conn.waitFor((f) => f.stream === 1 && f.type === FRAME.RST_STREAM, 8000);
      assert.equal(reset.payload.readUInt32BE(0), ERROR.CANCEL);
      assert.equal(http2Stats.limited.request_timeout, before + 1);
    } finally {
      clearInterval(timer);
      conn.destroy();
    }
  });

  it('closes an idle connection after idle_timeout with GOAWAY NO_ERROR', async () => {
    const conn = await connectRaw(running.port);
    conn.request(1, getFields('/once'));
    await conn.waitFor((f) => f.stream === 1 && f.type === FRAME.HEADERS);
    await conn.closed(8000);
    assert.equal(conn.goawayCode(), ERROR.NO_ERROR);
  });
});
