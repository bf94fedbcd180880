/**
 * `portcullis admin tokens`: create, list and revoke the admin tokens that
 * authenticate calls to the admin API. The store and pepper come from
 * `--config FILE` (or `$PORTCULLIS_CONFIG`) as for `portcullis keys`.
 */
import { auditCliAct } from '../../audit/cli-events.js';
import {
  commandConfigFile,
  defaultDataDir,
  formatTable,
  formatTime,
  openMigratedStore,
  parseCommandArgs,
  reportCommandError,
  UsageError,
} from '../../cli/support.js';
import { loadConfig } from '../../config/load.js';
import type { GatewayConfig } from '../../config/types.js';
import { resolvePepper } from '../../keys/authenticator.js';
import type { Store } from '../../store/types.js';
import {
  ADMIN_ROLES,
  AdminTokenError,
  type AdminTokenStore,
  createAdminTokenStore,
  isAdminRole,
} from './store.js';

export interface AdminCommandIo {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
}

const USAGE = `Usage:
  portcullis admin tokens create --role viewer|operator|admin [--name NAME]
  portcullis admin tokens list [--json]
  portcullis admin tokens revoke ID

Admin tokens authenticate calls to the admin API (Authorization: Bearer …):
  viewer    reads everything (keys, blocks, revocations, alerts, routes, audit)
  operator  also manages API keys, blocks and token revocations
  admin     also manages admin tokens and reloads the configuration
Every command also takes --config FILE (default: $PORTCULLIS_CONFIG; without it,
SQLite and a generated pepper in $PORTCULLIS_DATA, default ./data).`;

/** Runs `portcullis admin …`; resolves to the exit code (0 done, 1 failure, 2 usage). */
export async function runAdminCommand(argv: string[], io: AdminCommandIo): Promise<number> {
  const args = argv[0] === 'admin' ? argv.slice(1) : argv;
  const [group, command, ...rest] = args;
  if (group === undefined || group === 'help' || group === '--help' || group === '-h') {
    io.out(USAGE);
    return 0;
  }
  let store: Store | undefined;
  try {
    if (group !== 'tokens') throw new UsageError(`unknown command "admin ${group}"`);
    const open = async (flag: string | undefined) => {
      const file = commandConfigFile(flag, io.env);
      let config: GatewayConfig | undefined;
      if (file !== undefined) config = (await loadConfig(file, { env: io.env })).config;
      const dataDir = config?.store.dataDir ?? defaultDataDir(io.env);
      store = await openMigratedStore({
        url: config?.store.url,
        dataDir,
        onError: (err) => io.err(`portcullis admin: store connection error: ${err.message}`),
      });
      const s = store;
      const tokens: AdminTokenStore = createAdminTokenStore(s, {
        pepper: () => resolvePepper(config?.auth.apiKeys, dataDir),
      });
      const audit = async (action: string, target: string, detail?: Record<string, string>) => {
        try {
          await auditCliAct(s, config, dataDir, action, target, detail);
        } catch (err) {
          io.err(`warning: ${action} ${target} was done but could not be audited: ${(err as Error).message}`);
        }
      };
      return { tokens, audit };
    };
    switch (command) {
      case 'create': {
        const { values, positionals } = parseCommandArgs(rest, {
          role: { type: 'string' },
          name: { type: 'string' },
        });
        if (values.help) return help(io);
        if (positionals.length > 0)
          throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
        if (!isAdminRole(values.role))
          throw new UsageError(`--role must be one of ${ADMIN_ROLES.join(', ')}`);
        const { tokens, audit } = await open(values.config);
        const { record, token } = await tokens.create({
          name: values.name ?? `${values.role} token`,
          role: values.role,
          createdBy: 'cli',
        });
        await audit('admin_token.created', record.id, { name: record.name, role: record.role });
        io.err(`Created admin token ${record.id} "${record.name}" (role ${record.role}).`);
        io.out(token);
        io.err('Store it now; it cannot be shown again. Send it as: Authorization: Bearer <token>');
        return 0;
      }
      case 'list': {
        const { values, positionals } = parseCommandArgs(rest, { json: { type: 'boolean' } });
        if (values.help) return help(io);
        if (positionals.length > 0)
          throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
        const { tokens } = await open(values.config);
        const records = await tokens.list();
        if (values.json) io.out(JSON.stringify(records.map(tokenJson), null, 2));
        else if (records.length === 0) io.out('No admin tokens.');
        else {
          io.out(
            formatTable([
              ['ID', 'NAME', 'ROLE', 'CREATED', 'BY', 'LAST USED', 'STATUS'],
              ...records.map((r) => [
                r.id,
                r.name,
                r.role,
                formatTime(r.createdAt),
                r.createdBy,
                formatTime(r.lastUsedAt),
                r.revokedAt === undefined ? 'active' : 'revoked',
              ]),
            ]),
          );
        }
        return 0;
      }
      case 'revoke': {
        const { values, positionals } = parseCommandArgs(rest, {});
        if (values.help) return help(io);
        if (positionals.length !== 1) throw new UsageError('admin tokens revoke takes exactly one token id');
        const { tokens, audit } = await open(values.config);
        const { record, alreadyRevoked } = await tokens.revoke(positionals[0]!);
        if (!alreadyRevoked)
          await audit('admin_token.revoked', record.id, { name: record.name, role: record.role });
        io.out(
          alreadyRevoked
            ? `${record.id} was already revoked at ${formatTime(record.revokedAt)}.`
            : `Revoked admin token ${record.id} "${record.name}"; the admin API refuses it from now on.`,
        );
        return 0;
      }
      default:
        throw new UsageError(
          command === undefined ? 'missing command' : `unknown command "admin tokens ${command}"`,
        );
    }
  } catch (err) {
    return reportCommandError(
      err,
      io,
      'admin',
      USAGE,
      (e) => e instanceof AdminTokenError && e.code === 'admin_tokens.invalid_input',
    );
  } finally {
    await store?.close().catch(() => {});
  }
}

function help(io: AdminCommandIo): number {
  io.out(USAGE);
  return 0;
}

/** A token as JSON: never its secret or digest. */
export function tokenJson(r: {
  id: string;
  name: string;
  role: string;
  createdAt: number;
  createdBy: string;
  revokedAt: number | undefined;
  lastUsedAt: number | undefined;
}) {
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  return {
    id: r.id,
    name: r.name,
    role: r.role,
    createdAt: iso(r.createdAt),
    createdBy: r.createdBy,
    revokedAt: iso(r.revokedAt),
    lastUsedAt: iso(r.lastUsedAt),
    status: r.revokedAt === undefined ? 'active' : 'revoked',
  };
}
