import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, type ConfigIssue, loadConfig } from '../config/load.js';
import { createTempPki, type PemFiles, type TempPki } from './test-support/pki.js';

describe('TLS files named in the config are read when it is loaded', () => {
  let pki: TempPki;
  let ca: PemFiles;
  let leaf: PemFiles;
  let other: PemFiles;
  let garbage: string;

  before(async () => {
    pki = createTempPki();
    ca = await pki.ca('config-ca');
    [leaf, other] = await Promise.all([
      pki.leaf('leaf', { ca, commonName: 'localhost', dns: ['localhost'], usage: 'server', days: 30 }),
      pki.leaf('other', { ca, commonName: 'localhost', dns: ['localhost'], usage: 'server', days: 30 }),
    ]);
    garbage = join(pki.dir, 'garbage.pem');
    writeFileSync(garbage, 'this is not PEM\n');
  });
  after(() => pki?.cleanup());

  let n = 0;
  const configWith = (tls: string, extra = ''): string => {
    const file = join(pki.dir, `config-${n++}.yaml`);
    writeFileSync(
      file,
      `listen:
  port: 0
${tls}
upstreams:
  app:
    url: http://127.0.0.1:3000
${extra}
routes:
  - path: /items
    methods: [GET]
    upstream: app
    auth: none
`,
    );
    return file;
  };
  const listenerTls = (cert: string, key: string, clientCa?: string) =>
    `  tls:
    certificates:
      - cert: ${cert}
        key: ${key}${clientCa === undefined ? '' : `\n    client_auth:\n      mode: optional\n      ca: [${clientCa}]`}`;

  async function refusal(file: string): Promise<ConfigIssue[]> {
    try {
      await loadConfig(file, { env: { PORTCULLIS_DATA: pki.dir } });
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return [...err.issues];
    }
    return assert.fail('the config was accepted');
  }

  it('accepts a certificate with its key and a CA bundle', async () => {
    const { warnings } = await loadConfig(configWith(listenerTls(leaf.certFile, leaf.keyFile, ca.certFile)), {
      env: { PORTCULLIS_DATA: pki.dir },
    });
    assert.deepEqual(
      warnings.filter((w) => w.path.startsWith('listen.tls')),
      [],
    );
  });

  it('refuses a certificate file that holds no certificate, naming its place in the config', async () => {
    const [issue, ...rest] = await refusal(configWith(listenerTls(garbage, leaf.keyFile)));
    assert.deepEqual(rest, []);
    assert.equal(issue?.path, 'listen.tls.certificates[0]');
    assert.match(
      issue?.message ?? '',
      /expected a PEM certificate and its private key: no PEM certificate in .*garbage\.pem/,
    );
  });

  it('refuses a key that is no key, and a key that belongs to another certificate', async () => {
    const [notKey] = await refusal(configWith(listenerTls(leaf.certFile, garbage)));
    assert.equal(notKey?.path, 'listen.tls.certificates[0]');
    assert.match(notKey?.message ?? '', /not a PEM private key/);
    const [mismatch] = await refusal(configWith(listenerTls(leaf.certFile, other.keyFile)));
    assert.match(mismatch?.message ?? '', /does not belong to the certificate/);
  });

  it('refuses a CA bundle without a certificate, for the listener, an upstream and the admin listener', async () => {
    const [listener] = await refusal(configWith(listenerTls(leaf.certFile, leaf.keyFile, garbage)));
    assert.equal(listener?.path, 'listen.tls.client_auth.ca[0]');
    assert.match(listener?.message ?? '', /expected a PEM file of CA certificates/);

    const upstream = join(pki.dir, 'upstream.yaml');
    writeFileSync(
      upstream,
      `upstreams:\n  app:\n    url: https://127.0.0.1:3443\n    tls:\n      ca: ${garbage}\nroutes:\n  - { path: /items, methods: [GET], upstream: app, auth: none }\n`,
    );
    const [up] = await refusal(upstream);
    assert.equal(up?.path, 'upstreams.app.tls.ca');

    const admin = configWith(
      '',
      `admin:\n  host: 127.0.0.1\n  port: 0\n  tls:\n    cert: ${leaf.certFile}\n    key: ${leaf.keyFile}\n    client_ca: ${garbage}`,
    );
    const [adminCa] = await refusal(admin);
    assert.equal(adminCa?.path, 'admin.tls.client_ca');
  });

  it('warns, and loads, when a file cannot be read now (check runs where the keys are not)', async () => {
    const missing = join(pki.dir, 'not-there.crt');
    const { warnings } = await loadConfig(configWith(listenerTls(missing, leaf.keyFile)), {
      env: { PORTCULLIS_DATA: pki.dir },
    });
    const warning = warnings.find((w) => w.path === 'listen.tls.certificates[0]');
    assert.match(warning?.message ?? '', /cannot read .*not-there\.crt \(ENOENT\) now/);
  });
});
