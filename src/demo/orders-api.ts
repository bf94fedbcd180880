/**
 * The demo upstream: a small in-memory "orders" API that the quick start puts
 * behind the gateway, described by `demo/openapi.yaml`.
 *
 * It is deliberately a naive upstream, like many real ones: it does no
 * authentication, no ownership or tenant checks, ignores unknown body fields,
 * and returns fields that no client should see (`password_hash` on users;
 * the write-only `payment_token` on orders), fields only admins should see
 * (`internal_notes` on users) and takes fields only admins should set (an
 * order's `priority`).
 * Each of those is something the gateway must handle.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const JSON_TYPE = 'application/json; charset=utf-8';
const MAX_BODY_BYTES = 1024 * 1024;
const ORDER_STATUSES = ['pending', 'paid', 'shipped', 'cancelled'] as const;

type OrderStatus = (typeof ORDER_STATUSES)[number];

interface User {
  id: string;
  username: string;
  display_name: string;
  email: string;
  role: 'user' | 'admin';
  tenant: string;
  password_hash: string;
  internal_notes: string;
}

interface NewOrder {
  item: string;
  qty: number;
  note?: string;
  /** Write-only in the API description; this naive upstream stores it and returns it with the order. */
  payment_token?: string;
  /** Only admins may set it (`x-portcullis-write` in the API description); this upstream takes it from anyone. */
  priority?: 'normal' | 'rush';
}

interface Order extends NewOrder {
  id: string;
  owner: string;
  tenant: string;
  status: OrderStatus;
  created_at: string;
}

const CATALOG = [
  { sku: 'widget', name: 'Widget', price_cents: 1999, currency: 'EUR', in_stock: true },
  { sku: 'gadget', name: 'Gadget', price_cents: 4950, currency: 'EUR', in_stock: true },
  { sku: 'gizmo', name: 'Gizmo', price_cents: 12000, currency: 'EUR', in_stock: false },
];

function seedUsers(): User[] {
  const user = (id: string, username: string, role: User['role'], tenant: string, notes: string): User => ({
    id,
    username,
    display_name: username.charAt(0).toUpperCase() + username.slice(1),
    email: `${username}@${tenant}.example`,
    role,
    tenant,
    // Fake scrypt-style strings: realistic enough to be recognised if they ever leak.
    password_hash: `scrypt$16384$8$1$${randomBytes(16).toString('base64')}`,
    internal_notes: notes,
  });
  return [
    user('1', 'alice', 'user', 'acme', 'VIP customer; credit limit 5000'),
    user('2', 'bob', 'user', 'globex', 'Flagged for chargeback review'),
    user('3', 'carol', 'admin', 'acme', 'Support lead; break-glass account'),
  ];
}

function seedOrders(): Order[] {
  const rows: [id: string, owner: string, tenant: string, item: string, qty: number, status: OrderStatus][] =
    [
      ['ord_1001', '1', 'acme', 'widget', 2, 'paid'],
      ['ord_1002', '1', 'acme', 'gadget', 1, 'pending'],
      ['ord_1003', '1', 'acme', 'widget', 5, 'shipped'],
      ['ord_2001', '2', 'globex', 'gizmo', 3, 'pending'],
      ['ord_2002', '2', 'globex', 'widget', 1, 'cancelled'],
      ['ord_3001', '3', 'acme', 'gadget', 10, 'paid'],
    ];
  return rows.map(([id, owner, tenant, item, qty, status], i) => {
    const created_at = new Date(Date.UTC(2024, 4, 1 + i, 10)).toISOString();
    return { id, owner, tenant, item, qty, status, created_at };
  });
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface Context {
  req: http.IncomingMessage;
  params: Record<string, string>;
  query: URLSearchParams;
  body(): Promise<string>;
}

interface Reply {
  status: number;
  body?: unknown;
}

type Handler = (ctx: Context) => Reply | Promise<Reply>;

interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
}

/** Compiles `/users/:userId/orders` into a matcher; each parameter is one whole segment. */
function route(method: string, template: string, handler: Handler): Route {
  const source = template.replace(/:(\w+)/g, '(?<$1>[^/]+)');
  return { method, pattern: new RegExp(`^${source}$`), handler };
}

function decodeParam(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new HttpError(400, 'invalid_path', 'malformed percent-encoding in path');
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit the rest is ignored; Node discards what is unread once the 413 is sent.
      if (size > MAX_BODY_BYTES) reject(new HttpError(413, 'body_too_large', 'request body too large'));
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'bad_json', 'request body is not valid JSON');
  }
}

function parseNewOrder(body: unknown): NewOrder {
  const invalid = (message: string) => new HttpError(400, 'invalid_body', message);
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw invalid('body must be an object');
  const { item, qty, note, payment_token, priority } = body as Record<string, unknown>;
  if (typeof item !== 'string' || !CATALOG.some((p) => p.sku === item)) throw invalid('unknown item');
  if (typeof qty !== 'number' || !Number.isInteger(qty) || qty < 1 || qty > 100) {
    throw invalid('qty must be an integer from 1 to 100');
  }
  if (note !== undefined && typeof note !== 'string') throw invalid('note must be a string');
  if (payment_token !== undefined && typeof payment_token !== 'string')
    throw invalid('payment_token must be a string');
  if (priority !== undefined && priority !== 'normal' && priority !== 'rush')
    throw invalid('priority must be normal or rush');
  // Unknown fields (e.g. `status`, `owner`) are silently dropped: rejecting them is the gateway's job.
  return {
    item,
    qty,
    ...(note === undefined ? {} : { note }),
    ...(payment_token === undefined ? {} : { payment_token }),
    ...(priority === undefined ? {} : { priority }),
  };
}

