#!/usr/bin/env node
/**
 * The `portcullis` command. Exit codes: 0 success, 1 runtime failure,
 * 2 bad usage or an invalid config.
 */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, formatIssue, type LoadOptions, loadConfig } from '../config/load.js';
import { IssuerError } from '../issuer/errors.js';
import { createLogger } from '../log.js';
import { type Running, startGateway } from '../runtime.js';
import { completionScript } from './completion.js';
import { formatVersion, versionInfo } from './support.js';

/*
 * Only what `start` needs is imported up front. Every other subcommand (keys, audit, owasp, demo, …)
 * is imported when it is the one asked for: their modules and dependencies (the OWASP report's
 * OpenAPI bundler, the audit CLI's schemas, the demo's upstream, …) would otherwise be compiled
 * and kept in every running gateway, where they cost memory (RSS) and start-up time for nothing.
 * A failure to load one of them is an installation problem and is reported like any other error.
 */
const ROOT = new URL('../../', import.meta.url);
const DEMO_CONFIG = fileURLToPath(new URL('demo/portcullis.yaml', ROOT));

const HELP = `portcullis — an API security gateway

Usage:
  portcullis start [--config FILE]   run the gateway (default config: $PORTCULLIS_CONFIG or ./portcullis.yaml)
  portcullis check [--config FILE]   validate a config: errors (exit 2) and security warnings
  portcullis check --owasp [--format table|json|sarif] [--fail-on low|medium|high] [--config FILE]
                                     the OWASP API Security Top 10 (2023) per route: covered and open;
                                     exit 3 when a finding is at or above --fail-on (default high)
  portcullis demo                    run the gateway in front of the bundled demo API
  portcullis keys create --name N --scopes a,b [--expires 90d] [--tenant T]
  portcullis keys list | revoke ID | rotate ID [--overlap 24h]
                                     manage API keys (each takes --config FILE; default: the data folder)
  portcullis keys import --file keys.jsonl [--dry-run] [--skip-existing]
                                     bring in keys from another gateway (JSON Lines; stored hashed)
  portcullis clients create --name N --scopes a,b [--tenant T] | list | revoke ID
                                     manage OAuth clients of the built-in issuer (POST /oauth2/token)
  portcullis tokens revoke (--jti ID | --sub S [--issuer ISS] | --client ID | --issued-before TIME [--issuer ISS])
  portcullis tokens list             the kill switch: running gateways refuse the tokens within a second
  portcullis cert dev [--out DIR] [--force]
                                     make a local development CA and a localhost certificate (default DIR: $PORTCULLIS_DATA/tls)
  portcullis cert pin FILE           print the pin_sha256 of the certificates in FILE
  portcullis audit verify [--public-key FILE]   check the audit log's hash chain and signed checkpoints
  portcullis audit tail [-n 20] [--follow]      show the latest audit events
  portcullis audit search --principal ID --since 1h --decision deny …   find audit events
  portcullis alerts list [--since 24h] [--json]      alerts raised
  portcullis blocks list [--all] [--json] | add (--ip IP|--key KEY_ID|--principal ID) --for 1h [--status 429|403]
  portcullis blocks lift (ID|--ip IP|--key KEY_ID|--principal ID)
  portcullis explain --request "GET /users/42/orders" [--token T | --key K | --claims JSON]
                    [--header "Name: value"]… [--body TEXT] [--ip IP] [--json] [--config FILE]
                                     the decision trail for one request, from a dry run of the
                                     real pipeline; never calls the upstream
  portcullis admin tokens create --role viewer|operator|admin [--name N] | list | revoke ID
                                     admin tokens for the admin API on the admin listener (/admin/…)
  portcullis schema [--markdown]     print the config's JSON Schema (for editors), or its reference table
  portcullis completion bash|zsh     print a shell completion script (eval "$(portcullis completion bash)")
  portcullis --version | --help      the version, with the config schema, rule set and store schema versions

Environment:
  PORTCULLIS_PORT    overrides listen.port
  PORTCULLIS_ADMIN_PORT  the demo's admin port (default 9090), so two demos can run on one machine
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

async function load(file: string, options?: LoadOptions) {
  try {
    return await loadConfig(file, options);
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
  const { config, warnings } = await load(file, options);
  const logger = createLogger({ level: config.log.level, redact: config.log.redact });
  for (const w of warnings) logger.warn({ path: w.path, line: w.line }, w.message);
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
  if (config.listen.workers > 1 && cluster.isPrimary) {
    // The primary serves nothing: each worker runs this same command and loads the config itself.
    const { runPrimary } = await import('../cluster.js');
    const code = await runPrimary(config.listen.workers, logger, { rateLimitKeys: config.rateLimit.maxKeys });
    logger.info({ code }, 'every worker stopped');
    logger.flush();
    process.exit(code);
  }
  let running: Running;
  try {
    running = await startGateway(config, {
      logger,
      loadConfig: () => loadConfig(file, options).then((r) => r.config),
    });
  } catch (err) {
    // A known start-up problem (wrong master key, …) is reported without a stack trace.
    if (err instanceof IssuerError) logger.fatal({ code: err.code }, err.message);
    else logger.fatal({ err }, 'could not start');
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
    loadConfig(file, options).then(
      (next) =>
        running.reload(next.config).then(
          () => logger.info({ file }, 'configuration reloaded'),
          (err) => logger.error({ err }, 'reload failed; the previous configuration keeps serving'),
        ),
      (err) => {
        const issues = err instanceof ConfigError ? err.issues.map(formatIssue) : [(err as Error).message];
        logger.error({ issues }, 'invalid configuration on reload; the previous configuration keeps serving');
      },
    );
  });
  onReady?.(running);
}

type Subcommand = (
  args: string[],
  io: { out: (s: string) => void; err: (s: string) => void; env: NodeJS.ProcessEnv },
) => Promise<number>;

/** Subcommands that parse their own arguments, each imported only when it runs (`start` never loads them). */
const SUBCOMMANDS = new Map<string, () => Promise<Subcommand>>([
  ['keys', async () => (await import('../keys/cli.js')).runKeysCommand],
  ['clients', async () => (await import('../issuer/cli.js')).runClientsCommand],
  ['tokens', async () => (await import('../revocation/cli.js')).runTokensCommand],
  ['cert', async () => (await import('../tls/cli.js')).runCertCommand],
  ['alerts', async () => (await import('../alerts/index.js')).runAlertsCommand],
  ['blocks', async () => (await import('../alerts/index.js')).runBlocksCommand],
  ['admin', async () => (await import('../admin/tokens/cli.js')).runAdminCommand],
]);

async function main(argv: string[]): Promise<void> {
  // Subcommands with options of their own parse their arguments themselves.
  const io = { out, err: (s: string) => process.stderr.write(`${s}\n`), env: process.env };
  const subcommand = SUBCOMMANDS.get(argv[0] ?? '');
  if (subcommand !== undefined) process.exit(await (await subcommand())(argv.slice(1), io));
  if (argv[0] === 'completion') {
    const script = argv.length === 2 ? completionScript(argv[1]!) : undefined;
    if (script === undefined) fail('usage: portcullis completion bash|zsh');
    process.stdout.write(script);
    return;
  }
  if (argv[0] === 'audit') {
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    const { runAuditCommand } = await import('../audit/cli.js');
    process.exit(await runAuditCommand(argv.slice(1), { ...io, signal: stop.signal }));
  }
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
      markdown: { type: 'boolean' },
      request: { type: 'string' },
      token: { type: 'string' },
      key: { type: 'string' },
      claims: { type: 'string' },
      header: { type: 'string', multiple: true },
      body: { type: 'string' },
      ip: { type: 'string' },
      json: { type: 'boolean' },
      owasp: { type: 'boolean' },
      format: { type: 'string' },
      'fail-on': { type: 'string' },
    },
  });
  const [command] = positionals;
  if (values.version) return out(formatVersion(await versionInfo()));
  if (values.help || command === undefined || command === 'help') return out(HELP);
  switch (command) {
    case 'start':
      return run(configPath(values.config));
    case 'check': {
      const file = configPath(values.config);
      const { config, warnings, overrides, unroutedExtensions } = await load(file);
      if (unroutedExtensions.length > 0) {
        fail(
          `${unroutedExtensions.length} error(s) in ${file}:\n${unroutedExtensions.map((i) => `  ${formatIssue(i)}`).join('\n')}`,
        );
      }
      if (values.owasp) {
        const { parseOwaspFlags, runOwaspCheck } = await import('../owasp/cli.js');
        const flags = parseOwaspFlags(values.format, values['fail-on']);
        if (typeof flags === 'string') fail(`portcullis check --owasp: ${flags}`);
        const err = (s: string) => process.stderr.write(`${s}\n`);
        for (const w of warnings) err(`warning: ${formatIssue(w)}`);
        process.exit(await runOwaspCheck(config, flags, { out, err }, version()));
      }
      for (const o of overrides) out(`override: ${formatIssue(o)}`);
      for (const w of warnings) out(`warning: ${formatIssue(w)}`);
      const notes = [
        ...(overrides.length > 0 ? [`${overrides.length} override(s) of the API document`] : []),
        ...(warnings.length > 0 ? [`${warnings.length} warning(s)`] : []),
      ];
      out(`${file}: valid${notes.length > 0 ? `, ${notes.join(', ')}` : ''}`);
      return;
    }
    case 'explain':
      return explain(values);
    case 'schema': {
      if (values.markdown) return out((await import('../config/reference.js')).configReference());
      return out(JSON.stringify((await import('../config/schema.js')).ConfigSchema, null, 2));
    }
    case 'demo': {
      const [
        { startOrdersApi },
        { applyDemoAdminPort, demoAdminPort },
        demoTokens,
        tls,
        devCert,
        adminTokens,
      ] = await Promise.all([
        import('../demo/orders-api.js'),
        import('../demo/ports.js'),
        import('../demo/tokens.js'),
        import('../tls/cli.js'),
        import('../tls/dev-cert.js'),
        import('../admin/tokens/demo.js'),
      ]);
      const { DEMO_SECRET_ENV, DEMO_USERS, demoTokenSecret, signDemoToken } = demoTokens;
      demoAdminPort(process.env); // a bad PORTCULLIS_ADMIN_PORT fails before anything starts
      const dataDir = resolve(process.env.PORTCULLIS_DATA ?? 'data');
      const secret = demoTokenSecret(dataDir);
      process.env[DEMO_SECRET_ENV] = secret;
      const api = await startOrdersApi(Number(process.env.PORTCULLIS_DEMO_UPSTREAM_PORT ?? 0));
      // The demo serves HTTPS with a local development CA made on first start.
      const dev = await devCert.ensureDevCertificates(tls.defaultDevCertificateDir(process.env));
      const tokens = await Promise.all(DEMO_USERS.map((u) => signDemoToken(secret, u)));
      return run(
        values.config ?? DEMO_CONFIG,
        {
          patch: (raw) => {
            const upstreams = raw.upstreams as Record<string, { url: string }> | undefined;
            if (upstreams?.orders) upstreams.orders.url = `http://127.0.0.1:${api.port}`;
            const issuer = (raw.auth as { issuer?: { issuer: string } } | undefined)?.issuer;
            const port =
              process.env.PORTCULLIS_PORT ?? (raw.listen as { port?: number } | undefined)?.port ?? 8443;
            if (issuer) issuer.issuer = `https://localhost:${port}`;
            raw.listen ??= {};
            const listen = raw.listen as Record<string, unknown>;
            listen.tls ??= { certificates: [{ cert: dev.files.cert, key: dev.files.key }] };
            listen.http_redirect ??= { port: Number(process.env.PORTCULLIS_DEMO_HTTP_PORT ?? 8080) };
            applyDemoAdminPort(raw, process.env);
          },
        },
        (running) =>
          void adminTokens
            .issueDemoAdminToken(running, dataDir)
            .then((adminToken) =>
              printDemo(
                running.port,
                running.adminPort,
                running.redirectPort,
                tokens,
                dev.files.caCert,
                adminToken,
                running.admin?.tls === true,
              ),
            ),
      );
    }
    default:
      fail(`unknown command "${command}"\n\n${HELP}`);
  }
}

