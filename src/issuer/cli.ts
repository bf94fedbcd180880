/**
 * `portcullis clients …`: register, list and revoke the confidential clients
 * of the built-in issuer.
 */
import { parseArgs } from 'node:util';
import { auditCliAct } from '../audit/cli-events.js';
import {
  commandConfigFile,
  defaultDataDir,
  formatConfigError,
  formatTable,
  UsageError,
} from '../cli/support.js';
import { ConfigError, loadConfig } from '../config/load.js';
import type { GatewayConfig, IssuerSettings } from '../config/types.js';
import { openStore, type Store } from '../store/index.js';
import { ClientRepository, isScopeToken, type OAuthClient } from './clients.js';
import { IssuerError } from './errors.js';

/** Where the command writes, and the environment it reads (`PORTCULLIS_DATA`). */
export interface ClientsCommandIo {
  out(s: string): void;
  err(s: string): void;
  env: NodeJS.ProcessEnv;
}

const USAGE = `Usage:
  portcullis clients create --name NAME --scopes a,b [--tenant T] [--json] [--config FILE]
  portcullis clients list [--json] [--config FILE]
  portcullis clients revoke ID [--config FILE]

Registers, lists and revokes the confidential clients of the built-in OAuth issuer
(POST /oauth2/token, client_credentials). With --config, the store of that config is
used; without it, the embedded SQLite database in $PORTCULLIS_DATA (default ./data).`;

/**
 * Runs `portcullis clients …`. `argv` is what follows `portcullis clients`
 * (a leading `clients` is accepted too).
 *
 * @returns the exit code: 0 done, 1 runtime failure (store unreachable,
 * unknown client), 2 usage error or invalid config.
 */
