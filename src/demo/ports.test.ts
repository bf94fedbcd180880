import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { applyDemoAdminPort, demoAdminPort } from './ports.js';

const MAIN = new URL('../cli/main.ts', import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), 'portcullis-demo-ports-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A port free right now (the demo binds it a moment later). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe('PORTCULLIS_ADMIN_PORT', () => {
  it('sets the demo’s admin port, and is ignored when unset', () => {
    const raw: Record<string, unknown> = { admin: { host: '127.0.0.1', port: 9090 } };
    applyDemoAdminPort(raw, {});
    assert.deepEqual(raw.admin, { host: '127.0.0.1', port: 9090 });
    applyDemoAdminPort(raw, { PORTCULLIS_ADMIN_PORT: '9191' });
    assert.deepEqual(raw.admin, { host: '127.0.0.1', port: 9191 });
    const bare: Record<string, unknown> = {};
    applyDemoAdminPort(bare, { PORTCULLIS_ADMIN_PORT: '0' });
    assert.deepEqual(bare.admin, { port: 0 });
  });

  it('refuses a value that is not a port', () => {
    for (const bad of ['abc', '-1', '65536', '90 90', '9090x', '1e3']) {
      assert.throws(() => demoAdminPort({ PORTCULLIS_ADMIN_PORT: bad }), /must be a port number 0-65535/);
    }
    const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'demo'], {
      encoding: 'utf8',
      env: { ...process.env, PORTCULLIS_DATA: join(root, 'bad'), PORTCULLIS_ADMIN_PORT: 'nine' },
      timeout: 30_000,
    });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /PORTCULLIS_ADMIN_PORT must be a port number 0-65535, got "nine"/);
  });

  it('lets two demos run on one machine', { timeout: 60_000 }, async () => {
    const children: ChildProcess[] = [];
    try {
      const demos = [];
      for (const name of ['one', 'two']) {
        const adminPort = await freePort();
        const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'demo'], {
          env: {
            ...process.env,
            PORTCULLIS_DATA: join(root, name),
            PORTCULLIS_PORT: '0',
            PORTCULLIS_DEMO_HTTP_PORT: '0',
            PORTCULLIS_ADMIN_PORT: String(adminPort),
          },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        children.push(child);
        let stderr = '';
        child.stderr!.on('data', (c: Buffer) => {
          stderr += c.toString();
        });
        demos.push({ adminPort, child, output: () => stderr });
      }
      for (const demo of demos) {
        const until = Date.now() + 45_000;
        while (
          !demo.output().includes('Stop with Ctrl-C') &&
          demo.child.exitCode === null &&
          Date.now() < until
        ) {
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.match(
          demo.output(),
          new RegExp(`http://127\\.0\\.0\\.1:${demo.adminPort}/readyz`),
          demo.output(),
        );
        const ready = await fetch(`http://127.0.0.1:${demo.adminPort}/readyz`);
        assert.ok(ready.status === 200 || ready.status === 503, `readyz answered ${ready.status}`);
      }
    } finally {
      for (const child of children) child.kill('SIGTERM');
      await Promise.all(
        children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)),
      );
    }
  });
});