async function explain(values: {
  config?: string;
  request?: string;
  token?: string;
  key?: string;
  claims?: string;
  header?: string[];
  body?: string;
  ip?: string;
  json?: boolean;
}): Promise<void> {
  const m = /^([A-Z]+)\s+(\S+)$/.exec(values.request ?? '');
  if (!m) fail('explain needs --request "METHOD /path?query"');
  let claims: Record<string, unknown> | undefined;
  if (values.claims !== undefined) {
    try {
      claims = JSON.parse(values.claims) as Record<string, unknown>;
    } catch {
      fail('--claims must be a JSON object');
    }
  }
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const i = h.indexOf(':');
    if (i < 1) fail(`--header must be "Name: value", got "${h}"`);
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  const { config } = await load(configPath(values.config));
  const [{ openStore }, { createBruteForceGuard }, { buildAuth }, { explainRequest, formatExplanation }] =
    await Promise.all([
      import('../store/index.js'),
      import('../auth/brute-force.js'),
      import('../auth/build.js'),
      import('../authz/explain.js'),
    ]);
  const logger = createLogger({ level: 'silent' });
  const store = await openStore({ url: config.store.url, dataDir: config.store.dataDir });
  await store.migrate();
  const guard = createBruteForceGuard({ ...config.auth.bruteForce, enabled: false });
  const auth = await buildAuth(config, { logger, store, guard });
  try {
    const e = await explainRequest(
      config,
      { store, auth: auth.services },
      {
        method: m[1]!,
        target: m[2]!,
        headers,
        ...(values.token === undefined ? {} : { token: values.token }),
        ...(values.key === undefined ? {} : { key: values.key }),
        ...(claims === undefined ? {} : { claims }),
        ...(values.body === undefined ? {} : { body: values.body }),
        clientIp: values.ip ?? '127.0.0.1',
      },
    );
    out(values.json ? JSON.stringify(e) : formatExplanation(e));
  } finally {
    auth.close();
    await store.close();
  }
}

