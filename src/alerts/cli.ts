/**
 * `portcullis alerts` and `portcullis blocks`: list stored alerts; list,
 * add and lift temporary blocks.
 *
 * The store comes from `--config FILE` (or `$PORTCULLIS_CONFIG`), as the
 * gateway started with that config uses it; without either, from the
 * embedded default the demo runs on: SQLite in `$PORTCULLIS_DATA` (default
 * `./data`). Running gateways on the same store pick up a block added or
 * lifted here within about a second: the change is signalled on the same
 * feed as token revocations (`src/revocation/`), with `blocks.refresh` as
 * the backstop.
 */

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
import type { AdminEvent } from '../events/types.js';
import { signalBlockChange } from '../revocation/index.js';
import { migrations as registered, type Store } from '../store/index.js';
import { alertsMigration } from '../store/migrations/006-alerts.js';
import type { Migration } from '../store/types.js';
import {
  type AlertRecord,
  BlockError,
  type BlockKind,
  type BlockRecord,
  blockJson,
  blockStatus,
  createAlertStore,
  createBlockStore,
} from './store.js';

/** Where the commands write (each call is one line or block, without the final newline) and read their environment. */
export interface AlertsCommandIo {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  /** Receives `block.added` and `block.lifted`, to be audited. */
  onEvent?: (event: AdminEvent) => void | Promise<void>;
}

const ALERTS_USAGE = `Usage:
  portcullis alerts list [--since 24h] [--limit 100] [--json]

Lists the alerts whose last finding is within --since, the most recent first.
Also takes --config FILE: use that config's store (default: $PORTCULLIS_CONFIG;
without it, SQLite in $PORTCULLIS_DATA, default ./data, as the demo uses).`;

const BLOCKS_USAGE = `Usage:
  portcullis blocks list [--all] [--json]
  portcullis blocks add (--ip IP | --key KEY_ID | --principal ID) --for 1h [--status 429|403] [--reason TEXT]
  portcullis blocks lift (ID | --ip IP | --key KEY_ID | --principal ID)

list shows the active blocks (--all: lifted and expired ones too). Running
gateways on the same store apply a change within about a second.
Every command also takes --config FILE: use that config's store (default:
$PORTCULLIS_CONFIG; without it, SQLite in $PORTCULLIS_DATA, default ./data).
Durations: 30s, 15m, 24h, 90d (at most 365d).`;

/** Nothing to act on: exit 1 with the message. */
class NotFound extends Error {}

const SUBJECT_FLAGS = {
  ip: { type: 'string' },
  key: { type: 'string' },
  principal: { type: 'string' },
} as const;

function noPositionals(positionals: string[]): void {
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
}

/** At most 365d: MAX_BLOCK_MS, the longest block the store accepts. */
function duration(flag: string, text: string): number {
  return parseDurationFlag(flag, text, { max: '365d' });
}

function positiveInteger(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 100_000) {
    throw new UsageError(`--${flag} expects a whole number from 1 to 100000`);
  }
  return n;
}

