import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startUpstream, type TestUpstream } from '../test-support/gateway.js';
import { send } from '../test-support/http.js';

const MAIN = new URL('./main.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'portcullis-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PORTCULLIS_DATA: dir, ...env },
    timeout: 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function configFile(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

const route = (path: string, upstream = 'app') =>
  `  - path: ${path}\n    methods: [GET]\n    upstream: ${upstream}\n    auth: none\n`;

describe('the portcullis command', () => {
  it('prints help and its version', () => {
    const help = cli(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /portcullis check \[--config FILE\]/);
    const version = cli(['--version']);
    assert.match(version.stdout.split('\n')[0]!, /^portcullis \d+\.\d+\.\d+$/);
  });

  it('check lists every error with file, path and line and exits 2', () => {
    const file = configFile(
      'three-mistakes.yaml',
      `listen:\n  port: -1\nupstreams:\n  app:\n    url: ftp://nope\nroutes:\n${route('/a', 'missing')}    colour: blue\n`,
    );
    const r = cli(['check', '--config', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /3 error\(s\)/);
    assert.match(r.stderr, new RegExp(`${file}:2:9: listen.port: expected a value that must be >= 0`));
    assert.match(
      r.stderr,
      new RegExp(`${file}:5:10: upstreams.app.url: expected an http:// or https:// URL`),
    );
    assert.match(r.stderr, new RegExp(`${file}:11:5: routes\\[0\\].colour: unknown key "colour"`));
  });

  it('check passes a valid config and prints its security warnings', () => {
    const file = configFile(
      'warn.yaml',
      `upstreams:\n  app:\n    url: http://api.example.com\nroutes:\n${route('/a')}`,
    );
    const r = cli(['check', '--config', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /warning: .*upstreams\.app\.url: plain HTTP/);
    assert.match(r.stdout, /warning: .*listen\.host: the public listener on 0\.0\.0\.0 serves plain HTTP/);
    assert.match(r.stdout, /valid, 2 warning/);
  });

  it('refuses an unknown command with exit 2', () => {
    const r = cli(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command "frobnicate"/);
  });

  it('start does not start on an invalid config', () => {
    const file = configFile('bad.yaml', 'routes: 12\n');
    const r = cli(['start', '--config', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /routes: expected array/);
  });
});

describe('a running gateway process', () => {
  let upstream: TestUpstream;
  let child: ChildProcess;
  let file: string;
  let port: number;
  let stdout = '';

  before(async () => {
    upstream = await startUpstream((req, res) => {
      if (req.url === '/slow') {
        setTimeout(() => res.end('finished'), 1500);
        return true;
      }
      return undefined;
    });
    port = 20000 + Math.floor(Math.random() * 20000);
    file = configFile(
      'running.yaml',
      `listen:\n  host: 127.0.0.1\n  port: ${port}\nadmin:\n  enabled: false\nupstreams:\n  app:\n    url: ${upstream.url}\nroutes:\n${route('/one')}${route('/slow')}`,
    );
    child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'start', '--config', file], {
      env: { ...process.env, PORTCULLIS_DATA: dir },
    });
    child.stdout!.on('data', (c) => {
      stdout += c;
    });
    await waitFor(() => stdout.includes('portcullis listening'));
  });

  after(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await upstream.close();
  });

  it('reloads a valid config on SIGHUP', async () => {
    assert.equal((await send(`http://127.0.0.1:${port}`, '/two')).status, 404);
    writeFileSync(file, `${readConfig()}${route('/two')}`);
    child.kill('SIGHUP');
    await waitFor(() => stdout.includes('configuration reloaded'));
    assert.equal((await send(`http://127.0.0.1:${port}`, '/two')).status, 200);
  });

  it('keeps serving the old config when the new one is invalid', async () => {
    writeFileSync(file, `${readConfig()}  - path: /three\n    methods: [GRAB]\n`);
    child.kill('SIGHUP');
    await waitFor(() => stdout.includes('invalid configuration on reload'));
    assert.match(stdout, /routes\[3\]/);
    assert.equal((await send(`http://127.0.0.1:${port}`, '/two')).status, 200);
  });

  it('finishes in-flight requests on SIGTERM, then exits 0', async () => {
    const inflight = send(`http://127.0.0.1:${port}`, '/slow');
    await new Promise((r) => setTimeout(r, 300));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    const reply = await inflight;
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'finished');
    assert.equal(await exited, 0);
  });

  function readConfig(): string {
    return readFileSync(file, 'utf8');
  }
});

async function waitFor(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the installed command', () => {
  it('is executable after the build, so npx portcullis runs it', async () => {
    const { statSync, readFileSync, existsSync } = await import('node:fs');
    const bin = new URL('../../dist/cli/main.js', import.meta.url);
    // The build runs on npm ci (prepare), before the tests.
    assert.ok(existsSync(bin), 'dist/cli/main.js is missing: run npm ci or npm run build first');
    assert.ok((statSync(bin).mode & 0o100) !== 0, 'dist/cli/main.js is not executable');
    assert.match(readFileSync(bin, 'utf8').split('\n')[0]!, /^#!\/usr\/bin\/env node/);
  });
});