/** Creates the demo orders API with its own fresh in-memory data; the caller starts it with `listen`. */
export function createOrdersApi(): http.Server {
  const users = seedUsers();
  const orders = seedOrders();

  const findUser = (id: string | undefined): User => {
    const user = users.find((u) => u.id === id);
    if (!user) throw new HttpError(404, 'not_found', 'user not found');
    return user;
  };
  const findOrder = (id: string | undefined): Order => {
    const order = orders.find((o) => o.id === id);
    if (!order) throw new HttpError(404, 'not_found', 'order not found');
    return order;
  };
  const echo: Handler = async ({ req, body }) => {
    const raw = await body();
    return {
      status: 200,
      body: {
        method: req.method,
        path: req.url,
        headers: req.headers,
        subject: req.headers['x-portcullis-subject'] ?? null,
        // JSON bodies come back parsed; anything else comes back as the text received.
        body: raw === '' ? null : /\bjson\b/i.test(req.headers['content-type'] ?? '') ? parseJson(raw) : raw,
      },
    };
  };

  const routes: Route[] = [
    route('GET', '/health', () => ({ status: 200, body: { status: 'ok' } })),
    route('GET', '/public/catalog', () => ({ status: 200, body: CATALOG })),
    route('GET', '/users/:userId', ({ params }) => ({ status: 200, body: findUser(params['userId']) })),
    route('GET', '/users/:userId/orders', ({ params, query }) => {
      const user = findUser(params['userId']);
      const limitText = query.get('limit') ?? '20';
      const limit = /^\d{1,3}$/.test(limitText) ? Number(limitText) : 0;
      if (limit < 1 || limit > 100) throw new HttpError(400, 'invalid_query', 'limit must be from 1 to 100');
      const status = query.get('status');
      if (status !== null && !(ORDER_STATUSES as readonly string[]).includes(status)) {
        throw new HttpError(400, 'invalid_query', 'unknown status');
      }
      const found = orders.filter((o) => o.owner === user.id && (status === null || o.status === status));
      return { status: 200, body: found.slice(0, limit) };
    }),
    route('POST', '/users/:userId/orders', async ({ params, body }) => {
      const user = findUser(params['userId']);
      const input = parseNewOrder(parseJson(await body()));
      const order: Order = {
        id: `ord_${randomBytes(8).toString('hex')}`,
        owner: user.id,
        tenant: user.tenant,
        ...input,
        status: 'pending',
        created_at: new Date().toISOString(),
      };
      orders.push(order);
      return { status: 201, body: order };
    }),
    route('GET', '/orders/:orderId', ({ params }) => ({ status: 200, body: findOrder(params['orderId']) })),
    route('DELETE', '/orders/:orderId', ({ params }) => {
      orders.splice(orders.indexOf(findOrder(params['orderId'])), 1);
      return { status: 204 };
    }),
    route('GET', '/tenants/:tenantId/orders', ({ params }) => ({
      status: 200,
      body: orders.filter((o) => o.tenant === params['tenantId']),
    })),
    route('GET', '/admin/users', () => ({ status: 200, body: users })),
    route('GET', '/admin/stats', () => {
      const byStatus = Object.fromEntries(
        ORDER_STATUSES.map((s) => [s, orders.filter((o) => o.status === s).length]),
      );
      const tenants = new Set(users.map((u) => u.tenant)).size;
      return {
        status: 200,
        body: { users: users.length, orders: orders.length, tenants, orders_by_status: byStatus },
      };
    }),
    route('GET', '/echo', echo),
    route('POST', '/echo', echo),
  ];

  const dispatch = async (req: http.IncomingMessage): Promise<Reply> => {
    // Like most frameworks, resolves dot segments itself: a gateway that doesn't normalise can be bypassed.
    const url = new URL(req.url ?? '/', 'http://upstream.invalid');
    const candidates = routes.filter((r) => r.pattern.test(url.pathname));
    if (candidates.length === 0) throw new HttpError(404, 'no_route', 'no such route');
    // HEAD is GET without the body (Node's server drops the body of a HEAD response).
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const hit = candidates.find((r) => r.method === method);
    if (!hit) throw new HttpError(405, 'method_not_allowed', 'method not allowed');
    const groups = Object.entries(hit.pattern.exec(url.pathname)?.groups ?? {});
    const params = Object.fromEntries(groups.map(([name, value]) => [name, decodeParam(value)]));
    let bodyText: Promise<string> | undefined;
    const body = () => {
      bodyText ??= readBody(req);
      return bodyText;
    };
    return hit.handler({ req, params, query: url.searchParams, body });
  };

  return http.createServer((req, res) => {
    dispatch(req)
      .catch((err: unknown): Reply => {
        if (err instanceof HttpError)
          return { status: err.status, body: { error: err.code, message: err.message } };
        return { status: 500, body: { error: 'internal', message: 'internal error' } };
      })
      .then(({ status, body }) => {
        if (body === undefined) {
          res.writeHead(status).end();
          return;
        }
        const text = JSON.stringify(body);
        res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text) });
        res.end(text);
      })
      .catch(() => res.destroy());
  });
}

/** A started demo orders API. */
export interface RunningOrdersApi {
  server: http.Server;
  /** The port actually bound (useful when started on port 0). */
  port: number;
  /** Stops listening and closes open (including keep-alive) connections. */
  close(): Promise<void>;
}

/**
 * Starts the demo orders API on `host:port`; port 0 picks a free ephemeral port.
 *
 * @returns the server, the bound port and a `close` function.
 */
export async function startOrdersApi(port: number, host = '127.0.0.1'): Promise<RunningOrdersApi> {
  const server = createOrdersApi();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
