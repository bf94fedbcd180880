/**
 * The web console's server side over real HTTP, without a browser: its
 * session cookie, CSRF, logout, security headers, the time series, and the
 * live stream's bound on a slow client.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { buildConsole, CONSOLE_OUT } from '../../../scripts/build-console.js';
import type { RequestEvent } from '../../events/types.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../../test-support/gateway.js';
import { type Reply, send } from '../../test-support/http.js';
import { captureLogger } from '../../test-support/log.js';
import { runAdminCommand } from '../tokens/cli.js';
import type { AdminRole } from '../tokens/store.js';
import { LiveHub } from './live.js';
import { CONSOLE_CSP } from './static.js';

const PEPPER = 'console-http-test-pepper-0123456789';

async function cliToken(gw: TestGateway, role: AdminRole): Promise<string> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runAdminCommand(['tokens', 'create', '--role', role, '--name', `${role} console`], {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    env: { ...process.env, PORTCULLIS_CONFIG: gw.configFile, PORTCULLIS_DATA: gw.dataDir },
  });
  assert.equal(code, 0, err.join('\n'));
  return out.join('').trim();
}

function assertProblem(reply: Reply, status: number, code: string): void {
  assert.equal(reply.status, status, reply.body);
  assert.match(String(reply.headers['content-type']), /^application\/problem\+json/);
  assert.equal(reply.json<{ code: string }>().code, code);
}

interface Login {
  cookie: string;
  csrf: string;
  reply: Reply;
}

async function login(gw: TestGateway, token: string): Promise<Login> {
  const reply = await send(gw.adminUrl, '/admin/session', {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(reply.status, 201, reply.body);
  const setCookie = String(reply.headers['set-cookie']?.[0] ?? '');
  return {
    cookie: setCookie.split(';')[0]!,
    csrf: reply.json<{ csrfToken: string }>().csrfToken,
    reply,
  };
}

const withCookie = (
  gw: TestGateway,
  s: Login,
  method: string,
  path: string,
  body?: unknown,
  extra: Record<string, string> = {},
) =>
  send(gw.adminUrl, path, {
    method,
    headers: {
      cookie: s.cookie,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...extra,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

describe('the web console’s server side', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  const tokens = {} as Record<AdminRole, string>;

  before(async () => {
    if (!existsSync(`${CONSOLE_OUT}/index.html`)) await buildConsole();
    process.env.PORTCULLIS_TEST_CONSOLE_PEPPER = PEPPER;
    upstream = await startUpstream();
    gw = await startTestGateway({
      listen: { trusted_proxies: ['127.0.0.1'] },
      auth: {
        api_keys: { pepper: '${env:PORTCULLIS_TEST_CONSOLE_PEPPER}' },
        brute_force: { max_failures_per_ip: 5 },
      },
      blocks: { refresh: '1h' },
      upstreams: { app: { url: upstream.url } },
      routes: [
        {
          name: 'orders',
          path: '/orders',
          methods: ['GET'],
          upstream: 'app',
          authorize: 'any-authenticated',
        },
        { name: 'public', path: '/public', methods: ['GET'], upstream: 'app', auth: 'none' },
      ],
    });
    tokens.admin = await cliToken(gw, 'admin');
    tokens.viewer = await cliToken(gw, 'viewer');
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  describe('logging in', () => {
    it('sets an HttpOnly, Secure, SameSite=Strict session cookie and answers a CSRF token, never the admin token', async () => {
      const s = await login(gw, tokens.admin);
      const setCookie = String(s.reply.headers['set-cookie']?.[0]);
      assert.match(setCookie, /^__Host-pcl_session=[A-Za-z0-9_-]{43};/);
      for (const attribute of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/']) {
        assert.ok(setCookie.split('; ').includes(attribute), `${attribute} in ${setCookie}`);
      }
      assert.equal(s.reply.headers['cache-control'], 'no-store');
      const body = s.reply.json<Record<string, unknown>>();
      assert.equal(body.role, 'admin');
      assert.match(String(body.csrfToken), /^[A-Za-z0-9_-]{43}$/);
      assert.ok(!s.reply.body.includes(tokens.admin), 'the admin token came back');
      assert.ok(!s.reply.body.includes(s.cookie.split('=')[1]!), 'the session id is in the body');
      const who = await withCookie(gw, s, 'GET', '/admin/whoami');
      assert.equal(who.status, 200, who.body);
      assert.equal(who.json().role, 'admin');
    });

    it('answers 401 to a wrong admin token and audits the failed login with the client, not the token', async () => {
      const wrong = `${tokens.admin.slice(0, -6)}AAAAAA`;
      const reply = await send(gw.adminUrl, '/admin/session', {
        method: 'POST',
        headers: { authorization: `Bearer ${wrong}` },
      });
      assertProblem(reply, 401, 'auth.invalid_credentials');
      assert.equal(reply.headers['set-cookie'], undefined);
      await gw.running.audit.flush();
      const events = await gw.running.audit.repository.search({ action: 'admin.login_failed' }, 10);
      assert.equal(events.length, 1);
      const record = JSON.stringify(events[0]);
      assert.match(record, /127\.0\.0\.1/);
      assert.ok(!record.includes(wrong.slice(-30)), 'the presented secret is in the audit log');
    });

    it('audits logins with the admin token’s identity', async () => {
      await login(gw, tokens.viewer);
      await gw.running.audit.flush();
      const events = await gw.running.audit.repository.search({ action: 'admin.login' }, 10);
      assert.ok(
        events.some((e) => {
          const data = JSON.parse(String((e as { data: string }).data)) as Record<string, string>;
          return (
            data.admin_role === 'viewer' &&
            data.admin_name === 'viewer console' &&
            data.client_ip !== undefined
          );
        }),
        JSON.stringify(events),
      );
    });
  });

  describe('CSRF', () => {
    it('refuses a state-changing call made with the cookie and no CSRF token: 403 problem+json, nothing done', async () => {
      const s = await login(gw, tokens.admin);
      const reply = await withCookie(gw, s, 'POST', '/admin/blocks', {
        kind: 'ip',
        subject: '203.0.113.10',
        duration: '5m',
      });
      assertProblem(reply, 403, 'csrf.missing');
      const blocks = await withCookie(gw, s, 'GET', '/admin/blocks');
      assert.ok(!blocks.body.includes('203.0.113.10'));
    });

    it('refuses a wrong CSRF token, or another session’s, and accepts the session’s own', async () => {
      const s = await login(gw, tokens.admin);
      const other = await login(gw, tokens.admin);
      const block = { kind: 'ip', subject: '203.0.113.11', duration: '5m' };
      assertProblem(
        await withCookie(gw, s, 'POST', '/admin/blocks', block, { 'x-csrf-token': 'x'.repeat(43) }),
        403,
        'csrf.invalid',
      );
      assertProblem(
        await withCookie(gw, s, 'POST', '/admin/blocks', block, { 'x-csrf-token': other.csrf }),
        403,
        'csrf.invalid',
      );
      const ok = await withCookie(gw, s, 'POST', '/admin/blocks', block, { 'x-csrf-token': s.csrf });
      assert.equal(ok.status, 201, ok.body);
    });

    it('audits a refused CSRF token as admin.csrf_refused, once a minute per admin', async () => {
      await gw.running.audit.flush();
      const before = await gw.running.audit.repository.search({ action: 'admin.csrf_refused' }, 100);
      const s = await login(gw, tokens.viewer);
      for (let i = 0; i < 3; i++) {
        const reply = await withCookie(
          gw,
          s,
          'POST',
          '/admin/reload',
          {},
          { 'x-csrf-token': 'x'.repeat(43) },
        );
        assertProblem(reply, 403, 'csrf.invalid');
      }
      await gw.running.audit.flush();
      const after = await gw.running.audit.repository.search({ action: 'admin.csrf_refused' }, 100);
      const fresh = after.filter(
        (e) => !before.some((b) => (b as { seq: number }).seq === (e as { seq: number }).seq),
      );
      assert.equal(fresh.length, 1, JSON.stringify(after));
      const data = JSON.parse(String((fresh[0] as { data: string }).data)) as Record<string, unknown>;
      const fields = (data.detail ?? data) as Record<string, unknown>;
      assert.equal(fields.code, 'csrf.invalid');
      assert.equal(fields.operation, 'reload');
    });

    it('does not ask a bearer-token caller for a CSRF token (no cookie, no ambient credential)', async () => {
      const reply = await send(gw.adminUrl, '/admin/explain', {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.viewer}`, 'content-type': 'application/json' },
        body: JSON.stringify({ method: 'GET', target: '/public' }),
      });
      assert.equal(reply.status, 200, reply.body);
    });
  });

  describe('logging out', () => {
    it('ends the session: the cookie is cleared and no longer works, and the logout is audited', async () => {
      const s = await login(gw, tokens.admin);
      assert.equal((await withCookie(gw, s, 'GET', '/admin/whoami')).status, 200);
      assertProblem(await withCookie(gw, s, 'DELETE', '/admin/session'), 403, 'csrf.missing');
      const out = await withCookie(gw, s, 'DELETE', '/admin/session', undefined, { 'x-csrf-token': s.csrf });
      assert.equal(out.status, 200, out.body);
      assert.deepEqual(out.json(), { loggedOut: true });
      assert.match(String(out.headers['set-cookie']?.[0]), /^__Host-pcl_session=; Path=\/; Max-Age=0;/);
      assertProblem(await withCookie(gw, s, 'GET', '/admin/whoami'), 401, 'auth.session_ended');
      assertProblem(await withCookie(gw, s, 'GET', '/admin/session'), 401, 'auth.session_ended');
      await gw.running.audit.flush();
      const events = await gw.running.audit.repository.search({ action: 'admin.logout' }, 10);
      assert.equal(events.length, 1);
    });

    it('ends the sessions of an admin token when it is revoked', async () => {
      const viewer = await cliToken(gw, 'viewer');
      const s = await login(gw, viewer);
      const id = (await withCookie(gw, s, 'GET', '/admin/session')).json<{ id: string }>().id;
      const revoked = await send(gw.adminUrl, `/admin/tokens/${id}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${tokens.admin}` },
      });
      assert.equal(revoked.status, 200, revoked.body);
      assertProblem(await withCookie(gw, s, 'GET', '/admin/whoami'), 401, 'auth.session_ended');
    });

    it('enforces roles on session calls as on bearer ones', async () => {
      const s = await login(gw, tokens.viewer);
      const reply = await withCookie(
        gw,
        s,
        'POST',
        '/admin/blocks',
        { kind: 'ip', subject: '203.0.113.12', duration: '5m' },
        { 'x-csrf-token': s.csrf },
      );
      assertProblem(reply, 403, 'authz.forbidden');
    });
  });

  describe('security headers', () => {
    it('sends the strict CSP, DENY framing, nosniff and no-referrer on every console response', async () => {
      const s = await login(gw, tokens.admin);
      const pages: [string, string, number][] = [
        ['GET', '/', 200],
        ['GET', '/console/', 200],
        ['GET', '/console/app.js', 200],
        ['GET', '/console/app.css', 200],
        ['GET', '/console/favicon.svg', 200],
        ['GET', '/console/nothing.js', 404],
        ['POST', '/', 405],
      ];
      for (const [method, path, status] of pages) {
        const reply = await send(gw.adminUrl, path, { method });
        assert.equal(reply.status, status, `${method} ${path}`);
        assert.equal(reply.headers['content-security-policy'], CONSOLE_CSP, path);
        assert.equal(reply.headers['x-frame-options'], 'DENY', path);
        assert.equal(reply.headers['x-content-type-options'], 'nosniff', path);
        assert.equal(reply.headers['referrer-policy'], 'no-referrer', path);
      }
      const index = await send(gw.adminUrl, '/');
      assert.equal(index.headers['cache-control'], 'no-store');
      assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>/i.test(index.body), 'an inline script in index.html');
      assert.ok(!/<style|\sstyle=/i.test(index.body), 'an inline style in index.html');
      // The API the console calls: JSON and problems alike, with and without a session.
      const apiCalls: Promise<Reply>[] = [
        withCookie(gw, s, 'GET', '/admin/session'),
        withCookie(gw, s, 'GET', '/admin/metrics/timeseries'),
        withCookie(gw, s, 'POST', '/admin/reload'),
        send(gw.adminUrl, '/admin/session', { method: 'POST' }),
        send(gw.adminUrl, '/admin/session', {
          method: 'POST',
          headers: { authorization: `Bearer ${tokens.admin}` },
        }),
      ];
      for (const reply of await Promise.all(apiCalls)) {
        assert.equal(reply.headers['cache-control'], 'no-store');
        assert.equal(reply.headers['x-frame-options'], 'DENY');
        assert.equal(reply.headers['x-content-type-options'], 'nosniff');
        assert.equal(reply.headers['referrer-policy'], 'no-referrer');
        assert.match(String(reply.headers['content-security-policy']), /frame-ancestors 'none'/);
      }
    });
  });

  describe('the overview’s time series', () => {
    it('counts the requests sent through the gateway, by decision and reason, with the most denied route', async () => {
      const before = (
        await send(gw.adminUrl, '/admin/metrics/timeseries', {
          headers: { authorization: `Bearer ${tokens.viewer}` },
        })
      ).json<{ totals: { requests: number; denied: number } }>().totals;
      for (let i = 0; i < 3; i++) assert.equal((await send(gw.url, '/public')).status, 200);
      for (let i = 0; i < 2; i++) assert.equal((await send(gw.url, '/orders')).status, 401);
      const reply = await send(gw.adminUrl, '/admin/metrics/timeseries?minutes=5', {
        headers: { authorization: `Bearer ${tokens.viewer}` },
      });
      assert.equal(reply.status, 200, reply.body);
      const s = reply.json<{
        times: number[];
        requests: number[];
        reasons: Record<string, number[]>;
        totals: { requests: number; allowed: number; denied: number; p50: number | null };
        top: { routes: { key: string; count: number }[] };
      }>();
      assert.equal(s.times.length, 30);
      assert.equal(s.totals.requests - before.requests, 5);
      assert.equal(s.totals.denied - before.denied, 2);
      assert.ok(s.totals.p50 !== null && s.totals.p50 > 0);
      assert.ok(
        (s.reasons['auth.required'] ?? []).reduce((a, b) => a + b, 0) >= 2,
        JSON.stringify(s.reasons),
      );
      assert.equal(s.top.routes[0]?.key, 'orders');
      assertProblem(
        await send(gw.adminUrl, '/admin/metrics/timeseries?minutes=61', {
          headers: { authorization: `Bearer ${tokens.viewer}` },
        }),
        400,
        'input.invalid',
      );
    });
  });

  describe('the live stream', () => {
    it('streams the matching request events to a session, and refuses a client that does not accept SSE', async () => {
      const s = await login(gw, tokens.viewer);
      assertProblem(await withCookie(gw, s, 'GET', '/admin/events/stream'), 406, 'input.not_acceptable');
      const socket = connect(gw.running.adminPort!, '127.0.0.1');
      let received = '';
      socket.on('data', (c) => {
        received += c.toString();
      });
      socket.write(
        `GET /admin/events/stream?decision=deny HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nCookie: ${s.cookie}\r\n\r\n`,
      );
      await until(() => received.includes('retry: 5000'));
      assert.match(received, /^HTTP\/1\.1 200/);
      assert.match(received, /content-type: text\/event-stream/i);
      await send(gw.url, '/public');
      await send(gw.url, '/orders');
      await until(() => received.includes('"path":"/orders"'));
      assert.ok(!received.includes('"path":"/public"'), 'an allowed request passed the deny filter');
      const frame = /data: (\{.*"path":"\/orders".*\})/.exec(received)![1]!;
      const e = JSON.parse(frame) as Record<string, unknown>;
      assert.equal(e.decision, 'deny');
      assert.equal(e.status, 401);
      assert.equal(e.route, 'orders');
      socket.destroy();
    });
  });

  describe('brute-force protection of the login', () => {
    it('locks out an IP after repeated failed logins (429), as the admin API does', async () => {
      let last: Reply | undefined;
      for (let i = 0; i < 8; i++) {
        last = await send(gw.adminUrl, '/admin/session', {
          method: 'POST',
          headers: { authorization: `Bearer pcla_${'A'.repeat(16)}_${'B'.repeat(43)}${i}` },
        });
        if (last.status === 429) break;
      }
      assertProblem(last!, 429, last!.json<{ code: string }>().code);
    });
  });
});

describe('the live stream’s bound on a slow client', () => {
  let server: Server;
  let hub: LiveHub;
  let port: number;
  const { logger, lines } = captureLogger('warn');

  before(async () => {
    hub = new LiveHub({ logger, maxBufferBytes: 64 * 1024 });
    server = createServer((req, res) => hub.attach(req, res, {}, () => true));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    hub.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const open = async (): Promise<{ socket: Socket; bytes: () => number }> => {
    const socket = connect(port, '127.0.0.1');
    let bytes = 0;
    socket.on('data', (c) => {
      bytes += c.length;
    });
    socket.on('error', () => {});
    socket.write('GET / HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n');
    await until(() => bytes > 0);
    return { socket, bytes: () => bytes };
  };

  const event = (i: number): RequestEvent => ({
    type: 'request',
    time: new Date().toISOString(),
    requestId: `req-${i}`,
    traceId: '0'.repeat(32),
    clientIp: '198.51.100.7',
    method: 'GET',
    path: `/items/${'x'.repeat(480)}`,
    route: 'items',
    principal: undefined,
    decision: 'deny',
    reason: 'auth.required',
    detail: undefined,
    status: 401,
    latencyMs: 1,
    upstreamMs: undefined,
    stage: 'authenticate',
    shadowDenials: [],
  });

  it('drops a client that stops reading, while one that reads stays connected', async () => {
    const fast = await open();
    const slow = await open();
    slow.socket.pause();
    await until(() => hub.size === 2);
    // Up to 64 MB of events: far past what the kernel buffers of a paused socket hold.
    for (let i = 0; i < 100_000 && hub.size === 2; i++) {
      hub.emit(event(i));
      if (i % 20 === 0) await new Promise((r) => setImmediate(r));
    }
    await until(() => hub.size === 1);
    assert.ok(
      lines.some((l) => String(l.msg).includes('reading too slowly')),
      JSON.stringify(lines),
    );
    const before = fast.bytes();
    hub.emit(event(-1));
    await until(() => fast.bytes() > before);
    assert.equal(hub.size, 1, 'the reading client was dropped too');
    fast.socket.destroy();
    slow.socket.destroy();
  });
});

async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
