/**
 * The secret-scanning receiver: `POST <secret_scanning.path>` on the public
 * listener, in the format of GitHub's secret scanning partner program.
 *
 * 1. The report's signature is verified first, before its body is parsed:
 *    ECDSA P-256 / SHA-256 over the raw body, base64 DER in
 *    `Github-Public-Key-Signature`, by the key `Github-Public-Key-Identifier`
 *    names. Anything unsigned or tampered with is refused (403) and nothing
 *    in it is looked at.
 * 2. Each reported token is checked as a `pcl_` key: format and checksum,
 *    the stored record by id, the secret's HMAC in constant time.
 * 3. A key that matches is revoked at once (`action: revoke`): dropped from
 *    this instance's cache and announced on the revocation feed, so every
 *    instance refuses it within about a second; or only flagged (`flag`).
 * 4. Each leaked key is audited (`key.leaked`, and `key.revoked`) and raises
 *    an alert to `alerts.webhooks`.
 * 5. The answer lists every token as `{token_hash, token_type, label}`:
 *    `true_positive` for a real key (revoked already or not), else
 *    `false_positive`; `token_hash` is the token's SHA-256 in hex, so the
 *    token is never sent back.
 *
 * Every token costs the same work whatever it is (a malformed token is
 * checked against a stand-in id and digest), so the time taken does not
 * tell an unknown key from a malformed one. The tokens themselves are
 * never logged, audited or alerted: only key ids.
 */
import { createHash, type KeyObject, timingSafeEqual, verify } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DetectorName, Finding } from '../anomaly/types.js';
import { ERRORS, GatewayError, gatewayError } from '../errors.js';
import type { AdminEvent } from '../events/types.js';
import type { GatewayEndpoint } from '../gateway.js';
import { sendJson } from '../issuer/http.js';
import { parseApiKey } from '../keys/format.js';
import { createApiKeyStore, digestSecret } from '../keys/store.js';
import { recordRevocation } from '../revocation/feed.js';
import type { Db } from '../store/types.js';
import type { KeyRing } from './public-keys.js';
import type { SecretScanningSettings } from './schema.js';

/** The detector name of leaked-key alerts. */
export const LEAKED_KEY_DETECTOR = 'leaked_key';
/** The actor of what the receiver does, in the audit log and the revocation feed. */
export const ACTOR = 'secret-scanning';
/** How long a "key revoked" signal stays in the revocation feed (as for `keys revoke`). */
const KEY_SIGNAL_TTL_MS = 60 * 60_000;

const BAD_SIGNATURE = {
  code: 'secret_scanning.bad_signature',
  status: 403,
  title: 'The report’s signature could not be verified.',
};
const BAD_REPORT = {
  code: 'secret_scanning.bad_report',
  status: 400,
  title: 'The report is not a JSON array of {token, type, url, source} objects.',
};
const SIGNATURE = /^[A-Za-z0-9+/]{8,400}={0,2}$/;
// A stand-in for tokens that are not keys: the same lookup and HMAC, never a match.
const STAND_IN_ID = 'key_0000000000000000';
const STAND_IN_SECRET = '0'.repeat(43);
const STAND_IN_DIGEST = Buffer.alloc(32);

export interface ReceiverDeps {
  db: Db;
  /** The pepper API key digests are keyed with. */
  pepper: string;
  keyRing: KeyRing;
  /** Drops a key from this instance's authenticator cache. */
  invalidate(id: string): void;
  /** Audit (and every other event subscriber). */
  emit(event: AdminEvent): void;
  /** Raises an alert to the configured webhooks. */
  alert(finding: Finding): void;
  logger: { warn(details: Record<string, unknown>, message: string): void };
}

/** One entry of a report. */
interface Reported {
  token: string;
  type: string;
  url: string;
  source: string;
}

/** One entry of the answer. */
export interface Labelled {
  token_hash: string;
  token_type: string;
  label: 'true_positive' | 'false_positive';
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' ? value.trim() : undefined;
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit)
    return Promise.reject(new GatewayError(ERRORS.bodyTooLarge, { headers: { connection: 'close' } }));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done();
        req.pause();
        reject(new GatewayError(ERRORS.bodyTooLarge, { headers: { connection: 'close' } }));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      done();
      reject(err);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

const clip = (value: unknown, max: number): string => (typeof value === 'string' ? value.slice(0, max) : '');

function parseReport(body: Buffer, maxTokens: number): Reported[] {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw new GatewayError(BAD_REPORT, { internal: 'not UTF-8 JSON' });
  }
  if (!Array.isArray(doc)) throw new GatewayError(BAD_REPORT, { internal: 'not an array' });
  if (doc.length > maxTokens) {
    throw new GatewayError(ERRORS.bodyTooLarge, {
      internal: `${doc.length} tokens (max_tokens ${maxTokens})`,
    });
  }
  return doc.map((entry, i) => {
    if (entry === null || typeof entry !== 'object' || typeof (entry as Reported).token !== 'string') {
      throw new GatewayError(BAD_REPORT, { internal: `entry ${i} has no token` });
    }
    const e = entry as Record<string, unknown>;
    return {
      token: e.token as string,
      type: clip(e.type, 100),
      url: clip(e.url, 500),
      source: clip(e.source, 100),
    };
  });
}