function printDemo(
  port: number,
  adminPort: number | undefined,
  redirectPort: number | undefined,
  tokens: string[],
  caFile: string,
  adminToken?: string,
  adminTls = false,
): void {
  const base = `https://localhost:${port}`;
  const rel = relative(process.cwd(), caFile);
  const ca = rel !== '' && !rel.startsWith('..') ? rel : caFile;
  const c = `curl -i --cacert ${ca}`;
  const [alice, bob, carol] = tokens;
  process.stderr.write(`
Portcullis is running on ${base} (HTTPS, local development CA: ${ca}), in front of the demo orders API.

Tokens for the demo users, as an identity provider would issue them (valid 24 h):
  export ALICE=${alice}   # user 1, tenant acme
  export BOB=${bob}   # user 2, tenant globex
  export CAROL=${carol}   # user 3, admin

Try:
  ${c} ${base}/public/catalog                                    # 200 over TLS, with HSTS
${redirectPort === undefined ? '' : `  curl -i http://localhost:${redirectPort}/public/catalog                           # 308: plain HTTP only redirects\n`}  ${c} ${base}/users/1/orders                                    # 401: no credentials
  ${c} -H "Authorization: Bearer $ALICE" ${base}/users/1/orders  # 200: alice's own orders
  ${c} -H "Authorization: Bearer $BOB" ${base}/users/1/orders    # 403: not bob's (BOLA stopped)
  ${c} -H "Authorization: Bearer $ALICE" ${base}/orders/ord_1001 # 200: alice's order
  ${c} -H "Authorization: Bearer $BOB" ${base}/orders/ord_1001   # 404: not bob's, decided on the upstream's answer
  ${c} -H "Authorization: Bearer $CAROL" ${base}/admin/users     # 200: admins only
  ${c} ${base}/echo/.claude/settings.json                        # 403: injection inspection (OWASP CRS)
  ${c} -H "Authorization: Bearer $ALICE" ${base}/admin/users     # 403
  ${c} ${base}/nope                                              # 404: not in the allow-list
  ${c} --path-as-is ${base}/public/../admin/users                # routed as /admin/users: 401
  KEY=$(npx portcullis keys create --name ci --scopes orders:read --tenant acme)
  ${c} -H "X-API-Key: $KEY" ${base}/tenants/acme/orders          # 200: an API key of tenant acme
  npx portcullis clients create --name batch --scopes orders:read   # prints a client id and secret
  curl -s --cacert ${ca} -u "CLIENT_ID:SECRET" -d grant_type=client_credentials ${base}/oauth2/token
${adminPort === undefined ? '' : `  curl -i http://127.0.0.1:${adminPort}/readyz                                  # readiness (admin listener)\n`}${adminPort === undefined || adminToken === undefined ? '' : `  export ADMIN=${adminToken}   # an admin token for the admin API, shown once\n  curl -s -H "Authorization: Bearer $ADMIN" http://127.0.0.1:${adminPort}/admin/routes   # the admin API (OpenAPI: /admin/openapi.json)\n`}${
  adminPort === undefined || adminToken === undefined
    ? ''
    : `
Web console: ${adminTls ? 'https' : 'http'}://127.0.0.1:${adminPort}/
  Log in with this one-time admin token (role admin; it is not shown again):
  ${adminToken}
`
}
Stop with Ctrl-C.
`);
}

main(process.argv.slice(2)).catch((err) => {
  fail(`portcullis: ${(err as Error).message}`, err instanceof TypeError ? 2 : 1);
});