export async function runClientsCommand(argv: string[], io: ClientsCommandIo): Promise<number> {
  const args = argv[0] === 'clients' ? argv.slice(1) : argv;
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (err) {
    io.err(`portcullis clients: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  let store: Store | undefined;
  try {
    const plan = checkUsage(command, rest, values);
    let settings: IssuerSettings | undefined;
    let gatewayConfig: GatewayConfig | undefined;
    let dataDir = defaultDataDir(io.env);
    // Like every other command: --config, else $PORTCULLIS_CONFIG, else the embedded default.
    const configFile = commandConfigFile(values.config, io.env);
    if (configFile !== undefined) {
      const { config } = await loadConfig(configFile, { env: io.env });
      settings = config.auth.issuer;
      gatewayConfig = config;
      dataDir = config.store.dataDir;
      store = await openStore({ url: config.store.url, dataDir: config.store.dataDir });
      if (settings === undefined && command === 'create') {
        io.err(
          `warning: ${configFile} has no auth.issuer section: the gateway issues no tokens until it has one`,
        );
      }
    } else {
      store = await openStore({ dataDir });
    }
    await store.migrate();
    const db = store;
    const audit: Audit = async (action, target, detail) => {
      try {
        await auditCliAct(db, gatewayConfig, dataDir, action, target, detail);
      } catch (err) {
        io.err(`warning: ${action} ${target} was done but could not be audited: ${(err as Error).message}`);
      }
    };
    return await plan(new ClientRepository(store, { tokenTtlMs: settings?.tokenTtlMs }), io, settings, audit);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`portcullis clients: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.err(formatConfigError(err));
      return 2;
    }
    if (err instanceof IssuerError && err.code === 'issuer.invalid_client_input') {
      io.err(`portcullis clients: ${err.message}`);
      return 2;
    }
    io.err(`portcullis clients: ${(err as Error).message}`);
    return 1;
  } finally {
    await store?.close().catch(() => {});
  }
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      name: { type: 'string' },
      scopes: { type: 'string' },
      tenant: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

type Values = ReturnType<typeof parse>['values'];
/** Records an administrative act in the audit log. */
type Audit = (action: string, target: string, detail?: Record<string, string>) => Promise<void>;

type Plan = (
  clients: ClientRepository,
  io: ClientsCommandIo,
  settings: IssuerSettings | undefined,
  audit: Audit,
) => Promise<number>;

/** Checks the arguments before anything is opened, and returns what to run. */
function checkUsage(command: string | undefined, rest: string[], values: Values): Plan {
  const only = (allowed: (keyof Values)[]) => {
    for (const [key, value] of Object.entries(values)) {
      if (value !== undefined && key !== 'config' && !allowed.includes(key as keyof Values)) {
        throw new UsageError(`--${key} does not apply to "clients ${command}"`);
      }
    }
  };
  switch (command) {
    case 'create': {
      only(['name', 'scopes', 'tenant', 'json']);
      if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
      const { name, scopes, tenant, json } = values;
      if (name === undefined) throw new UsageError('--name is required');
      if (scopes === undefined) throw new UsageError('--scopes is required (comma-separated)');
      const list = scopes
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      if (list.length === 0) throw new UsageError('--scopes needs at least one scope');
      const bad = list.find((s) => !isScopeToken(s));
      if (bad !== undefined) {
        throw new UsageError(
          `scope ${JSON.stringify(bad.slice(0, 40))} is not a valid scope token: printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)`,
        );
      }
      return (clients, io, settings, audit) =>
        create(clients, io, settings, { name, scopes: list, tenant }, json === true, audit);
    }
    case 'list':
      only(['json']);
      if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
      return (clients, io) => list(clients, io, values.json === true);
    case 'revoke': {
      only([]);
      if (rest.length !== 1) throw new UsageError('revoke takes exactly one client id');
      const id = rest[0]!;
      return (clients, io, settings, audit) => revoke(clients, io, settings, id, audit);
    }
    case undefined:
      throw new UsageError('a subcommand is required: create, list or revoke');
    default:
      throw new UsageError(`unknown subcommand "${command}"`);
  }
}

async function create(
  clients: ClientRepository,
  io: ClientsCommandIo,
  settings: IssuerSettings | undefined,
  input: { name: string; scopes: string[]; tenant: string | undefined },
  json: boolean,
  audit: Audit,
): Promise<number> {
  const { client, secret } = await clients.create(input);
  await audit('client.created', client.id, { name: client.name, scopes: client.scopes.join(' ') });
  const tokenEndpoint = settings && `${settings.issuer}/oauth2/token`;
  if (json) {
    io.out(
      JSON.stringify(
        {
          ...describe(client),
          client_secret: secret,
          ...(tokenEndpoint ? { token_endpoint: tokenEndpoint } : {}),
        },
        null,
        2,
      ),
    );
    return 0;
  }
  io.out(
    [
      `Created client "${client.name}" with scopes: ${client.scopes.join(' ')}${client.tenant ? ` (tenant ${client.tenant})` : ''}`,
      '',
      `  client_id:     ${client.id}`,
      `  client_secret: ${secret}`,
      '',
      'Store the client secret now: it is shown only this once and cannot be recovered.',
      'Portcullis keeps only a hash of it; a lost secret means a new client.',
      ...(tokenEndpoint
        ? [
            '',
            `Token endpoint: ${tokenEndpoint} (grant_type=client_credentials, HTTP Basic or form credentials)`,
          ]
        : []),
    ].join('\n'),
  );
  return 0;
}

function describe(client: OAuthClient) {
  return {
    client_id: client.id,
    name: client.name,
    scopes: client.scopes,
    tenant: client.tenant ?? null,
    created_at: client.createdAt,
    revoked_at: client.revokedAt ?? null,
  };
}

async function list(clients: ClientRepository, io: ClientsCommandIo, json: boolean): Promise<number> {
  const all = await clients.list();
  if (json) {
    io.out(JSON.stringify(all.map(describe), null, 2));
    return 0;
  }
  if (all.length === 0) {
    io.out('No clients. Create one with: portcullis clients create --name NAME --scopes a,b');
    return 0;
  }
  const rows = [
    ['CLIENT ID', 'NAME', 'SCOPES', 'TENANT', 'CREATED', 'STATUS'],
    ...all.map((c) => [
      c.id,
      c.name,
      c.scopes.join(' '),
      c.tenant ?? '-',
      c.createdAt,
      c.revokedAt ? `revoked ${c.revokedAt}` : 'active',
    ]),
  ];
  io.out(formatTable(rows));
  return 0;
}

async function revoke(
  clients: ClientRepository,
  io: ClientsCommandIo,
  _settings: IssuerSettings | undefined,
  id: string,
  audit: Audit,
): Promise<number> {
  const outcome = await clients.revoke(id);
  if (outcome === 'revoked') await audit('client.revoked', id);
  if (outcome === 'not_found') {
    io.err(`portcullis clients: no client with id ${JSON.stringify(id.slice(0, 64))}`);
    return 1;
  }
  if (outcome === 'already_revoked') {
    io.out(`Client ${id} was already revoked.`);
    return 0;
  }
  io.out(
    `Revoked client ${id}: it gets no new tokens, and the tokens already issued to it are refused by running gateways within about a second.`,
  );
  return 0;
}