/** The subject named by exactly one of --ip, --key, --principal; undefined when none is. */
function subjectOf(values: {
  ip?: string;
  key?: string;
  principal?: string;
}): [BlockKind, string] | undefined {
  const given = (
    [
      ['ip', values.ip],
      ['api_key', values.key],
      ['principal', values.principal],
    ] as const
  ).filter((e): e is readonly [BlockKind, string] => e[1] !== undefined);
  if (given.length > 1) throw new UsageError('give one of --ip, --key and --principal');
  return given[0] === undefined ? undefined : [given[0][0], given[0][1]];
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it replaces.
const CONTROL = /[\x00-\x1f\x7f]/g;
/** Stored text may come from requests (ids); a terminal must not interpret it. */
const printable = (text: string) => text.replace(CONTROL, '?');

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

function alertJson(a: AlertRecord) {
  return {
    id: a.id,
    detector: a.detector,
    severity: a.severity,
    subject: a.subject,
    summary: a.summary,
    evidence: a.evidence,
    firstSeen: iso(a.firstSeen),
    lastSeen: iso(a.lastSeen),
    count: a.count,
    delivery: a.delivery,
  };
}

const KIND_FLAG: Record<BlockKind, string> = { ip: 'ip', api_key: 'key', principal: 'principal' };

/**
 * Runs `portcullis alerts …`. `argv` is what follows `alerts` (a leading
 * `alerts` is skipped too). Resolves to the exit code: 0 success, 1 runtime
 * failure (store unreachable), 2 bad usage or an invalid config.
 */
export async function runAlertsCommand(argv: string[], io: AlertsCommandIo): Promise<number> {
  const args = argv[0] === 'alerts' ? argv.slice(1) : argv;
  const [command, ...rest] = args;
  if (command === 'help' || command === '--help' || command === '-h') {
    io.out(ALERTS_USAGE);
    return 0;
  }
  let store: Store | undefined;
  try {
    if (command !== 'list') {
      throw new UsageError(command === undefined ? 'missing command' : `unknown command "alerts ${command}"`);
    }
    const { values, positionals } = parseCommandArgs(rest, {
      since: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (values.help) {
      io.out(ALERTS_USAGE);
      return 0;
    }
    noPositionals(positionals);
    const since = duration('since', values.since ?? '24h');
    const limit = positiveInteger('limit', values.limit ?? '100');
    store = await open(values.config, io, 'alerts');
    const alerts = await createAlertStore(store).list({ since: Date.now() - since, limit });
    if (values.json) {
      io.out(JSON.stringify(alerts.map(alertJson), null, 2));
    } else if (alerts.length === 0) {
      io.out(`No alerts in the last ${values.since ?? '24h'}.`);
    } else {
      io.out(
        formatTable([
          ['ID', 'LAST SEEN', 'SEVERITY', 'DETECTOR', 'SUBJECT', 'COUNT', 'DELIVERY', 'SUMMARY'],
          ...alerts.map((a) => [
            a.id,
            formatTime(a.lastSeen),
            a.severity,
            a.detector,
            printable(`${a.subject.kind}:${a.subject.id}`),
            String(a.count),
            Object.entries(a.delivery)
              .map(([name, outcome]) => `${name}:${outcome}`)
              .join(',') || '-',
            printable(a.summary),
          ]),
        ]),
      );
    }
    return 0;
  } catch (err) {
    return report(err, io, 'alerts', ALERTS_USAGE);
  } finally {
    await store?.close().catch(() => {});
  }
}

/**
 * Runs `portcullis blocks …`. `argv` is what follows `blocks` (a leading
 * `blocks` is skipped too). Resolves to the exit code: 0 success, 1 runtime
 * failure (no such block, nothing to lift, store unreachable), 2 bad usage or
 * an invalid config.
 */
export async function runBlocksCommand(argv: string[], io: AlertsCommandIo): Promise<number> {
  const args = argv[0] === 'blocks' ? argv.slice(1) : argv;
  const [command, ...rest] = args;
  if (command === 'help' || command === '--help' || command === '-h') {
    io.out(BLOCKS_USAGE);
    return 0;
  }
  let store: Store | undefined;
  const emit = async (action: 'block.added' | 'block.lifted', b: BlockRecord) => {
    await io.onEvent?.({
      type: 'admin',
      time: new Date().toISOString(),
      action,
      actor: 'cli',
      target: `${b.kind}:${b.subject}`,
      detail: {
        block: b.id,
        status: b.status,
        expires_at: new Date(b.expiresAt).toISOString(),
        ...(action === 'block.added' ? { reason: b.reason } : {}),
      },
    });
    // Running gateways on this store reload their blocks at once (PostgreSQL NOTIFY, or their next poll).
    if (store !== undefined) await signalBlockChange(store, `${b.kind}:${b.subject}`, 'cli');
  };
  try {
    switch (command) {
      case 'list': {
        const { values, positionals } = parseCommandArgs(rest, {
          all: { type: 'boolean' },
          json: { type: 'boolean' },
        });
        if (values.help) return help(io);
        noPositionals(positionals);
        store = await open(values.config, io, 'blocks');
        const blocks = await createBlockStore(store).list({ all: values.all === true, limit: 1000 });
        const now = Date.now();
        if (values.json) {
          io.out(
            JSON.stringify(
              blocks.map((b) => blockJson(b, now)),
              null,
              2,
            ),
          );
        } else if (blocks.length === 0) {
          io.out(values.all ? 'No blocks.' : 'No active blocks.');
        } else {
          io.out(
            formatTable([
              ['ID', 'KIND', 'SUBJECT', 'STATUS', 'CREATED', 'EXPIRES', 'BY', 'STATE', 'REASON'],
              ...blocks.map((b) => [
                b.id,
                b.kind,
                printable(b.subject),
                String(b.status),
                formatTime(b.createdAt),
                formatTime(b.expiresAt),
                b.createdBy,
                blockStatus(b, now) === 'lifted' ? `lifted by ${b.liftedBy ?? '?'}` : blockStatus(b, now),
                printable(b.reason),
              ]),
            ]),
          );
        }
        return 0;
      }
      case 'add': {
        const { values, positionals } = parseCommandArgs(rest, {
          ...SUBJECT_FLAGS,
          for: { type: 'string' },
          status: { type: 'string' },
          reason: { type: 'string' },
        });
        if (values.help) return help(io);
        noPositionals(positionals);
        const subject = subjectOf(values);
        if (subject === undefined)
          throw new UsageError('blocks add needs --ip IP, --key KEY_ID or --principal ID');
        if (values.for === undefined) throw new UsageError('blocks add needs --for DURATION, e.g. --for 1h');
        const durationMs = duration('for', values.for);
        const status = values.status ?? '429';
        if (status !== '429' && status !== '403') throw new UsageError('--status is 429 or 403');
        store = await open(values.config, io, 'blocks');
        const record = await createBlockStore(store).add({
          kind: subject[0],
          subject: subject[1],
          status: Number(status) as 403 | 429,
          durationMs,
          reason: values.reason ?? 'added with portcullis blocks add',
          createdBy: 'cli',
        });
        await emit('block.added', record);
        io.out(
          `Blocked ${record.kind} ${printable(record.subject)} until ${formatTime(record.expiresAt)} (${record.status}) as ${record.id}. Running gateways apply it within about a second.`,
        );
        return 0;
      }
      case 'lift': {
        const { values, positionals } = parseCommandArgs(rest, SUBJECT_FLAGS);
        if (values.help) return help(io);
        const subject = subjectOf(values);
        if ((subject === undefined) === (positionals.length === 0) || positionals.length > 1) {
          throw new UsageError('blocks lift takes one block id, or one of --ip, --key and --principal');
        }
        store = await open(values.config, io, 'blocks');
        const blocks = createBlockStore(store);
        if (subject === undefined) {
          const { record, wasActive } = await blocks.lift(positionals[0]!, 'cli');
          if (!wasActive) {
            throw new NotFound(
              `${record.id} is not active (${blockStatus(record, Date.now())}); nothing to lift`,
            );
          }
          await emit('block.lifted', record);
          io.out(`Lifted ${record.id} (${record.kind} ${printable(record.subject)}).`);
          return 0;
        }
        const lifted = await blocks.liftSubject(subject[0], subject[1], 'cli');
        if (lifted.length === 0) {
          throw new NotFound(`no active block for --${KIND_FLAG[subject[0]]} ${printable(subject[1])}`);
        }
        for (const record of lifted) await emit('block.lifted', record);
        io.out(`Lifted ${lifted.map((b) => b.id).join(', ')}.`);
        return 0;
      }
      default:
        throw new UsageError(
          command === undefined ? 'missing command' : `unknown command "blocks ${command}"`,
        );
    }
  } catch (err) {
    return report(err, io, 'blocks', BLOCKS_USAGE);
  } finally {
    await store?.close().catch(() => {});
  }
}

function help(io: AlertsCommandIo): number {
  io.out(BLOCKS_USAGE);
  return 0;
}

function report(err: unknown, io: AlertsCommandIo, name: string, usage: string): number {
  return reportCommandError(
    err,
    io,
    name,
    usage,
    (e) => e instanceof BlockError && e.code === 'blocks.invalid_input',
  );
}

/**
 * The build's migrations, with the alerts migration appended while the
 * registry does not list it yet (it does once integrated; this is then a no-op).
 */
export function withAlertsMigration(list: readonly Migration[]): Migration[] {
  return list.some((m) => m.version === alertsMigration.version) ? [...list] : [...list, alertsMigration];
}

async function open(configFile: string | undefined, io: AlertsCommandIo, name: string): Promise<Store> {
  const file = commandConfigFile(configFile, io.env);
  let url: string | undefined;
  let dataDir: string;
  if (file === undefined) {
    dataDir = defaultDataDir(io.env);
  } else {
    const { config } = await loadConfig(file, { env: io.env });
    url = config.store.url;
    dataDir = config.store.dataDir;
  }
  return openMigratedStore({
    url,
    dataDir,
    migrations: withAlertsMigration(registered),
    onError: (err) => io.err(`portcullis ${name}: store connection error: ${err.message}`),
  });
}
