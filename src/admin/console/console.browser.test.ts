/**
 * The web console in a real browser: Playwright (playwright-core) driving
 * Debian's chromium package against a real gateway running the demo config
 * in front of the demo orders API. Skipped with a message when chromium is
 * not installed, except under CI=true, where that fails.
 *
 * Screenshots of the main pages go to .artifacts/console/ (not committed);
 * with UPDATE_CONSOLE_SCREENSHOT=1 the overview is also written to
 * docs/console-overview.png (committed, linked from the README).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { buildConsole, CONSOLE_OUT, CONSOLE_SOURCE } from '../../../scripts/build-console.js';
import { type RunningOrdersApi, startOrdersApi } from '../../demo/orders-api.js';
import { DEMO_SECRET_ENV, DEMO_USERS, signDemoToken } from '../../demo/tokens.js';
import { demoConfig } from '../../test-support/demo.js';
import { startTestGateway, type TestGateway } from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';
import { runAdminCommand } from '../tokens/cli.js';
import type { AdminRole } from '../tokens/store.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ARTIFACTS = join(ROOT, '.artifacts', 'console');
const DOCS_SCREENSHOT = join(ROOT, 'docs', 'console-overview.png');
const haveChromium = existsSync(CHROMIUM);
const NO_CHROMIUM = `chromium is not installed at ${CHROMIUM} (apt-get install chromium) — the console's browser tests are skipped`;

/** The newest modification time under `dir`. */
function newest(dir: string): number {
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newest(p) : s.mtimeMs);
  }
  return t;
}

/** Builds the console bundle when it is missing or older than its source. */
async function ensureConsoleBuilt(): Promise<void> {
  const index = join(CONSOLE_OUT, 'index.html');
  if (!existsSync(index) || statSync(index).mtimeMs < newest(CONSOLE_SOURCE)) await buildConsole();
}

async function cliToken(gw: TestGateway, role: AdminRole): Promise<string> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runAdminCommand(
    ['tokens', 'create', '--role', role, '--name', `${role} in the browser`],
    {
      out: (s) => out.push(s),
      err: (s) => err.push(s),
      env: { ...process.env, PORTCULLIS_CONFIG: gw.configFile, PORTCULLIS_DATA: gw.dataDir },
    },
  );
  assert.equal(code, 0, err.join('\n'));
  return out.join('').trim();
}

/**
 * The little of the DOM that the functions run in the page use: the
 * project's typecheck has no DOM library (those functions run in chromium).
 */
interface PageGlobals {
  document: {
    cookie: string;
    body: { append(node: unknown): void };
    querySelector(selector: string): { textContent: string | null } | null;
    createElement(tag: string): { setAttribute(name: string, value: string): void };
    addEventListener(
      type: 'securitypolicyviolation',
      listener: (e: {
        violatedDirective: string;
        blockedURI: string;
        sourceFile: string;
        lineNumber: number;
      }) => void,
    ): void;
  };
  __reportCspViolation(text: string): void;
}

if (!haveChromium && process.env.CI === 'true') {
  describe('the web console in a real browser', () => {
    it('needs chromium, which CI installs (.ci/run)', () => {
      assert.fail(NO_CHROMIUM);
    });
  });
} else if (!haveChromium) {
  console.warn(NO_CHROMIUM);
}

