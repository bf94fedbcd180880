/**
 * `portcullis tokens …`: the kill switch. Revokes access tokens now — of the
 * built-in issuer and of external identity providers alike — by token id,
 * subject, OAuth client or issue time; every running gateway on the same
 * store refuses them within about a second. Every revocation is audited and
 * expires once the tokens it covers would have.
 */
import { auditCliAct } from '../audit/cli-events.js';
import {
  commandConfigFile,
  defaultDataDir,
  formatConfigError,
  formatTable,
  formatTime,
  openMigratedStore,
  parseCommandArgs,
  UsageError,
} from '../cli/support.js';
import { ConfigError, loadConfig } from '../config/load.js';
import type { GatewayConfig } from '../config/types.js';
import type { Store } from '../store/types.js';
import { type FeedKind, listRevocations, type RevocationAct, recordRevocation } from './feed.js';

export interface TokensCommandIo {
  out(s: string): void;
  err(s: string): void;
  env: NodeJS.ProcessEnv;
}

const USAGE = `Usage:
  portcullis tokens revoke --jti ID [--issuer ISS] [--expires TIME]
  portcullis tokens revoke --sub SUBJECT [--issuer ISS]
  portcullis tokens revoke --client CLIENT_ID [--issuer ISS]
  portcullis tokens revoke --issued-before TIME [--issuer ISS]
  portcullis tokens list [--json]
  (each takes --config FILE and --reason TEXT; default store: the data folder)

Revokes access tokens on every running gateway within about a second, for the
built-in issuer's tokens and external providers' alike:
  --jti            one token, by its jti
  --sub            every token of a subject issued until now
  --client         every token of an OAuth client (client_id or azp) issued until now
  --issued-before  every token issued before TIME (ISO 8601, or "now")
  --issuer         only tokens with this iss (default: any issuer)
A revocation is kept for auth.revocations.retain (default 24h, the longest
token lifetime) and then expires: every token it covered has expired too.`;

/** Runs `portcullis tokens …`; returns the exit code (0 done, 1 failure, 2 usage). */
export async function runTokensCommand(argv: string[], io: TokensCommandIo): Promise<number> {
  const args = argv[0] === 'tokens' ? argv.slice(1) : argv;
  let store: Store | undefined;
  try {
    const { values, positionals } = parseCommandArgs(args, {
      jti: { type: 'string' },
      sub: { type: 'string' },
      client: { type: 'string' },
      'issued-before': { type: 'string' },
      issuer: { type: 'string' },
      expires: { type: 'string' },
      reason: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    const [command, ...extra] = positionals;
    if (command !== 'revoke' && command !== 'list') throw new UsageError('expected revoke or list');
    if (extra.length > 0) throw new UsageError(`unexpected ${JSON.stringify(extra[0])}`);
    const now = Date.now();
    let act: RevocationAct | undefined;
    let config: GatewayConfig | undefined;
    const configFile = commandConfigFile(values.config, io.env);
    let dataDir = defaultDataDir(io.env);
    if (configFile !== undefined) config = (await loadConfig(configFile, { env: io.env })).config;
    if (config !== undefined) dataDir = config.store.dataDir;
    const retainMs = config?.auth.revocations.retainMs ?? 24 * 60 * 60_000;
    if (command === 'revoke') act = planRevocation(values, now, retainMs);
    store = await openMigratedStore({ url: config?.store.url, dataDir });
    if (command === 'list') {
      const rows = (await listRevocations(store)).filter((r) => r.kind !== 'key' && r.kind !== 'block');
      if (values.json) io.out(JSON.stringify(rows, null, 2));
      else {
        io.out(
          formatTable([
            ['kind', 'subject', 'issuer', 'revoked', 'expires', 'by', 'reason'],
            ...rows.map((r) => [
              r.kind,
              r.subject || '-',
              r.issuer || '(any)',
              formatTime(r.revokedAt),
              formatTime(r.expiresAt),
              r.actor,
              r.reason || '-',
            ]),
          ]),
        );
      }
      return 0;
    }
    const revocation = act!;
    await recordRevocation(store, revocation);
    const target = `${revocation.kind}:${revocation.subject}`;
    try {
      await auditCliAct(store, config, dataDir, 'token.revoked', target, {
        kind: revocation.kind,
        issuer: revocation.issuer || '(any)',
        revoked_at: new Date(revocation.revokedAt!).toISOString(),
        expires_at: new Date(revocation.expiresAt).toISOString(),
        ...(revocation.reason ? { reason: revocation.reason } : {}),
      });
    } catch (err) {
      io.err(`warning: ${target} was revoked but could not be audited: ${(err as Error).message}`);
    }
    io.out(
      `Revoked ${describe(revocation)}. Running gateways refuse them within about a second; the revocation expires at ${formatTime(revocation.expiresAt)}.`,
    );
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`portcullis tokens: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.err(formatConfigError(err));
      return 2;
    }
    io.err(`portcullis tokens: ${(err as Error).message}`);
    return 1;
  } finally {
    await store?.close().catch(() => {});
  }
}

const MAX_VALUE = 500;

function planRevocation(
  values: Partial<
    Record<'jti' | 'sub' | 'client' | 'issued-before' | 'issuer' | 'expires' | 'reason', string>
  >,
  now: number,
  retainMs: number,
): RevocationAct {
  const given = (['jti', 'sub', 'client', 'issued-before'] as const).filter((k) => values[k] !== undefined);
  if (given.length !== 1) {
    throw new UsageError('give exactly one of --jti, --sub, --client, --issued-before');
  }
  const flag = given[0]!;
  const value = values[flag]!;
  if (value === '' || value.length > MAX_VALUE)
    throw new UsageError(`--${flag} needs a value of 1 to ${MAX_VALUE} characters`);
  const issuer = values.issuer ?? '';
  if (issuer.length > MAX_VALUE) throw new UsageError('--issuer is too long');
  const base = { issuer, actor: 'cli', reason: values.reason };
  if (flag === 'issued-before') {
    const at = value === 'now' ? now : Date.parse(value);
    if (!Number.isFinite(at)) throw new UsageError('--issued-before expects an ISO 8601 time or "now"');
    if (at > now) throw new UsageError('--issued-before cannot be in the future');
    // Tokens issued before `at` live at most `retainMs` past it.
    return { ...base, kind: 'before', subject: '', revokedAt: at, expiresAt: at + retainMs };
  }
  let expiresAt = now + retainMs;
  if (values.expires !== undefined) {
    if (flag !== 'jti') throw new UsageError('--expires goes with --jti (the token exp, when known)');
    const exp = /^\d+$/.test(values.expires) ? Number(values.expires) * 1000 : Date.parse(values.expires);
    if (!Number.isFinite(exp))
      throw new UsageError('--expires expects the token exp (seconds) or an ISO 8601 time');
    expiresAt = exp;
  }
  const kind: FeedKind = flag === 'jti' ? 'jti' : flag === 'sub' ? 'sub' : 'client';
  return { ...base, kind, subject: value, revokedAt: now, expiresAt };
}

function describe(a: RevocationAct): string {
  const from = a.issuer ? ` from ${a.issuer}` : '';
  switch (a.kind) {
    case 'jti':
      return `the token ${a.subject}${from}`;
    case 'sub':
      return `every token of subject ${a.subject}${from} issued until now`;
    case 'client':
      return `every token of client ${a.subject}${from} issued until now`;
    default:
      return `every token${from} issued before ${formatTime(a.revokedAt)}`;
  }
}
