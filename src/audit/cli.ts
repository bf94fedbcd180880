/**
 * `portcullis audit`: verify the hash chain and its signed checkpoints, show
 * the latest events, and search them.
 *
 * The store and audit settings come from `--config FILE` (or
 * `$PORTCULLIS_CONFIG`), as the gateway started with that config uses them;
 * without either, from the embedded default: SQLite and the generated
 * signing key in `$PORTCULLIS_DATA` (default `./data`). The command only
 * reads: it neither migrates the database nor creates a key.
 */
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { commandConfigFile, defaultDataDir, reportCommandError, UsageError } from '../cli/support.js';
import { ConfigError, type ConfigIssue, formatPath, loadConfig } from '../config/load.js';
import { ConfigSchema } from '../config/schema.js';
import { isSecretRef, resolveSecretRef } from '../config/secrets.js';
import { openStore, type Store, StoreError } from '../store/index.js';
import { auditMigration } from '../store/migrations/005-audit.js';
import { parseDuration } from '../util/units.js';
import type { AuditRecord } from './canonical.js';
import { checkpointFilePath, newestJsonlCheckpoint, readCheckpointFile } from './checkpoint-file.js';
import { AuditSchema, type AuditSettings, compileAudit, type RawAudit } from './schema.js';
import { type Checkpoint, parseVerifyKey, readLocalVerifyKey } from './signing.js';
import { type AuditFilter, type AuditRepository, createAuditRepository } from './store.js';
import { verifyAuditLog } from './verify.js';

/** Where `runAuditCommand` writes (each call is one line or block, without the final newline) and reads its environment. */
export interface AuditCommandIo {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  /** Ends `audit tail --follow` (the CLI passes one aborted on SIGINT). */
  signal?: AbortSignal;
}

const USAGE = `Usage:
  portcullis audit verify [--public-key FILE]... [--json]
  portcullis audit tail [-n 20] [--follow] [--json]
  portcullis audit search [--principal ID] [--since 1h|ISO] [--until 1h|ISO]
                          [--decision allow|deny|error] [--route NAME] [--ip IP]
                          [--type request|admin] [--action ACTION] [--request-id ID]
                          [--limit 100] [--json]

Every command also takes --config FILE: use that config's store and audit
settings (default: $PORTCULLIS_CONFIG; without it, SQLite in $PORTCULLIS_DATA,
default ./data, as the demo uses).

verify recomputes the hash chain over the retained events and checks every
signed checkpoint; it names the first seq where an event was edited, deleted,
reordered or inserted. It also checks the latest checkpoint kept outside the
database (<data>/secrets/audit-checkpoint.json, and the JSON lines file if
configured): the chain must still hold its seq and hash, or the newest events
were deleted or the database restored from an older copy. Checkpoints are
checked with the public half of the configured signing key (or the
generated one in the data folder) and with every --public-key (PEM, public
or private; for retired keys).
Exit: 0 intact, 1 tampering found or a failure, 2 bad usage or config.

search shows the latest matches (--limit), oldest first. --since and
--until take a duration back from now (30m, 24h, 7d) or an ISO-8601 time.`;

const DEFAULT_TAIL = 20;
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 100_000;
const FOLLOW_POLL_MS = 1000;

const COMMON = {
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
} as const;

function parse<T extends Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>>(
  args: string[],
  options: T,
) {
  try {
    const parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: { ...COMMON, ...options },
    });
    if (parsed.positionals.length > 0) {
      throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
    }
    return parsed;
  } catch (err) {
    throw err instanceof UsageError ? err : new UsageError((err as Error).message);
  }
}

function count(flag: string, text: string | undefined, dflt: number): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_LIMIT) {
    throw new UsageError(
      `--${flag} expects a whole number from 1 to ${MAX_LIMIT}, got ${JSON.stringify(text)}`,
    );
  }
  return n;
}

/** `1h` (back from now) or an ISO-8601 time → ISO-8601 UTC, as stored. */
export function parseWhen(flag: string, text: string, now: number): string {
  if (/^\d+(ms|s|m|h|d)$/.test(text)) return new Date(now - parseDuration(text)).toISOString();
  const ms = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new UsageError(
      `--${flag} expects a duration back from now (30m, 24h, 7d) or an ISO-8601 time, got ${JSON.stringify(text)}`,
    );
  }
  return new Date(ms).toISOString();
}

const show = (v: string | null): string => v ?? '-';

