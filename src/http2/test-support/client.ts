/** Node's own `http2` client, for the tests: one request on a session, the answer read whole. */
import {
  type ClientHttp2Session,
  connect,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';

export interface H2Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Opens an HTTP/2 session to 127.0.0.1:`port` (ALPN h2), trusting `ca`. */
export function openSession(port: number, ca: string | Buffer): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect(`https://localhost:${port}`, { ca, host: '127.0.0.1', servername: 'localhost' });
    session.once('connect', () => {
      session.off('error', reject);
      session.on('error', () => {});
      resolve(session);
    });
    session.once('error', reject);
  });
}

/** Sends one request on `session` and reads the answer whole. */
export function h2Request(
  session: ClientHttp2Session,
  path: string,
  options: { method?: string; headers?: OutgoingHttpHeaders; body?: string | Buffer } = {},
): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': options.method ?? 'GET',
      ':path': path,
      ...options.headers,
    });
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      headers = h;
      status = Number(h[':status']);
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ status, headers, body: Buffer.concat(chunks).toString('utf8') }));
    stream.on('error', reject);
    stream.on('close', () => {
      if (status === 0) reject(new Error(`stream closed with code ${stream.rstCode} before a response`));
    });
    if (options.body === undefined) stream.end();
    else stream.end(options.body);
  });
}
