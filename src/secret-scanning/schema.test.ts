import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError, loadConfig } from '../config/load.js';
import { DEFAULT_PATH, GITHUB_PUBLIC_KEYS_URL } from './schema.js';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-secret-scanning-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

async function load(extra: Record<string, unknown>, apiKeys = true) {
  const file = join(dir, `c${++n}.yaml`);
  writeFileSync(
    file,
    stringify({
      ...(apiKeys ? { auth: { api_keys: {} } } : {}),
      upstreams: { app: { url: 'http://127.0.0.1:3000' } },
      routes: [{ path: '/a', methods: ['GET'], upstream: 'app', auth: 'none' }],
      ...extra,
    }),
  );
  return loadConfig(file, { env: { PORTCULLIS_DATA: dir } });
}

async function issues(extra: Record<string, unknown>, apiKeys = true): Promise<string[]> {
  try {
    await load(extra, apiKeys);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
  return [];
}

const p256 = () =>
  generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    .publicKey.export({ type: 'spki', format: 'pem' })
    .toString();

describe('the secret_scanning section', () => {
  it('is off by default, with GitHub’s key list and the well-known path', async () => {
    const { config } = await load({});
    assert.deepEqual(
      { ...config.secretScanning },
      {
        enabled: false,
        path: DEFAULT_PATH,
        action: 'revoke',
        publicKeysUrl: GITHUB_PUBLIC_KEYS_URL,
        publicKeys: [],
        refreshMs: 3_600_000,
        timeoutMs: 5000,
        maxBodyBytes: 1024 * 1024,
        maxTokens: 1000,
        severity: 'critical',
      },
    );
  });

  it('takes inline P-256 keys, and then fetches nothing', async () => {
    const key = p256();
    const { config } = await load({
      secret_scanning: { enabled: true, action: 'flag', public_keys: [{ key_identifier: 'k1', key }] },
    });
    assert.equal(config.secretScanning?.publicKeysUrl, undefined);
    assert.deepEqual(config.secretScanning?.publicKeys, [{ keyIdentifier: 'k1', key }]);
  });

  it('refuses what it could not work with, each at its path', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    assert.deepEqual(await issues({ secret_scanning: { enabled: true } }, false), [
      'secret_scanning.enabled: the receiver revokes API keys: configure auth.api_keys, or leave secret_scanning off',
    ]);
    const bad = await issues({
      secret_scanning: {
        public_keys: [
          { key_identifier: 'a', key: rsa },
          { key_identifier: 'a', key: 'not a key' },
        ],
      },
    });
    assert.equal(bad.length, 3);
    assert.match(bad[0]!, /public_keys\[0\]\.key: expected an ECDSA P-256 public key/);
    assert.match(bad[2]!, /public_keys\[1\]\.key_identifier: is used twice/);
    for (const url of ['http://keys.example.com/list', 'https://user:pw@example.com/keys', 'not a url']) {
      assert.deepEqual(await issues({ secret_scanning: { public_keys_url: url } }), [
        'secret_scanning.public_keys_url: expected an https:// URL without credentials (http:// only to a loopback address)',
      ]);
    }
    assert.deepEqual(await issues({ secret_scanning: { public_keys_url: 'http://127.0.0.1:9/keys' } }), []);
    assert.equal((await issues({ secret_scanning: { path: 'no-slash' } })).length, 1);
    assert.equal((await issues({ secret_scanning: { action: 'delete' } })).length, 1);
  });
});
