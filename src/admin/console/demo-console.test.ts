/** `npm start` (the demo command) prints the console's URL and a fresh admin token that logs in to it. */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildConsole, CONSOLE_OUT } from '../../../scripts/build-console.js';

const MAIN = new URL('../../cli/main.ts', import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), 'portcullis-demo-console-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('the demo', () => {
  it('prints the web console’s URL and a one-time admin token that logs in there', {
    timeout: 90_000,
  }, async () => {
    if (!existsSync(join(CONSOLE_OUT, 'index.html'))) await buildConsole();
    let child: ChildProcess | undefined;
    try {
      child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'demo'], {
        env: {
          ...process.env,
          PORTCULLIS_DATA: join(root, 'data'),
          PORTCULLIS_PORT: '0',
          PORTCULLIS_DEMO_HTTP_PORT: '0',
          PORTCULLIS_ADMIN_PORT: '0',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => {
        stderr += c.toString();
      });
      const until = Date.now() + 60_000;
      while (!stderr.includes('Stop with Ctrl-C') && child.exitCode === null && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const m = /Web console: (http:\/\/127\.0\.0\.1:\d+\/)\n.*\n\s*(pcla_\S+)\n/.exec(stderr);
      assert.ok(m, stderr);
      const [, url, token] = m;
      const page = await fetch(url!);
      assert.equal(page.status, 200);
      assert.match(String(page.headers.get('content-type')), /^text\/html/);
      assert.match(await page.text(), /<script type="module" src="\/console\/app\.js">/);
      const login = await fetch(new URL('/admin/session', url), {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
      const body = await login.text();
      assert.equal(login.status, 201, body);
      assert.equal((JSON.parse(body) as { role: string }).role, 'admin');
    } finally {
      child?.kill('SIGTERM');
      if (child !== undefined && child.exitCode === null) await new Promise((r) => child!.once('exit', r));
    }
  });
});
