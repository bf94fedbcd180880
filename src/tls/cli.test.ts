import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCertCommand } from './cli.js';
import { devCertificateFiles, isDevelopmentCertificate, issueCertificate } from './dev-cert.js';
import { listenerSettings, type RunningListener, startListener, tlsGet } from './test-support/clients.js';
import { spkiSha256 } from './upstream-tls.js';

function io(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s), env }, out, err };
}

const hasCurl = (() => {
  try {
    execFileSync('curl', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('portcullis cert dev', () => {
  let dataDir: string;
  let files: ReturnType<typeof devCertificateFiles>;
  let running: RunningListener;
  let firstOutput: string;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'portcullis-cert-cli-'));
    const run = io({ PORTCULLIS_DATA: dataDir });
    assert.equal(await runCertCommand(['dev'], run.io), 0, run.err.join('\n'));
    firstOutput = run.out.join('\n');
    files = devCertificateFiles(join(dataDir, 'tls'));
    running = await startListener(
      listenerSettings([{ cert: files.cert, key: files.key, passphrase: undefined, names: undefined }]),
    );
  });

  after(async () => {
    await running?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('writes the CA and a localhost certificate into $PORTCULLIS_DATA/tls, keys readable by the owner only', () => {
    assert.equal(statSync(files.dir).mode & 0o777, 0o700);
    assert.equal(statSync(files.key).mode & 0o777, 0o600);
    assert.equal(statSync(files.caKey).mode & 0o777, 0o600);
    const leaf = new X509Certificate(readFileSync(files.cert));
    assert.equal(leaf.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(leaf.checkIssued(new X509Certificate(readFileSync(files.caCert))));
    assert.ok(
      isDevelopmentCertificate(leaf),
      'recognised as a development certificate (production refuses it)',
    );
  });

  it('prints the config lines and how to trust it with curl --cacert', () => {
    assert.match(firstOutput, new RegExp(`curl --cacert ${files.caCert} https://localhost`));
    assert.match(firstOutput, new RegExp(`- cert: ${files.cert}`));
  });

  it('a client trusting only the dev CA reaches the listener as localhost and as 127.0.0.1', async () => {
    const ca = readFileSync(files.caCert);
    assert.equal((await tlsGet({ port: running.port, ca, servername: 'localhost' })).status, 200);
    assert.equal((await tlsGet({ port: running.port, ca, host: '127.0.0.1' })).status, 200);
  });

  it('a client that does not trust the dev CA refuses the listener', async () => {
    await assert.rejects(tlsGet({ port: running.port, servername: 'localhost' }), {
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      message: 'unable to verify the first certificate',
    });
  });

  it('curl --cacert, as printed, gets through', { skip: !hasCurl && 'curl is not installed' }, async () => {
    const status = await new Promise<string>((resolve, reject) =>
      execFile(
        'curl',
        [
          '-sS',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--cacert',
          files.caCert,
          `https://localhost:${running.port}/`,
        ],
        { timeout: 10_000 },
        (err, stdout) => (err ? reject(err) : resolve(stdout)),
      ),
    );
    assert.equal(status, '200');
  });

  it('the dev CA cannot vouch for any other name, even with its own key', async () => {
    const ca = { cert: readFileSync(files.caCert, 'utf8'), key: readFileSync(files.caKey, 'utf8') };
    const forged = await issueCertificate({
      ca,
      commonName: 'bank.example',
      dns: ['bank.example'],
      usage: 'server',
      days: 5,
    });
    const forgedDir = mkdtempSync(join(tmpdir(), 'portcullis-forged-'));
    try {
      const { writeFileSync } = await import('node:fs');
      writeFileSync(join(forgedDir, 'f.crt'), forged.cert);
      writeFileSync(join(forgedDir, 'f.key'), forged.key, { mode: 0o600 });
      const evil = await startListener(
        listenerSettings([
          {
            cert: join(forgedDir, 'f.crt'),
            key: join(forgedDir, 'f.key'),
            passphrase: undefined,
            names: undefined,
          },
        ]),
      );
      try {
        await assert.rejects(
          tlsGet({ port: evil.port, ca: ca.cert, servername: 'bank.example' }),
          /permitted subtree violation/,
        );
      } finally {
        await evil.close();
      }
    } finally {
      rmSync(forgedDir, { recursive: true, force: true });
    }
  });

  it('run again, keeps the CA and the certificate; --force renews only the certificate', async () => {
    const ca = readFileSync(files.caCert, 'utf8');
    const cert = readFileSync(files.cert, 'utf8');
    const again = io({ PORTCULLIS_DATA: dataDir });
    assert.equal(await runCertCommand(['dev'], again.io), 0);
    assert.match(again.out.join('\n'), /Kept the development CA/);
    assert.equal(readFileSync(files.cert, 'utf8'), cert);
    const forced = io();
    assert.equal(await runCertCommand(['dev', '--out', files.dir, '--force'], forced.io), 0);
    assert.equal(readFileSync(files.caCert, 'utf8'), ca);
    assert.notEqual(readFileSync(files.cert, 'utf8'), cert);
  });

  it('cert pin prints the pin_sha256 of a certificate file', async () => {
    const run = io();
    assert.equal(await runCertCommand(['pin', files.cert], run.io), 0);
    assert.equal(run.out[0]!.split('  ')[0], spkiSha256(new X509Certificate(readFileSync(files.cert))));
  });

  it('answers bad usage with exit code 2 and the usage', async () => {
    for (const argv of [[], ['nope'], ['dev', 'extra'], ['pin'], ['dev', '--bogus']]) {
      const run = io();
      assert.equal(await runCertCommand(argv, run.io), 2, argv.join(' '));
      assert.match([...run.out, ...run.err].join('\n'), /Usage:/);
    }
  });
});
