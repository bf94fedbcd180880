/**
 * `portcullis keys`: create, list, revoke and rotate API keys.
 *
 * The store and pepper come from `--config FILE` (or `$PORTCULLIS_CONFIG`),
 * as the gateway started with that config would use them; without either,
 * from the embedded default the demo (`npm start`) runs on: SQLite and a
 * generated pepper in `$PORTCULLIS_DATA` (default `./data`). A key made right
 * after the quick start therefore works against the running demo.
 */
import { readFileSync } from 'node:fs';
import { createAuditLog } from '../audit/audit-log.js';
import { auditCliAct } from '../audit/cli-events.js';
import { compileAudit } from '../audit/schema.js';
import { resolveAuditSigner } from '../audit/signing.js';
import {
  commandConfigFile,
  defaultDataDir,
  formatTable,
  formatTime,
  openMigratedStore,
  parseCommandArgs,
  parseDurationFlag,
  reportCommandError,
  UsageError,
} from '../cli/support.js';
import { loadConfig } from '../config/load.js';
import type { ApiKeySettings, GatewayConfig } from '../config/types.js';
import { recordRevocation } from '../revocation/feed.js';
import type { Store } from '../store/index.js';
import { resolvePepper } from './authenticator.js';
import { parseImportFile, storeImportedKeys } from './import.js';
import {
  ApiKeyError,
  type ApiKeyRecord,
  type ApiKeyStore,
  apiKeyJson,
  apiKeyStatus,
  createApiKeyStore,
} from './store.js';

/** Where `runKeysCommand` writes (each call is one line or block, without the final newline) and reads its environment. */
export interface KeysCommandIo {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
}

const USAGE = `Usage:
  portcullis keys create --name NAME --scopes a,b [--expires 90d] [--tenant T] [--routes r1,r2]
  portcullis keys list [--json]
  portcullis keys revoke ID
  portcullis keys rotate ID [--overlap 24h] [--expires 90d]
  portcullis keys import --file keys.jsonl [--dry-run] [--skip-existing]

keys import brings in keys from another system, one JSON object a line:
  {"key": "…", "name": "billing", "scopes": ["orders:read"], "tenant": "acme", "expiry": "2027-01-31T00:00:00Z", "routes": ["list-orders"]}
(tenant, expiry and routes may be left out or null). Only a keyed hash of each key is
stored. One bad line imports nothing; a key already imported fails the import
unless --skip-existing. The gateway accepts imported keys with
auth.api_keys.imported_keys: true.

Every command also takes --config FILE: use that config's store and
auth.api_keys (default: $PORTCULLIS_CONFIG; without it, SQLite and a generated
pepper in $PORTCULLIS_DATA, default ./data, as the demo uses).
Durations: 30s, 15m, 24h, 90d. A rotated key's successor gets the same
lifetime unless --expires says otherwise. --routes (and "routes" in an import
file) restricts a key to the named routes (routes[].name); elsewhere it is
refused with 401 like an invalid credential.`;

const DEFAULT_HEADER = 'x-api-key';
const DEFAULT_CACHE_TTL = '30s';
const DEFAULT_OVERLAP = '24h';
const MAX_DURATION = '36500d';

interface Context {
  store: Store;
  /** Records an administrative act in the audit log; warns when it cannot. */
  audit(action: string, target: string, detail?: Record<string, string>): Promise<void>;
  /** Records many acts at once (an import): one audit writer, batched, instead of one per act. */
  auditAll(
    acts: ReadonlyArray<{ action: string; target: string; detail: Record<string, string> }>,
  ): Promise<void>;
  /** The repository; `forNewKeys` warns when the config will not accept the keys made. */
  keys(forNewKeys?: boolean): ApiKeyStore;
  /** The pepper the gateway keys digests with (generated on first use for the embedded default). */
  pepper(): string;
  settings: ApiKeySettings | undefined;
  /** The config file, when one is used. */
  file: string | undefined;
}

/** Audit events written by one audit writer at most (below the default `audit.max_queue`). */
const AUDIT_CHUNK = 10_000;
/** Problems listed at most for a bad import file. */
const MAX_LISTED_PROBLEMS = 50;

function duration(flag: string, text: string, allowZero: boolean): number {
  return parseDurationFlag(flag, text, { max: MAX_DURATION, allowZero });
}

function onlyId(positionals: string[], command: string): string {
  if (positionals.length !== 1) throw new UsageError(`keys ${command} takes exactly one key id`);
  return positionals[0]!;
}

