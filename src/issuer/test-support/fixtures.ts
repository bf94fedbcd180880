import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../log.js';
import { migrations } from '../../store/migrations/index.js';
import { storeBackends } from '../../test-support/stores.js';
import type { IssuerRoute } from '../index.js';

export type { StoreBackend as Backend, StoreFixture as Fixture } from '../../test-support/stores.js';

/** SQLite in a temp folder, and the test PostgreSQL in a private schema (skipped when absent, unless CI=true). */
export const backends = storeBackends(migrations, 'portcullis-issuer-');

/** A logger whose lines are kept, to check what was (and was not) logged. */
export function captureLogger(): { logger: Logger; lines: string[]; text(): string } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(
        ...chunk
          .toString()
          .split('\n')
          .filter((l) => l !== ''),
      );
      done();
    },
  });
  return { logger: createLogger({ level: 'debug' }, sink), lines, text: () => lines.join('\n') };
}

/**
 * A real HTTP server on an ephemeral loopback port that dispatches to the
 * issuer's routes as the gateway would (exact method and path), 404 otherwise.
 * Listening first gives the URL the issuer needs; `mount` attaches the routes.
 */
export async function startServer(): Promise<{
  url: string;
  mount(routes: readonly IssuerRoute[]): void;
  close(): Promise<void>;
}> {
  let routes: readonly IssuerRoute[] = [];
  let n = 0;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const route = routes.find((r) => r.path === path && r.method === method);
    if (!route) {
      res.writeHead(404).end();
      return;
    }
    route
      .handle(req, res, { clientIp: req.socket.remoteAddress ?? '', requestId: `req_${++n}` })
      .catch(() => {
        res.destroy();
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    mount(next) {
      routes = next;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
