/** Test fixtures of the issuer: fresh stores on each backend, a real HTTP server, captured logs. */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../log.js';
import { openPostgresStore, openSqliteStore } from '../../store/index.js';
import { migrations } from '../../store/migrations/index.js';
import type { Store } from '../../store/types.js';
import { postgresSkipMessage, requirePostgres } from '../../test-support/postgres.js';
import type { IssuerRoute } from '../index.js';

/** A fresh, migrated database that several store instances ("gateway instances") can open. */
export interface Fixture {
  /** The data folder (secrets live there). */
  dataDir: string;
  /** The first store, migrated. */
  store: Store;
  /** Another store on the same database, as a second instance would open. */
  openAnother(): Promise<Store>;
  cleanup(): Promise<void>;
}

export interface Backend {
  name: string;
  /** The skip reason, or false. */
  skip: string | false;
  fresh(): Promise<Fixture>;
}

const pgAvailable = (await requirePostgres()) !== undefined;

/** SQLite in a temp folder, and the test PostgreSQL in a private schema (skipped when absent, unless CI=true). */
export const backends: Backend[] = [
  {
    name: 'SQLite',
    skip: false,
    async fresh() {
      const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-issuer-'));
      const stores: Store[] = [];
      const open = async () => {
        const store = openSqliteStore(join(dataDir, 'portcullis.db'), migrations);
        stores.push(store);
        await store.migrate();
        return store;
      };
      const store = await open();
      return {
        dataDir,
        store,
        openAnother: open,
        async cleanup() {
          for (const s of stores) await s.close();
          await rm(dataDir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'PostgreSQL',
    skip: pgAvailable ? false : postgresSkipMessage(),
    async fresh() {
      const target = await requirePostgres();
      if (!target) throw new Error(postgresSkipMessage());
      const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-issuer-'));
      const stores: Store[] = [];
      const open = async () => {
        const store = openPostgresStore(target.url, migrations, { schema: target.schema, poolSize: 4 });
        stores.push(store);
        await store.migrate();
        return store;
      };
      const store = await open();
      return {
        dataDir,
        store,
        openAnother: open,
        async cleanup() {
          for (const s of stores) await s.close();
          await target.drop();
          await rm(dataDir, { recursive: true, force: true });
        },
      };
    },
  },
];

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