describe('the web console in a real browser', { skip: haveChromium ? false : NO_CHROMIUM }, () => {
  let api: RunningOrdersApi;
  let gw: TestGateway;
  let browser: Browser;
  let adminContext: BrowserContext;
  let page: Page;
  const tokens = {} as Record<AdminRole, string>;
  const bearer = new Map<string, string>();
  /** What the browser reported: CSP violations and uncaught errors, from every page opened. */
  const violations: string[] = [];
  const pageErrors: string[] = [];

  const shot = async (p: Page, name: string) => {
    mkdirSync(ARTIFACTS, { recursive: true });
    await p.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  };

  const newContext = async (): Promise<BrowserContext> => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    await context.exposeBinding('__reportCspViolation', (_source, text: string) => {
      violations.push(text);
    });
    await context.addInitScript(() => {
      const page = globalThis as unknown as PageGlobals;
      page.document.addEventListener('securitypolicyviolation', (e) => {
        page.__reportCspViolation(
          `${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`,
        );
      });
    });
    context.on('page', (p) => watch(p));
    return context;
  };

  const watch = (p: Page) => {
    p.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    p.on('pageerror', (e) => pageErrors.push(e.message));
  };

  const logIn = async (p: Page, token: string) => {
    await p.goto(`${gw.adminUrl}/`);
    await p.fill('input[name=token]', token);
    await p.click('button[type=submit]');
    await p.waitForSelector('.who');
  };

  const go = async (p: Page, hash: string) => {
    await p.goto(`${gw.adminUrl}/#/${hash}`);
    await p.waitForSelector('.who');
  };

  before(async () => {
    await ensureConsoleBuilt();
    const secret = 'a-demo-token-secret-for-the-console-tests';
    process.env[DEMO_SECRET_ENV] = secret;
    api = await startOrdersApi(0);
    gw = await startTestGateway(demoConfig(api.port, { relaxInspectionBudget: true, logLevel: 'warn' }));
    for (const user of DEMO_USERS) bearer.set(user.name, `Bearer ${await signDemoToken(secret, user)}`);
    tokens.admin = await cliToken(gw, 'admin');
    tokens.viewer = await cliToken(gw, 'viewer');
    // launch() gives the browser a fresh, temporary user-data dir of its own, removed on close.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    adminContext = await newContext();
    page = await adminContext.newPage();
  });

  after(async () => {
    await browser?.close();
    await gw?.close();
    await api?.close();
  });

  it('logs in with an admin token, into an HttpOnly session the page cannot read', async () => {
    await page.goto(`${gw.adminUrl}/`);
    await page.waitForSelector('input[name=token]');
    await shot(page, 'login');
    await page.fill('input[name=token]', `${tokens.admin.slice(0, -4)}AAAA`);
    await page.click('button[type=submit]');
    await page.waitForSelector('.login-form .error');
    assert.match((await page.textContent('.login-form .error')) ?? '', /not valid/);
    await page.fill('input[name=token]', tokens.admin);
    await page.click('button[type=submit]');
    await page.waitForSelector('.who');
    assert.match((await page.textContent('.who')) ?? '', /admin/);
    assert.equal(
      await page.evaluate(() => (globalThis as unknown as PageGlobals).document.cookie),
      '',
      'the session cookie is readable by scripts',
    );
    const cookies = await adminContext.cookies();
    const session = cookies.find((c) => c.name === '__Host-pcl_session');
    assert.ok(session, JSON.stringify(cookies));
    assert.deepEqual([session.httpOnly, session.secure, session.sameSite], [true, true, 'Strict']);
    assert.ok(!(await page.content()).includes(tokens.admin), 'the admin token stays in the page');
  });

  it('shows on the overview the traffic sent through the gateway', async () => {
    // For the committed screenshot, traffic over a minute (10-second buckets); otherwise one burst.
    const rounds = process.env.UPDATE_CONSOLE_SCREENSHOT === '1' ? 7 : 1;
    for (let round = 0; round < rounds; round++) {
      if (round > 0) await new Promise((r) => setTimeout(r, 10_000));
      for (let i = 0; i < 6 + ((round * 7) % 11); i++) {
        assert.equal((await send(gw.url, '/public/catalog')).status, 200);
      }
      for (let i = 0; i < 3 + (round % 3); i++) {
        const r = await send(gw.url, '/users/1/orders', { headers: { authorization: bearer.get('alice')! } });
        assert.equal(r.status, 200);
      }
      for (let i = 0; i < 2 + (round % 2) * 2; i++) {
        const r = await send(gw.url, '/users/1/orders', { headers: { authorization: bearer.get('bob')! } });
        assert.equal(r.status, 403);
      }
      assert.equal((await send(gw.url, '/users/1/orders')).status, 401);
      assert.equal((await send(gw.url, '/nope')).status, 404);
    }
    await go(page, 'overview');
    await page.waitForFunction(
      () =>
        Number(
          (globalThis as unknown as PageGlobals).document.querySelector('[data-stat=denied] .stat-value')
            ?.textContent,
        ) >= 4,
      undefined,
      { timeout: 20_000 },
    );
    const stat = async (name: string) => Number(await page.textContent(`[data-stat=${name}] .stat-value`));
    assert.ok((await stat('requests')) >= 13, `requests ${await stat('requests')}`);
    assert.ok((await stat('allowed')) >= 9);
    assert.match((await page.textContent('[data-stat=p99] .stat-value')) ?? '', /ms$/);
    assert.equal(
      (await page.textContent('[data-top=principals] td.mono'))?.trim(),
      '2',
      'bob is the top denied',
    );
    assert.match((await page.textContent('[data-top=routes]')) ?? '', /list-user-orders/);
    assert.equal((await page.locator('.chart canvas').count()) >= 3, true, 'the charts are drawn');
    assert.match((await page.textContent('.charts')) ?? '', /authz\.forbidden/);
    await shot(page, 'overview');
    if (process.env.UPDATE_CONSOLE_SCREENSHOT === '1') {
      await page.click('button[data-window="5"]');
      await page.waitForSelector('p.muted:has-text("last 5 minutes")');
      await new Promise((r) => setTimeout(r, 1000));
      await page.screenshot({ path: DOCS_SCREENSHOT, fullPage: false });
    }
  });

  it('shows a denied request in the live view as it happens', async () => {
    await go(page, 'live');
    await page.selectOption('select[name=decision]', 'deny');
    await page.click('form.filters button[type=submit]');
    await page.waitForSelector('[data-stream-state=live][data-stream-query="decision=deny"]');
    assert.equal((await send(gw.url, '/public/catalog')).status, 200);
    const r = await send(gw.url, '/users/1/orders', { headers: { authorization: bearer.get('bob')! } });
    assert.equal(r.status, 403);
    const row = page.locator('[data-live] tr[data-decision=deny]', { hasText: '/users/1/orders' });
    await row.first().waitFor({ timeout: 10_000 });
    assert.match((await row.first().textContent()) ?? '', /403.*list-user-orders.*2.*authz\.forbidden/s);
    assert.equal(
      await page.locator('[data-live] tr[data-decision=allow]').count(),
      0,
      'the filter let an allow through',
    );
    await shot(page, 'live');
  });

  it('explains the rule that denied bob', async () => {
    await go(page, 'explain');
    await page.selectOption('select[name=method]', 'GET');
    await page.fill('input[name=target]', '/users/1/orders');
    await page.selectOption('select[name=credential]', 'token');
    await page.fill('textarea[name=credential-value]', bearer.get('bob')!);
    await page.click('.explain-form button[type=submit]');
    await page.waitForSelector('[data-explanation]');
    const text = (await page.textContent('[data-explanation]')) ?? '';
    assert.match(text, /deny\s*403/);
    assert.match(text, /authz\.forbidden/);
    const rule = page.locator('tr[data-rule="any[0].owner(path.userId == sub)"]');
    assert.equal(await rule.getAttribute('data-pass'), 'false');
    assert.match((await rule.textContent()) ?? '', /request has "1"; principal has "2"/);
    await shot(page, 'explain');
  });

  it('creates an API key that then works against the gateway, shown once', async () => {
    await go(page, 'manage/keys');
    await page.fill('form[data-manage=create-key] input[name=name]', 'from the console');
    await page.fill('form[data-manage=create-key] input[name=scopes]', 'orders:read');
    await page.fill('form[data-manage=create-key] input[name=tenant]', 'acme');
    await page.click('form[data-manage=create-key] button[type=submit]');
    await page.waitForSelector('[data-secret]');
    const key = ((await page.textContent('[data-secret]')) ?? '').trim();
    assert.match(key, /^pcl_/);
    await shot(page, 'manage-keys');
    const r = await send(gw.url, '/tenants/acme/orders', { headers: { 'x-api-key': key } });
    assert.equal(r.status, 200, r.body);
    assert.equal(
      (await send(gw.url, '/tenants/acme/orders', { headers: { 'x-api-key': `${key}x` } })).status,
      401,
    );
    await page.click('.shown-once button:has-text("Done")');
    assert.equal(await page.locator('[data-secret]').count(), 0);
    await page.reload();
    await page.waitForSelector('tr[data-key]');
    assert.ok(!(await page.content()).includes(key), 'the key is shown again');
    assert.match((await page.textContent('table')) ?? '', /from the console/);
  });

  it('adds a block that takes effect at once, and lifts it', async () => {
    const bobs = () => send(gw.url, '/users/2/orders', { headers: { authorization: bearer.get('bob')! } });
    assert.equal((await bobs()).status, 200);
    await go(page, 'manage/blocks');
    await page.selectOption('form[data-manage=add-block] select[name=kind]', 'principal');
    await page.fill('form[data-manage=add-block] input[name=subject]', '2');
    await page.fill('form[data-manage=add-block] input[name=duration]', '10m');
    await page.fill('form[data-manage=add-block] input[name=reason]', 'added in the browser test');
    await page.click('form[data-manage=add-block] button[type=submit]');
    const row = page.locator('tr[data-block="principal:2"]');
    await row.waitFor();
    assert.equal((await bobs()).status, 429);
    await shot(page, 'manage-blocks');
    await row.locator('button[data-manage=lift]').click();
    await page.waitForSelector('tr[data-block="principal:2"]', { state: 'detached' });
    assert.equal((await bobs()).status, 200);
  });

  it('shows a viewer no management controls, and the API refuses the viewer’s direct call', async () => {
    const context = await newContext();
    const viewer = await context.newPage();
    await logIn(viewer, tokens.viewer);
    assert.match((await viewer.textContent('.who')) ?? '', /viewer/);
    for (const tab of ['keys', 'clients', 'blocks', 'revocations', 'alerts']) {
      await go(viewer, `manage/${tab}`);
      await viewer.waitForSelector('[data-read-only]');
      await viewer.waitForSelector('.panel table');
      assert.equal(await viewer.locator('[data-manage]').count(), 0, `management controls on ${tab}`);
    }
    assert.equal(await viewer.locator('.tabs a[href="#/manage/admin"]').count(), 0);
    await shot(viewer, 'viewer-manage');
    const refused = await viewer.evaluate(async () => {
      const s = (await (await fetch('/admin/session')).json()) as { csrfToken: string };
      const r = await fetch('/admin/blocks', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrfToken },
        body: JSON.stringify({ kind: 'ip', subject: '203.0.113.99', duration: '5m' }),
      });
      return {
        status: r.status,
        type: r.headers.get('content-type'),
        body: (await r.json()) as { code: string },
      };
    });
    assert.equal(refused.status, 403);
    assert.match(String(refused.type), /^application\/problem\+json/);
    assert.equal(refused.body.code, 'authz.forbidden');
    await context.close();
  });

  it('reports no CSP violation and no script error on any page', async () => {
    for (const hash of [
      'overview',
      'live',
      'routes',
      'explain',
      'manage/clients',
      'manage/revocations',
      'manage/alerts',
      'manage/admin',
      'audit',
    ]) {
      await go(page, hash);
      await page.waitForSelector('.page h1');
    }
    await go(page, 'routes');
    await page.click('details[data-route=list-user-orders] summary');
    const route = (await page.textContent('details[data-route=list-user-orders]')) ?? '';
    assert.match(route, /GET, HEAD \/users\/\{userId\}\/orders/);
    assert.match(route, /auth: jwt, api_key/);
    assert.match(route, /owner/, 'the route’s authorization rules are shown');
    await shot(page, 'routes');
    await go(page, 'audit');
    await page.waitForSelector('[data-chain]');
    assert.equal(await page.getAttribute('[data-chain]', 'data-chain'), 'ok');
    await page.fill('input[name=action]', 'key.created');
    await page.fill('input[name=since]', '');
    await page.click('button:has-text("Search")');
    await page.waitForSelector('tr.clickable:has-text("key.created")');
    await page.locator('tr.clickable').first().click();
    await page.waitForSelector('[data-audit-details]');
    const details = (await page.textContent('[data-audit-details]')) ?? '';
    assert.match(details, /"admin_role": "admin"/);
    assert.match(details, /"via": "console"/, 'an act made in the console is audited as such');
    await shot(page, 'audit');
    await go(page, 'overview');
    await page.waitForSelector('.chart canvas');
    assert.deepEqual(violations, []);
    assert.deepEqual(pageErrors, []);
    // The detector itself: an inline style attribute set by a script is reported.
    await page.evaluate(() => {
      const { document } = globalThis as unknown as PageGlobals;
      const probe = document.createElement('div');
      probe.setAttribute('style', 'color: red');
      document.body.append(probe);
    });
    for (let i = 0; i < 200 && !violations.some((v) => /^style-src/.test(v)); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(violations.length > 0, 'the CSP violation probe was not reported');
    assert.ok(
      violations.some((v) => /^style-src/.test(v)),
      violations.join('\n'),
    );
    violations.length = 0;
  });

  it('logs out: the session ends and the console asks for a token again', async () => {
    await go(page, 'overview');
    await page.click('.top-bar button:has-text("Log out")');
    await page.waitForSelector('input[name=token]');
    const status = await page.evaluate(async () => (await fetch('/admin/whoami')).status);
    assert.equal(status, 401);
    await page.goto(`${gw.adminUrl}/#/manage/keys`);
    await page.waitForSelector('input[name=token]');
  });
});
