/**
 * Process-wide HTTP/2 counts, exported as Prometheus counters by
 * `createMetrics` (src/metrics/index.ts): `portcullis_http2_connections_total`,
 * `portcullis_http2_streams_total` and `portcullis_http2_limited_total{kind}`.
 * A leaf module: it imports nothing, so the listener and the metrics can
 * both read it.
 */

/** What a limit stopped, as the `kind` label. */
export const HTTP2_LIMIT_KINDS = [
  /** A connection closed with GOAWAY ENHANCE_YOUR_CALM: too many streams reset before their response (CVE-2023-44487). */
  'rapid_reset',
  /** A connection closed with GOAWAY ENHANCE_YOUR_CALM: too many PING or SETTINGS frames per second. */
  'control_frame_flood',
  /**
   * A connection closed by Node/nghttp2 for a protocol or resource violation:
   * a header block past max_header_list_size or a CONTINUATION flood, too
   * many invalid frames or refused streams, max_session_memory passed.
   */
  'session_error',
  /** A stream reset because no frame went either way for stream_idle_timeout (e.g. a window never opened). */
  'stream_idle_timeout',
  /** A stream reset because its request did not arrive whole within listen.limits.request_timeout. */
  'request_timeout',
  /** A connection closed after idle_timeout without a frame and without open streams. */
  'idle_timeout',
] as const;

export type Http2LimitKind = (typeof HTTP2_LIMIT_KINDS)[number];

export const http2Stats = {
  /** Connections that negotiated h2. */
  connections: 0,
  /** Streams (requests) opened on them. */
  streams: 0,
  limited: Object.fromEntries(HTTP2_LIMIT_KINDS.map((k) => [k, 0])) as Record<Http2LimitKind, number>,
};
