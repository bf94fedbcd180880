/**
 * What the administrative commands (`keys`, `alerts`, `blocks`, `audit`,
 * `clients`) share: where they find the config and the data folder, how they
 * open the store, parse flags, print tables and report errors, so that the
 * commands agree on each of these.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, formatIssue } from '../config/load.js';
import { openStore, type Store, StoreError } from '../store/index.js';
import { parseDuration } from '../util/units.js';

/** Bad arguments: exit 2 with the message and the usage. */
export class UsageError extends Error {}

/** The config file a command uses: `--config FILE`, else `$PORTCULLIS_CONFIG`; none means the embedded default. */
export function commandConfigFile(flag: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  return flag ?? (env.PORTCULLIS_CONFIG || undefined);
}

/** The data folder of the embedded default: `$PORTCULLIS_DATA`, default `./data`. */
export function defaultDataDir(env: NodeJS.ProcessEnv): string {
  return resolve(env.PORTCULLIS_DATA ?? 'data');
}

/** Opens the store and applies its migrations; a store that cannot be migrated is closed again. */
export async function openMigratedStore(options: Parameters<typeof openStore>[0]): Promise<Store> {
  const store = await openStore(options);
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  return store;
}

const COMMON_FLAGS = {
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Parses a subcommand's flags and the common `--config`/`--help` strictly; a bad flag is a {@link UsageError}. */
export function parseCommandArgs<T extends Record<string, { type: 'string' | 'boolean' }>>(
  args: string[],
  options: T,
) {
  try {
    return parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: { ...COMMON_FLAGS, ...options },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/**
 * The milliseconds of a duration flag such as `--expires 90d`, at most `max`
 * (itself a duration) and, unless `allowZero`, more than zero.
 *
 * @throws UsageError when the text is not a duration or is out of range.
 */
export function parseDurationFlag(
  flag: string,
  text: string,
  limits: { max: string; allowZero?: boolean },
): number {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch {
    throw new UsageError(
      `--${flag} expects a duration such as 30s, 15m, 24h or 90d, got ${JSON.stringify(text)}`,
    );
  }
  const allowZero = limits.allowZero === true;
  if ((!allowZero && ms === 0) || ms > parseDuration(limits.max)) {
    throw new UsageError(`--${flag} must be ${allowZero ? '' : 'more than 0 and '}at most ${limits.max}`);
  }
  return ms;
}

/** A time to the second in UTC, `-` for none. */
export const formatTime = (ms: number | undefined): string =>
  ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Rows as aligned columns, two spaces apart, without trailing spaces; the first row is the header. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** Every issue of an invalid config, one indented line each. */
export function formatConfigError(err: ConfigError): string {
  return `${err.issues.length} error(s) in the config:\n${err.issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`;
}

/**
 * Prints what went wrong in `portcullis <command>` and returns the exit code:
 * 2 for bad usage (with the usage), an invalid config or an unsupported store
 * URL; 1 for anything else. `isUsageError` names the command's own errors that
 * are bad input, reported as bad usage.
 */
export function reportCommandError(
  err: unknown,
  io: { err(text: string): void },
  command: string,
  usage: string,
  isUsageError: (err: unknown) => boolean = () => false,
): number {
  if (err instanceof UsageError || isUsageError(err)) {
    io.err(`portcullis ${command}: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (err instanceof ConfigError) {
    io.err(formatConfigError(err));
    return 2;
  }
  if (err instanceof StoreError && err.code === 'store.unsupported_url') {
    io.err(`portcullis ${command}: ${err.message}`);
    return 2;
  }
  io.err(`portcullis ${command}: ${(err as Error).message ?? String(err)}`);
  return 1;
}

/** What `portcullis --version` reports. */
export interface VersionInfo {
  /** The package version. */
  portcullis: string;
  /** `CONFIG_SCHEMA_VERSION`, and a fingerprint of the exact schema. */
  configSchema: { version: number; sha256: string };
  /** The inspection rule sets: the compiled OWASP CRS and Portcullis's own rules. */
  rules: { crs: string; portcullis: string; count: number };
  /** The version of the last store migration. */
  storeSchema: number;
}

/**
 * The versions behind this build. The rule files are read here rather than
 * through the inspection engine, so `--version` does not load the WAF.
 */
export async function versionInfo(): Promise<VersionInfo> {
  const { createHash } = await import('node:crypto');
  const { readFileSync } = await import('node:fs');
  const { CONFIG_SCHEMA_VERSION, ConfigSchema } = await import('../config/schema.js');
  const { migrations } = await import('../store/migrations/index.js');
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  type RuleFile = { metadata: { rules_version: string }; rules: unknown[] };
  const crs = (await import('../stages/inspect/crs-rules.json', { with: { type: 'json' } }))
    .default as RuleFile;
  const own = (await import('../stages/inspect/rules.json', { with: { type: 'json' } })).default as RuleFile;
  return {
    portcullis: pkg.version,
    configSchema: {
      version: CONFIG_SCHEMA_VERSION,
      sha256: createHash('sha256').update(JSON.stringify(ConfigSchema)).digest('hex').slice(0, 12),
    },
    rules: {
      crs: crs.metadata.rules_version,
      portcullis: own.metadata.rules_version,
      count: crs.rules.length + own.rules.length,
    },
    storeSchema: Math.max(...migrations.map((m) => m.version)),
  };
}

/** `portcullis --version`: the package version first, then the schema and rule set versions. */
export function formatVersion(v: VersionInfo): string {
  return [
    `portcullis ${v.portcullis}`,
    `config schema ${v.configSchema.version} (sha256:${v.configSchema.sha256})`,
    `rule set ${v.rules.crs} + portcullis-rules ${v.rules.portcullis} (${v.rules.count} rules)`,
    `store schema ${v.storeSchema}`,
  ].join('\n');
}
