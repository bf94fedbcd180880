#!/usr/bin/env node
/**
 * The `portcullis` command. Exit codes: 0 success, 1 runtime failure,
 * 2 bad usage or an invalid config.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, formatIssue, type LoadOptions, loadConfig } from '../config/load.js';
import { configReference } from '../config/reference.js';
import { ConfigSchema } from '../config/schema.js';
import { startOrdersApi } from '../demo/orders-api.js';
import { runKeysCommand } from '../keys/cli.js';
import { createLogger } from '../log.js';
import { type Running, startGateway } from '../runtime.js';

const ROOT = new URL('../../', import.meta.url);
const DEMO_CONFIG = fileURLToPath(new URL('demo/portcullis.yaml', ROOT));

const HELP = `portcullis — an API security gateway

Usage:
  portcullis start [--config FILE]   run the gateway (default config: $PORTCULLIS_CONFIG or ./portcullis.yaml)
  portcullis check [--config FILE]   validate a config: errors (exit 2) and security warnings
  portcullis demo                    run the gateway in front of the bundled demo API
  portcullis keys create --name N --scopes a,b [--expires 90d] [--tenant T]
  portcullis keys list | revoke ID | rotate ID [--overlap 24h]
                                     manage API keys (each takes --config FILE; default: the data folder)
  portcullis schema [--markdown]     print the config's JSON Schema (for editors), or its reference table
  portcullis --version | --help

Environment:
  PORTCULLIS_PORT    overrides listen.port
  PORTCULLIS_DATA    the data folder (default ./data): the embedded SQLite store lives there
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { version: string };
  return pkg.version;
}

function out(text: string): void {
  process.stdout.write(`${text}\n`);
}

function fail(text: string, code = 2): never {
  process.stderr.write(`${text}\n`);
  process.exit(code);
}

function configPath(value: string | undefined): string {
  return value ?? process.env.PORTCULLIS_CONFIG ?? 'portcullis.yaml';
}

function load(file: string, options?: LoadOptions) {
  try {
    return loadConfig(file, options);
  } catch (err) {
    if (err instanceof ConfigError) {
      fail(
        `${err.issues.length} error(s) in ${file}:\n${err.issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`,
      );
    }
    throw err;
  }
}

async function run(file: string, options?: LoadOptions, onReady?: (running: Running) => void): Promise<void> {
  const { config, warnings } = load(file, options);
  const logger = createLogger({ level: config.log.level, redact: config.log.redact });
  for (const w of warnings) logger.warn({ path: w.path, line: w.line }, w.message);
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
  let running: Running;
  try {
    running = await startGateway(config, { logger });
  } catch (err) {
    logger.fatal({ err }, 'could not start');
    logger.flush();
    fail(`portcullis: could not start: ${(err as Error).message}`, 1);
  }
  const stop = (signal: string) => {
    logger.info({ signal }, 'draining and stopping');
    running.close().then(
      () => {
        logger.info('stopped');
        logger.flush();
        process.exit(0);
      },
      (err) => {
        logger.error({ err }, 'unclean stop');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    try {
      const next = loadConfig(file, options);
      running.reload(next.config).then(
        () => logger.info({ file }, 'configuration reloaded'),
        (err) => logger.error({ err }, 'reload failed; the previous configuration keeps serving'),
      );
    } catch (err) {
      const issues = err instanceof ConfigError ? err.issues.map(formatIssue) : [(err as Error).message];
      logger.error({ issues }, 'invalid configuration on reload; the previous configuration keeps serving');
    }
  });
  onReady?.(running);
}

async function main(argv: string[]): Promise<void> {
  // Subcommands with options of their own parse their arguments themselves.
  const io = { out, err: (s: string) => process.stderr.write(`${s}\n`), env: process.env };
  if (argv[0] === 'keys') process.exit(await runKeysCommand(argv.slice(1), io));
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
      markdown: { type: 'boolean' },
    },
  });
  const [command] = positionals;
  if (values.version) return out(version());
  if (values.help || command === undefined || command === 'help') return out(HELP);
  switch (command) {
    case 'start':
      return run(configPath(values.config));
    case 'check': {
      const file = configPath(values.config);
      const { warnings } = load(file);
      for (const w of warnings) out(`warning: ${formatIssue(w)}`);
      out(`${file}: valid${warnings.length > 0 ? `, ${warnings.length} warning(s)` : ''}`);
      return;
    }
    case 'schema':
      return out(values.markdown ? configReference() : JSON.stringify(ConfigSchema, null, 2));
    case 'demo': {
      const api = await startOrdersApi(Number(process.env.PORTCULLIS_DEMO_UPSTREAM_PORT ?? 0));
      return run(
        values.config ?? DEMO_CONFIG,
        {
          patch: (raw) => {
            const upstreams = raw.upstreams as Record<string, { url: string }> | undefined;
            if (upstreams?.orders) upstreams.orders.url = `http://127.0.0.1:${api.port}`;
          },
        },
        (running) => printDemo(running.port, running.adminPort),
      );
    }
    default:
      fail(`unknown command "${command}"\n\n${HELP}`);
  }
}

function printDemo(port: number, adminPort: number | undefined): void {
  const base = `http://127.0.0.1:${port}`;
  process.stderr.write(`
Portcullis is running in front of the demo orders API.

Try:
  curl -i ${base}/public/catalog                 # allowed: a public route
  curl -i ${base}/users/1/orders                 # a user's orders
  curl -i ${base}/nope                           # 404: not in the allow-list
  curl -i -X PUT ${base}/orders/ord_1001         # 405: method not allowed, with Allow
  curl -i --path-as-is ${base}/public/../admin/users   # normalised to /admin/users before routing
  curl -i ${base}/users/1%2f..                   # 400: encoded slash
${adminPort === undefined ? '' : `  curl -i http://127.0.0.1:${adminPort}/readyz     # readiness (admin listener)\n`}
Stop with Ctrl-C.
`);
}

main(process.argv.slice(2)).catch((err) => {
  fail(`portcullis: ${(err as Error).message}`, err instanceof TypeError ? 2 : 1);
});