function commaList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function describeRecord(record: ApiKeyRecord): string {
  const parts = [`scopes: ${record.scopes.join(', ') || '(none)'}`];
  if (record.tenant !== undefined) parts.push(`tenant: ${record.tenant}`);
  if (record.routes !== undefined) parts.push(`routes: ${record.routes.join(', ')}`);
  parts.push(record.expiresAt === undefined ? 'no expiry' : `expires ${formatTime(record.expiresAt)}`);
  return `${record.id} "${record.name}" (${parts.join('; ')})`;
}

/**
 * Runs `portcullis keys …`. `argv` is what follows `keys` (a leading `keys`
 * is skipped too). Resolves to the exit code: 0 success, 1 runtime failure
 * (unknown key, store unreachable), 2 bad usage or an invalid config.
 */
export async function runKeysCommand(argv: string[], io: KeysCommandIo): Promise<number> {
  const args = argv[0] === 'keys' ? argv.slice(1) : argv;
  const [command, ...rest] = args;
  if (command === 'help' || command === '--help' || command === '-h') {
    io.out(USAGE);
    return 0;
  }
  let context: Context | undefined;
  try {
    switch (command) {
      case 'create': {
        const { values, positionals } = parseCommandArgs(rest, {
          name: { type: 'string' },
          scopes: { type: 'string' },
          expires: { type: 'string' },
          tenant: { type: 'string' },
          routes: { type: 'string' },
        });
        if (values.help) return help(io);
        if (positionals.length > 0)
          throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
        if (values.name === undefined) throw new UsageError('keys create needs --name NAME');
        if (values.scopes === undefined) throw new UsageError('keys create needs --scopes a,b');
        const scopes = commaList(values.scopes);
        if (scopes.length === 0) throw new UsageError('--scopes needs at least one scope');
        const routes = values.routes === undefined ? undefined : commaList(values.routes);
        if (routes?.length === 0) throw new UsageError('--routes needs at least one route name');
        const lifetime =
          values.expires === undefined ? undefined : duration('expires', values.expires, false);
        context = await open(values.config, io);
        const { record, key } = await context.keys(true).create({
          name: values.name,
          scopes,
          tenant: values.tenant,
          expiresAt: lifetime === undefined ? undefined : Date.now() + lifetime,
          routes,
        });
        await context.audit('key.created', record.id, { name: record.name, scopes: record.scopes.join(' ') });
        io.err(`Created ${describeRecord(record)} in ${context.store.location}.`);
        io.out(key);
        io.err(
          `Store it now; it cannot be shown again. Send it in the ${context.settings?.header ?? DEFAULT_HEADER} header.`,
        );
        return 0;
      }
      case 'list': {
        const { values, positionals } = parseCommandArgs(rest, { json: { type: 'boolean' } });
        if (values.help) return help(io);
        if (positionals.length > 0)
          throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
        context = await open(values.config, io);
        const records = await context.keys().list();
        const now = Date.now();
        if (values.json) {
          const json = records.map((r) => apiKeyJson(r, now));
          io.out(JSON.stringify(json, null, 2));
        } else if (records.length === 0) {
          io.out('No API keys.');
        } else {
          io.out(
            formatTable([
              ['ID', 'NAME', 'SCOPES', 'TENANT', 'ROUTES', 'CREATED', 'EXPIRES', 'LAST USED', 'STATUS'],
              ...records.map((r) => [
                r.id,
                r.name,
                r.scopes.join(','),
                r.tenant ?? '-',
                r.routes?.join(',') ?? '*',
                formatTime(r.createdAt),
                formatTime(r.expiresAt),
                formatTime(r.lastUsedAt),
                r.replacedBy === undefined
                  ? apiKeyStatus(r, now)
                  : `${apiKeyStatus(r, now)} → ${r.replacedBy}`,
              ]),
            ]),
          );
        }
        return 0;
      }
      case 'revoke': {
        const { values, positionals } = parseCommandArgs(rest, {});
        if (values.help) return help(io);
        const id = onlyId(positionals, 'revoke');
        context = await open(values.config, io);
        const { record, alreadyRevoked } = await context.keys().revoke(id);
        if (!alreadyRevoked) {
          // Running gateways drop the cached key within a second (the kill switch's feed).
          await recordRevocation(context.store, {
            kind: 'key',
            subject: record.id,
            expiresAt: Date.now() + KEY_SIGNAL_TTL_MS,
            actor: 'cli',
            reason: 'key revoked',
          });
          await context.audit('key.revoked', record.id);
        }
        io.out(
          alreadyRevoked
            ? `${record.id} was already revoked at ${formatTime(record.revokedAt)}.`
            : `Revoked ${record.id} "${record.name}". ${propagation(context)}`,
        );
        return 0;
      }
      case 'rotate': {
        const { values, positionals } = parseCommandArgs(rest, {
          overlap: { type: 'string' },
          expires: { type: 'string' },
        });
        if (values.help) return help(io);
        const id = onlyId(positionals, 'rotate');
        const overlapMs = duration('overlap', values.overlap ?? DEFAULT_OVERLAP, true);
        const lifetime =
          values.expires === undefined ? undefined : duration('expires', values.expires, false);
        context = await open(values.config, io);
        const { previous, next, key } = await context
          .keys(true)
          .rotate(
            id,
            lifetime === undefined ? { overlapMs } : { overlapMs, expiresAt: Date.now() + lifetime },
          );
        await context.audit('key.rotated', previous.id, { successor: next.id });
        io.err(`Rotated ${previous.id} → ${describeRecord(next)}.`);
        io.out(key);
        io.err(
          `Store it now; it cannot be shown again. ${previous.id} keeps working until ${formatTime(previous.expiresAt)}, then stops. ${propagation(context)}`,
        );
        return 0;
      }
      case 'import': {
        const { values, positionals } = parseCommandArgs(rest, {
          file: { type: 'string' },
          'dry-run': { type: 'boolean' },
          'skip-existing': { type: 'boolean' },
        });
        if (values.help) return help(io);
        if (positionals.length > 0)
          throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
        if (values.file === undefined) throw new UsageError('keys import needs --file keys.jsonl');
        let text: string;
        try {
          text = readFileSync(values.file, 'utf8');
        } catch (err) {
          throw new UsageError(
            `cannot read ${values.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
          );
        }
        context = await open(values.config, io);
        return await importKeys(context, text, values.file, {
          dryRun: values['dry-run'] === true,
          skipExisting: values['skip-existing'] === true,
          io,
        });
      }
      default:
        throw new UsageError(command === undefined ? 'missing command' : `unknown command "keys ${command}"`);
    }
  } catch (err) {
    return report(err, io);
  } finally {
    await context?.store.close().catch(() => {});
  }
}

/**
 * Checks and stores an import file's keys, all or nothing. Never prints or
 * audits a key, a line's text or anything but line numbers, ids and names.
 */
async function importKeys(
  context: Context,
  text: string,
  file: string,
  options: { dryRun: boolean; skipExisting: boolean; io: KeysCommandIo },
): Promise<number> {
  const { io } = options;
  const { entries, problems } = parseImportFile(text, context.pepper());
  if (problems.length > 0) {
    for (const p of problems.slice(0, MAX_LISTED_PROBLEMS)) io.err(`${file}:${p.line}: ${p.message}`);
    if (problems.length > MAX_LISTED_PROBLEMS) {
      io.err(`… and ${problems.length - MAX_LISTED_PROBLEMS} more`);
    }
    io.err(`Nothing imported: ${problems.length} bad line(s) in ${file}.`);
    return 2;
  }
  if (entries.length === 0) {
    io.err(`Nothing imported: ${file} has no keys.`);
    return 2;
  }
  if (context.settings?.importedKeys !== true) {
    io.err(
      `warning: ${context.file ?? 'the embedded default config'} does not set auth.api_keys.imported_keys: true: the gateway refuses imported keys until it does.`,
    );
  }
  if (options.dryRun) {
    io.out(`${file}: ${entries.length} key(s) can be imported (dry run: nothing stored).`);
    return 0;
  }
  const { imported, skipped, existing } = await storeImportedKeys(context.store, entries, {
    skipExisting: options.skipExisting,
  });
  if (existing.length > 0) {
    for (const e of existing.slice(0, MAX_LISTED_PROBLEMS)) {
      io.err(`${file}:${e.line}: this key is already stored, as ${e.id}`);
    }
    io.err(
      `Nothing imported: ${existing.length} key(s) already stored (--skip-existing imports the others).`,
    );
    return 1;
  }
  await context.auditAll(
    imported.map((e) => ({
      action: 'key.imported',
      target: e.id,
      detail: { name: e.name, scopes: e.scopes.join(' '), line: String(e.line) },
    })),
  );
  if (imported.length > 0) {
    io.out(
      formatTable([
        ['LINE', 'ID', 'NAME', 'EXPIRES'],
        ...imported.map((e) => [String(e.line), e.id, e.name, formatTime(e.expiresAt)]),
      ]),
    );
  }
  io.err(
    `Imported ${imported.length} key(s) from ${file} into ${context.store.location}${skipped.length > 0 ? `; skipped ${skipped.length} already stored` : ''}. Only their keyed hashes are stored.`,
  );
  return 0;
}

function help(io: KeysCommandIo): number {
  io.out(USAGE);
  return 0;
}

function propagation(context: Context): string {
  const ttl = context.settings === undefined ? DEFAULT_CACHE_TTL : `${context.settings.cacheTtlMs / 1000}s`;
  return `Running gateways drop the key within about a second (at the latest within ${ttl}, their key cache ttl).`;
}

/** How long a "key revoked" signal stays in the revocation feed. */
const KEY_SIGNAL_TTL_MS = 60 * 60_000;

function report(err: unknown, io: KeysCommandIo): number {
  return reportCommandError(
    err,
    io,
    'keys',
    USAGE,
    (e) => e instanceof ApiKeyError && e.code === 'keys.invalid_input',
  );
}

async function open(configFile: string | undefined, io: KeysCommandIo): Promise<Context> {
  const file = commandConfigFile(configFile, io.env);
  let url: string | undefined;
  let dataDir: string;
  let settings: ApiKeySettings | undefined;
  let gatewayConfig: GatewayConfig | undefined;
  if (file === undefined) {
    dataDir = defaultDataDir(io.env);
  } else {
    const { config } = await loadConfig(file, { env: io.env });
    url = config.store.url;
    dataDir = config.store.dataDir;
    settings = config.auth.apiKeys;
    gatewayConfig = config;
  }
  const store = await openMigratedStore({
    url,
    dataDir,
    onError: (err) => io.err(`portcullis keys: store connection error: ${err.message}`),
  });
  let keys: ApiKeyStore | undefined;
  return {
    store,
    settings,
    file,
    pepper: () => resolvePepper(settings, dataDir),
    async audit(action, target, detail) {
      try {
        await auditCliAct(store, gatewayConfig, dataDir, action, target, detail);
      } catch (err) {
        io.err(`warning: ${action} ${target} was done but could not be audited: ${(err as Error).message}`);
      }
    },
    async auditAll(acts) {
      const settings = gatewayConfig?.audit ?? compileAudit(undefined);
      if (!settings.enabled || acts.length === 0) return;
      let written = 0;
      try {
        // In chunks below the audit queue's bound, each written and signed before the next.
        const size = Math.max(1, Math.min(AUDIT_CHUNK, settings.maxQueue));
        for (let i = 0; i < acts.length; i += size) {
          const chunk = acts.slice(i, i + size);
          const log = createAuditLog({
            db: store,
            settings: { ...settings, shutdownTimeoutMs: Math.max(settings.shutdownTimeoutMs, 30_000) },
            signer: resolveAuditSigner(settings.signingKey, dataDir),
            logger: { info() {}, warn() {}, error() {} },
            // Never to stdout, which belongs to the command's own output.
            ...(settings.jsonl?.path === '-'
              ? { jsonl: { write: async () => {}, close: async () => {} } }
              : {}),
          });
          const time = new Date().toISOString();
          for (const act of chunk) log.emit({ type: 'admin', time, actor: 'cli', ...act });
          await log.close();
          written += log.stats.written;
          if (log.stats.written !== chunk.length) break;
        }
        if (written !== acts.length) throw new Error(`${acts.length - written} audit event(s) not written`);
      } catch (err) {
        io.err(
          `warning: ${acts.length} ${acts[0]!.action} act(s) were done but ${acts.length - written} could not be audited: ${(err as Error).message}`,
        );
      }
    },
    keys(forNewKeys = false) {
      if (forNewKeys && file !== undefined && settings === undefined) {
        io.err(
          `warning: ${file} does not configure auth.api_keys: the gateway accepts no API keys until it does, and a pepper configured then will not match keys made now.`,
        );
      }
      keys ??= createApiKeyStore(store, {
        pepper: () => resolvePepper(settings, dataDir),
        logger: { warn: (_details, message) => io.err(`warning: ${message}`) },
      });
      return keys;
    },
  };
}