/** Builds the receiver for one configuration. */
export function createSecretScanningEndpoint(
  settings: SecretScanningSettings,
  deps: ReceiverDeps,
): GatewayEndpoint {
  const keys = createApiKeyStore(deps.db, { pepper: deps.pepper, logger: deps.logger });

  /** The key a token is, or undefined; the same work for every token. */
  async function match(token: string) {
    const parsed = token.length < 1000 ? parseApiKey(token) : undefined;
    const credential = await keys.lookup(parsed?.id ?? STAND_IN_ID);
    const presented = digestSecret(deps.pepper, parsed?.secret ?? STAND_IN_SECRET);
    const stored = credential?.digest.length === presented.length ? credential.digest : STAND_IN_DIGEST;
    const equal = timingSafeEqual(stored, presented);
    return equal && parsed !== undefined && credential !== undefined ? credential.record : undefined;
  }

  async function leaked(
    record: NonNullable<Awaited<ReturnType<typeof match>>>,
    entry: Reported,
    requestId: string,
  ): Promise<void> {
    let outcome: 'revoked' | 'already_revoked' | 'flagged' = 'flagged';
    if (settings.action === 'revoke') {
      const { alreadyRevoked } = await keys.revoke(record.id);
      outcome = alreadyRevoked ? 'already_revoked' : 'revoked';
      if (!alreadyRevoked) {
        deps.invalidate(record.id);
        await recordRevocation(deps.db, {
          kind: 'key',
          subject: record.id,
          expiresAt: Date.now() + KEY_SIGNAL_TTL_MS,
          actor: ACTOR,
          reason: 'key leaked (secret scanning)',
        });
      }
    }
    const detail = {
      name: record.name,
      outcome,
      type: entry.type,
      source: entry.source,
      url: entry.url,
      request: requestId,
    };
    const time = new Date().toISOString();
    deps.emit({ type: 'admin', time, action: 'key.leaked', actor: ACTOR, target: record.id, detail });
    if (outcome === 'revoked') {
      deps.emit({
        type: 'admin',
        time,
        action: 'key.revoked',
        actor: ACTOR,
        target: record.id,
        detail: { reason: 'leaked' },
      });
    }
    const where = entry.url === '' ? 'in public' : `at ${entry.url}`;
    const done =
      outcome === 'revoked'
        ? 'and revoked'
        : outcome === 'already_revoked'
          ? '(it was already revoked)'
          : '(flagged only: secret_scanning.action is flag; revoke it with `portcullis keys revoke`)';
    deps.alert({
      detector: LEAKED_KEY_DETECTOR as DetectorName,
      severity: settings.severity,
      subject: { kind: 'api_key', id: record.id },
      summary: `API key ${record.id} "${record.name}" was found ${where} by secret scanning ${done}.`,
      evidence: {
        key: record.id,
        name: record.name,
        outcome,
        type: entry.type,
        source: entry.source,
        url: entry.url,
      },
    });
  }

  return {
    method: 'POST',
    path: settings.path,
    async handle(req: IncomingMessage, res: ServerResponse, ctx) {
      const media = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (media !== 'application/json') throw new GatewayError(ERRORS.unsupportedMediaType);
      const keyId = header(req, 'github-public-key-identifier');
      const signature = header(req, 'github-public-key-signature');
      if (keyId === undefined || keyId === '' || keyId.length > 200 || signature === undefined) {
        throw new GatewayError(BAD_SIGNATURE, { internal: 'no key identifier or signature' });
      }
      if (!SIGNATURE.test(signature))
        throw new GatewayError(BAD_SIGNATURE, { internal: 'signature not base64' });
      const key = await deps.keyRing.get(keyId);
      if (key === undefined) throw new GatewayError(BAD_SIGNATURE, { internal: 'unknown key identifier' });
      const body = await readBody(req, settings.maxBodyBytes);
      let valid = false;
      try {
        valid = verifySignature(body, key, signature);
      } catch {
        valid = false;
      }
      if (!valid) throw new GatewayError(BAD_SIGNATURE, { internal: `bad signature (key ${keyId})` });

      const report = parseReport(body, settings.maxTokens);
      const answer: Labelled[] = [];
      try {
        for (const entry of report) {
          const record = await match(entry.token);
          if (record !== undefined) await leaked(record, entry, ctx.requestId);
          answer.push({
            token_hash: createHash('sha256').update(entry.token).digest('hex'),
            token_type: entry.type,
            label: record === undefined ? 'false_positive' : 'true_positive',
          });
        }
      } catch (err) {
        // The store is down: 503, and the provider sends the report again (keys revoked so far stay revoked).
        deps.logger.warn(
          { err, requestId: ctx.requestId },
          'a secret-scanning report could not be processed',
        );
        throw gatewayError('unavailable', { headers: { 'retry-after': '30' }, internal: 'store failure' });
      }
      sendJson(res, 200, answer, ctx.requestId);
    },
  };
}

/** ECDSA / SHA-256 over `body`, the signature base64 DER (what GitHub sends). */
export function verifySignature(body: Buffer, key: KeyObject, signature: string): boolean {
  return verify('sha256', body, { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'));
}
