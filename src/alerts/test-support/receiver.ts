/** A real webhook receiver on an ephemeral loopback port, for delivery tests. */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

export interface Receiver {
  url: string;
  /** Requests answered 2xx. */
  received: Received[];
  /** Every request, whatever it was answered. */
  attempts: number;
  /** Resolves when `count` requests have been answered 2xx; rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

/**
 * Starts a receiver. `answer(attempt)` picks the status of the n-th request
 * (1-based); default 204. A status of 0 destroys the connection instead.
 */
export async function startReceiver(
  answer: (attempt: number, res: ServerResponse) => number = () => 204,
): Promise<Receiver> {
  const received: Received[] = [];
  let attempts = 0;
  let waiters: Array<() => void> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      attempts++;
      const status = answer(attempts, res);
      if (status === 0) {
        req.socket.destroy();
        return;
      }
      if (status >= 200 && status < 300) {
        received.push({
          path: req.url ?? '',
          headers: req.headers,
          body: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>,
        });
        for (const wake of waiters) wake();
      }
      res.writeHead(status);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hooks/T000/B000/s3cr3t-token`,
    received,
    get attempts() {
      return attempts;
    },
    waitFor(count, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (received.length < count) return false;
          clearTimeout(timer);
          waiters = waiters.filter((w) => w !== check);
          resolve(received);
          return true;
        };
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== check);
          reject(new Error(`the receiver got ${received.length} of ${count} deliveries in ${timeoutMs} ms`));
        }, timeoutMs);
        if (!check()) waiters.push(check);
      });
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
