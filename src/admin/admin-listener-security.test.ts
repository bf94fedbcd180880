/**
 * A non-loopback admin listener needs TLS in production (`portcullis check`
 * and `start` refuse otherwise), and the admin listener serves HTTPS when
 * `admin.tls` is set, with the admin API and health endpoints on it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError, loadConfig } from '../config/load.js';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { ensureDevCertificates } from '../tls/dev-cert.js';
import { runAdminCommand } from './tokens/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-admin-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function issuesOf(admin: Record<string, unknown>, mode: string): Promise<string[]> {
  const file = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    file,
    stringify({
      mode,
      allow_insecure: { tls_disabled: true },
      admin,
      upstreams: { app: { url: 'http://127.0.0.1:3000' } },
      routes: [{ path: '/a', methods: ['GET'], upstream: 'app', auth: 'none' }],
    }),
  );
  try {
    await loadConfig(file, { env: { PORTCULLIS_DATA: dir } });
    return [];
  } catch (err) {
    // Only the admin listener's issues: production has other requirements (signing keys…).
    if (err instanceof ConfigError) {
      return err.issues.map((i) => `${i.path}: ${i.message}`).filter((i) => i.startsWith('admin'));
    }
    throw err;
  }
}

describe('the admin listener config', () => {
  it('is refused in production on a non-loopback host without TLS', async () => {
    const issues = await issuesOf({ host: '0.0.0.0' }, 'production');
    assert.ok(
      issues.some((i) => /admin/.test(i) && /production needs admin\.tls/.test(i)),
      issues.join('\n'),
    );
  });

  it('is accepted in production on a non-loopback host with TLS, or on loopback without', async () => {
    assert.deepEqual(
      await issuesOf({ host: '0.0.0.0', tls: { cert: 'a.crt', key: 'a.key' } }, 'production'),
      [],
    );
    assert.deepEqual(await issuesOf({ host: '127.0.0.1' }, 'production'), []);
  });

  it('is only warned about in development', async () => {
    assert.deepEqual(await issuesOf({ host: '0.0.0.0' }, 'development'), []);
  });
});

describe('an admin listener with admin.tls', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let ca: Buffer;

  before(async () => {
    const dev = await ensureDevCertificates(join(dir, 'tls'));
    ca = readFileSync(dev.files.caCert);
    upstream = await startUpstream();
    gw = await startTestGateway({
      admin: { tls: { cert: dev.files.cert, key: dev.files.key } },
      upstreams: { app: { url: upstream.url } },
      routes: [{ path: '/a', methods: ['GET'], upstream: 'app', auth: 'none' }],
    });
  });

  after(async () => {
    await gw?.close();
    await upstream?.close();
  });

  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: 'localhost', port: gw.running.adminPort, path, ca, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.end();
    });

  it('serves /readyz and the admin API over HTTPS', async () => {
    assert.equal((await get('/readyz')).status, 200);
    const out: string[] = [];
    const code = await runAdminCommand(['tokens', 'create', '--role', 'viewer'], {
      out: (s) => out.push(s),
      err: () => {},
      env: { ...process.env, PORTCULLIS_CONFIG: gw.configFile, PORTCULLIS_DATA: gw.dataDir },
    });
    assert.equal(code, 0);
    const who = await get('/admin/whoami', { authorization: `Bearer ${out.join('').trim()}` });
    assert.equal(who.status, 200, who.body);
    assert.equal((await get('/admin/whoami')).status, 401);
  });

  it('refuses plain HTTP', async () => {
    await assert.rejects(fetch(`http://127.0.0.1:${gw.running.adminPort}/healthz`));
  });
});
