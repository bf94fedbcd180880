/**
 * What a started gateway keeps in memory: the modules of features its config leaves off are not
 * loaded (they are imported when the config turns them on). Each case starts the real command in
 * a child process with a probe that records every module loaded (ESM through a loader hook,
 * CommonJS from the require cache, Node's built-ins from `process.moduleLoadList`).
 *
 * (node:http2 is not among them: undici loads it in every process.)
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';

const MAIN = new URL('./main.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'portcullis-start-memory-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const HOOKS = join(dir, 'hooks.mjs');
writeFileSync(
  HOOKS,
  `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(process.env.PROBE_FILE, url + '\\n');
  return next(url, context);
}
`,
);
const PROBE = join(dir, 'probe.mjs');
writeFileSync(
  PROBE,
  `import { register, createRequire } from 'node:module';
import { appendFileSync, writeFileSync } from 'node:fs';
register(${JSON.stringify(pathToFileURL(HOOKS).href)});
process.on('SIGUSR2', () => {
  const require = createRequire(import.meta.url);
  appendFileSync(process.env.PROBE_FILE, [...Object.keys(require.cache), ...process.moduleLoadList].join('\\n') + '\\n');
  writeFileSync(process.env.PROBE_FILE + '.done', 'done');
});
`,
);

interface Probe {
  modules: string[];
}

/** Starts `portcullis start` on `config`, makes some garbage through it, and reads the probe. */
async function startAndProbe(name: string, config: string): Promise<Probe> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const file = join(dir, `${name}.yaml`);
  const probeFile = join(dir, `${name}.probe`);
  writeFileSync(file, `listen:\n  host: 127.0.0.1\n  port: ${port}\n${config}`);
  let child: ChildProcess | undefined;
  try {
    child = spawn(process.execPath, ['--import', 'tsx', '--import', PROBE, MAIN, 'start', '--config', file], {
      env: {
        ...process.env,
        PORTCULLIS_DATA: join(dir, name),
        PROBE_FILE: probeFile,
        PORTCULLIS_MAX_SEMI_SPACE_MB: '',
      },
    });
    let output = '';
    child.stdout!.on('data', (c) => {
      output += c;
    });
    child.stderr!.on('data', (c) => {
      output += c;
    });
    await waitFor(
      () => output.includes('portcullis listening'),
      () => output,
    );
    child.kill('SIGUSR2');
    await waitFor(
      () => {
        try {
          readFileSync(`${probeFile}.done`, 'utf8');
          return true;
        } catch {
          return false;
        }
      },
      () => output,
    );
    return { modules: readFileSync(probeFile, 'utf8').split('\n') };
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
  }
}

async function waitFor(ok: () => boolean, output: () => string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`the gateway did not get there; its output:\n${output()}`);
}

const loads = (modules: string[], pattern: RegExp) => modules.some((m) => pattern.test(m));

/** Modules of features a config can leave off, each with the pattern that finds it loaded. */
const OPTIONAL = {
  // The SDK and exporter; the API package alone is loaded by prom-client, for exemplars.
  'the OpenTelemetry SDK':
    /node_modules\/@opentelemetry\/(sdk-trace-base|exporter-trace-otlp-http|resources)\//,
  'the trace sink': /src\/telemetry\/traces\.ts$/,
  ioredis: /node_modules\/ioredis\//,
  'the admin API and console': /src\/admin\/(api|console)\//,
  'the keys and OWASP subcommands': /src\/(keys\/cli|owasp\/cli)\.ts$/,
  // Its HSTS header value is what every route needs; it lives apart (tls/types.ts).
  'the TLS listener': /src\/tls\/listener\.ts$/,
};
/** Not turned on by the full config below (subcommands never run in `start`; TLS needs certificates). */
const NOT_IN_FULL = new Set(['the keys and OWASP subcommands', 'the TLS listener']);

describe('a started gateway', () => {
  let plain: Probe;
  let full: Probe;

  before(async () => {
    const upstream = 'upstreams:\n  app:\n    url: http://127.0.0.1:9\n';
    const route = 'routes:\n  - path: /one\n    methods: [GET]\n    upstream: app\n    auth: none\n';
    plain = await startAndProbe('plain', `admin:\n  enabled: false\n${upstream}${route}`);
    full = await startAndProbe(
      'full',
      `admin:\n  enabled: true\n  host: 127.0.0.1\n  port: 0\n${upstream}${route}` +
        'telemetry:\n  traces:\n    enabled: true\n    endpoint: http://127.0.0.1:9/v1/traces\n' +
        'rate_limit:\n  backend: redis\n  redis:\n    url: redis://127.0.0.1:9\n    on_failure: fail-open\n    expected_instances: 1\n',
    );
  });

  for (const [what, pattern] of Object.entries(OPTIONAL)) {
    if (NOT_IN_FULL.has(what)) continue;
    it(`loads ${what} when its config turns it on`, () => {
      assert.ok(loads(full.modules, pattern), `${pattern} not among the modules loaded`);
    });
  }

  for (const [what, pattern] of Object.entries(OPTIONAL)) {
    it(`does not load ${what} when its config leaves it off`, () => {
      assert.deepEqual(
        plain.modules.filter((m) => pattern.test(m)),
        [],
      );
    });
  }
});