/** One event as one line for people. */
export function formatRecord(r: AuditRecord): string {
  if (r.type === 'admin') {
    return `${r.time} #${r.seq} admin ${show(r.action)} actor=${show(r.actor)} target=${show(r.target)}${r.data === null ? '' : ` ${r.data}`}`;
  }
  const principal =
    r.principal_id === null
      ? '-'
      : `${r.principal_kind ?? '?'}:${r.principal_id}${r.tenant === null ? '' : `@${r.tenant}`}`;
  const latency = r.latency_ms === null ? '' : ` ${Number(r.latency_ms).toFixed(1)}ms`;
  return (
    `${r.time} #${r.seq} ${show(r.decision)} ${r.status ?? '-'} ${show(r.reason)} ${show(r.method)} ${show(r.path)}` +
    `${r.route === null ? '' : ` route=${JSON.stringify(r.route)}`} principal=${principal} ip=${show(r.client_ip)}` +
    ` req=${show(r.request_id)}${latency}${r.detail === null ? '' : ` detail=${JSON.stringify(r.detail)}`}`
  );
}

interface Context {
  store: Store;
  repo: AuditRepository;
  settings: AuditSettings;
  dataDir: string;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
ajv.addKeyword({ keyword: 'expected', schemaType: 'string' });
ajv.addKeyword({ keyword: 'secret', schemaType: 'boolean' });
// As a section, as the config loader validates it (ajv refuses a default on a root schema).
const validateAudit = ajv.compile<{ audit: RawAudit }>(
  Type.Object({ audit: AuditSchema }, { additionalProperties: false }),
);

/**
 * The audit settings of a config whose schema does not know `audit:` yet
 * (before it is wired into the config loader): validated and resolved here.
 */
function compileStandalone(raw: unknown, file: string, env: NodeJS.ProcessEnv): AuditSettings {
  const doc = { audit: raw ?? {} };
  if (!validateAudit(doc)) {
    throw new ConfigError(
      (validateAudit.errors ?? []).map(
        (e): ConfigIssue => ({
          file,
          path: formatPath(e.instancePath.split('/').filter((s) => s !== '')),
          message: `expected a value that ${e.message ?? 'is valid'}`,
        }),
      ),
    );
  }
  const audit = doc.audit as RawAudit;
  if (audit.signing_key !== undefined && isSecretRef(audit.signing_key)) {
    try {
      audit.signing_key = resolveSecretRef(audit.signing_key, dirname(resolve(file)), env).value;
    } catch (err) {
      throw new ConfigError([
        {
          file,
          path: 'audit.signing_key',
          message: `cannot resolve the reference: ${(err as Error).message}`,
        },
      ]);
    }
  }
  return compileAudit(audit);
}

async function open(configFile: string | undefined, io: AuditCommandIo): Promise<Context> {
  const file = commandConfigFile(configFile, io.env);
  let url: string | undefined;
  let dataDir: string;
  let settings: AuditSettings;
  if (file === undefined) {
    dataDir = defaultDataDir(io.env);
    settings = compileAudit(undefined);
  } else {
    const integrated = 'audit' in ConfigSchema.properties;
    let rawAudit: unknown;
    const { config } = await loadConfig(file, {
      env: io.env,
      ...(integrated
        ? {}
        : {
            patch: (raw: Record<string, unknown>) => {
              rawAudit = raw.audit;
              delete raw.audit;
            },
          }),
    });
    url = config.store.url;
    dataDir = config.store.dataDir;
    settings = (config as { audit?: AuditSettings }).audit ?? compileStandalone(rawAudit, file, io.env);
  }
  const store = await openStore({
    url,
    dataDir,
    migrations: [auditMigration],
    onError: (err) => io.err(`portcullis audit: store connection error: ${err.message}`),
  });
  try {
    const applied = await store.appliedMigrations();
    if (!applied.some((m) => m.version === auditMigration.version)) {
      throw new StoreError(
        'store.migration_mismatch',
        `${store.location} has no audit log yet: the gateway creates it when it first starts`,
      );
    }
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  return { store, repo: createAuditRepository(store), settings, dataDir };
}

/** The keys of `--public-key` files; read before anything else, so a bad one is a usage error. */
function readKeyFiles(files: readonly string[]): KeyObject[] {
  return files.map((f) => {
    let pem: string;
    try {
      pem = readFileSync(f, 'utf8');
    } catch (err) {
      throw new UsageError(
        `--public-key ${f}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    try {
      return parseVerifyKey(pem);
    } catch (err) {
      throw new UsageError(`--public-key ${f}: ${(err as Error).message}`);
    }
  });
}

/** The public half of the configured signing key, or of the generated one in the data folder. */
function configuredKey(context: Context): KeyObject | undefined {
  if (context.settings.signingKey !== undefined) return parseVerifyKey(context.settings.signingKey);
  return readLocalVerifyKey(context.dataDir);
}

/** `1h 5m`-style, for the age of a checkpoint. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

/**
 * The checkpoints kept outside the store: the checkpoint file in the data
 * folder, and the newest checkpoint line of the JSON lines file. A file
 * that exists but holds no checkpoint is a failure (it is never written
 * torn); one that does not exist yet is a note.
 */
async function readWitnesses(context: Context) {
  const witnesses: { source: string; checkpoint: Checkpoint }[] = [];
  const notes: string[] = [];
  const failures: string[] = [];
  const file = checkpointFilePath(context.dataDir);
  try {
    const cp = await readCheckpointFile(file);
    if (cp) witnesses.push({ source: file, checkpoint: cp });
    else {
      notes.push(
        `no checkpoint file at ${file} yet (the gateway writes it at its first checkpoint): a deleted tail or an older copy of the database cannot be told from the database alone`,
      );
    }
  } catch (err) {
    failures.push(
      `the checkpoint file ${(err as Error).message}: it is never written torn, so it was altered`,
    );
  }
  const jsonl = context.settings.jsonl?.path;
  if (jsonl !== undefined && jsonl !== '-') {
    try {
      const cp = newestJsonlCheckpoint(resolve(jsonl));
      if (cp) witnesses.push({ source: resolve(jsonl), checkpoint: cp });
      else notes.push(`no checkpoint among the last lines of the JSON lines file ${resolve(jsonl)}`);
    } catch (err) {
      notes.push((err as Error).message);
    }
  }
  return { witnesses, notes, failures };
}

async function runVerify(context: Context, extra: readonly KeyObject[], json: boolean, io: AuditCommandIo) {
  const own = configuredKey(context);
  const keys = own === undefined ? [...extra] : [own, ...extra];
  const { witnesses, notes, failures } = await readWitnesses(context);
  const result = await verifyAuditLog(context.repo, { publicKeys: keys, witnesses });
  const ok = result.ok && failures.length === 0;
  if (json) {
    io.out(
      JSON.stringify(
        {
          location: context.store.location,
          ...result,
          ok,
          anchor: result.anchor ?? null,
          notes,
          failures,
        },
        null,
        2,
      ),
    );
    return ok ? 0 : 1;
  }
  const span =
    result.events === 0 ? 'no events' : `${result.events} events (seq ${result.firstSeq}..${result.lastSeq})`;
  io.out(
    `Audit log in ${context.store.location}: ${span}${result.anchor ? `, retained after the anchor at seq ${result.anchor.seq}` : ''}.`,
  );
  if (keys.length === 0) {
    io.err('warning: no verification key found: checkpoints cannot be checked (give --public-key FILE).');
  }
  for (const w of result.witnesses) {
    io.out(
      `Checkpoint kept in ${w.source}: seq ${w.seq}, signed ${w.created_at}${w.ok ? ', in the chain' : ''}.`,
    );
  }
  for (const n of notes) io.out(`Note: ${n}.`);
  if (result.lastSignedAt !== undefined) {
    io.out(
      `The newest checkpoint was signed ${result.lastSignedAt} (${formatAge(Date.now() - Date.parse(result.lastSignedAt))} ago).`,
    );
  }
  if (failures.length > 0) {
    io.out(`FAILED: ${failures.join('; ')}.`);
    if (result.ok) return 1;
  }
  if (result.ok) {
    const signed =
      result.lastSignedSeq === undefined
        ? 'no checkpoint yet'
        : `${result.checkpointsVerified} checkpoint(s) verified, the last at seq ${result.lastSignedSeq}`;
    io.out(
      `OK: the chain is intact; ${signed}${result.unsigned > 0 ? `; ${result.unsigned} event(s) after it are chained but not yet signed` : ''}.`,
    );
    return 0;
  }
  const first = result.problems[0]!;
  io.out(
    `TAMPERED: ${result.problems.length}${result.truncatedReport ? '+' : ''} problem(s); the first at seq ${first.seq} (${first.kind}).`,
  );
  for (const p of result.problems) io.out(`  seq ${p.seq}  ${p.kind.padEnd(10)} ${p.message}`);
  return 1;
}

function printRecords(records: readonly AuditRecord[], json: boolean, io: AuditCommandIo): void {
  for (const r of records) io.out(json ? JSON.stringify(r) : formatRecord(r));
}

async function runTail(context: Context, n: number, follow: boolean, json: boolean, io: AuditCommandIo) {
  const records = await context.repo.search({}, n);
  printRecords(records, json, io);
  if (!follow) return 0;
  let last = records.at(-1)?.seq ?? (await context.repo.head()).seq;
  const signal = io.signal;
  while (!signal?.aborted) {
    await new Promise<void>((r) => {
      const timer = setTimeout(r, FOLLOW_POLL_MS);
      signal?.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          r();
        },
        { once: true },
      );
    });
    if (signal?.aborted) break;
    const fresh = await context.repo.page(last, 1000);
    printRecords(fresh, json, io);
    last = fresh.at(-1)?.seq ?? last;
  }
  return 0;
}

/**
 * Runs `portcullis audit …`. `argv` is what follows `audit` (a leading
 * `audit` is skipped too). Resolves to the exit code: 0 success (and an
 * intact log), 1 tampering found or a runtime failure, 2 bad usage or an
 * invalid config.
 */
export async function runAuditCommand(argv: string[], io: AuditCommandIo): Promise<number> {
  const args = argv[0] === 'audit' ? argv.slice(1) : argv;
  const [command, ...rest] = args;
  if (command === 'help' || command === '--help' || command === '-h') {
    io.out(USAGE);
    return 0;
  }
  let context: Context | undefined;
  try {
    switch (command) {
      case 'verify': {
        const { values } = parse(rest, { 'public-key': { type: 'string', multiple: true } });
        if (values.help) return help(io);
        const extra = readKeyFiles(values['public-key'] ?? []);
        context = await open(values.config, io);
        return await runVerify(context, extra, values.json === true, io);
      }
      case 'tail': {
        const { values } = parse(rest, {
          n: { type: 'string', short: 'n' },
          follow: { type: 'boolean', short: 'f' },
        });
        if (values.help) return help(io);
        const n = count('n', values.n, DEFAULT_TAIL);
        context = await open(values.config, io);
        return await runTail(context, n, values.follow === true, values.json === true, io);
      }
      case 'search': {
        const { values } = parse(rest, {
          principal: { type: 'string' },
          since: { type: 'string' },
          until: { type: 'string' },
          decision: { type: 'string' },
          route: { type: 'string' },
          ip: { type: 'string' },
          type: { type: 'string' },
          action: { type: 'string' },
          'request-id': { type: 'string' },
          limit: { type: 'string' },
        });
        if (values.help) return help(io);
        if (values.decision !== undefined && !['allow', 'deny', 'error'].includes(values.decision)) {
          throw new UsageError(
            `--decision expects allow, deny or error, got ${JSON.stringify(values.decision)}`,
          );
        }
        if (values.type !== undefined && !['request', 'admin'].includes(values.type)) {
          throw new UsageError(`--type expects request or admin, got ${JSON.stringify(values.type)}`);
        }
        const now = Date.now();
        const filter: AuditFilter = {};
        if (values.principal !== undefined) filter.principal = values.principal;
        if (values.since !== undefined) filter.since = parseWhen('since', values.since, now);
        if (values.until !== undefined) filter.until = parseWhen('until', values.until, now);
        if (values.decision !== undefined) filter.decision = values.decision;
        if (values.route !== undefined) filter.route = values.route;
        if (values.ip !== undefined) filter.ip = values.ip;
        if (values.type !== undefined) filter.type = values.type;
        if (values.action !== undefined) filter.action = values.action;
        if (values['request-id'] !== undefined) filter.requestId = values['request-id'];
        const limit = count('limit', values.limit, DEFAULT_LIMIT);
        context = await open(values.config, io);
        const records = await context.repo.search(filter, limit);
        if (records.length === 0 && values.json !== true) io.err('No matching audit events.');
        printRecords(records, values.json === true, io);
        return 0;
      }
      default:
        throw new UsageError(
          command === undefined ? 'missing command' : `unknown command "audit ${command}"`,
        );
    }
  } catch (err) {
    return report(err, io);
  } finally {
    await context?.store.close().catch(() => {});
  }
}

function help(io: AuditCommandIo): number {
  io.out(USAGE);
  return 0;
}

function report(err: unknown, io: AuditCommandIo): number {
  return reportCommandError(err, io, 'audit', USAGE);
}
