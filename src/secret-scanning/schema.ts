/**
 * Config of the secret-scanning receiver (`secret_scanning`): where it
 * listens, whose signatures it trusts and what it does with a leaked key.
 * Off by default.
 */
import { createPublicKey } from 'node:crypto';
import { type Static, Type } from '@sinclair/typebox';
import type { Severity } from '../anomaly/types.js';
import { Duration, Size, section } from '../config/schema-kit.js';
import { parseDuration, parseSize } from '../util/units.js';

/** GitHub's list of the keys it signs secret-scanning reports with. */
export const GITHUB_PUBLIC_KEYS_URL = 'https://api.github.com/meta/public_keys/secret_scanning';
/** Where the receiver listens unless configured otherwise. */
export const DEFAULT_PATH = '/.well-known/portcullis/secret-scanning';

const InlineKeySchema = Type.Object(
  {
    key_identifier: Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'The identifier the reports name in their Github-Public-Key-Identifier header.',
    }),
    key: Type.String({
      minLength: 1,
      description: 'The ECDSA P-256 public key, PEM (-----BEGIN PUBLIC KEY-----). Public: not a secret.',
    }),
  },
  { additionalProperties: false, description: 'A public key given in the config.' },
);

export const SecretScanningSchema = section(
  {
    enabled: Type.Boolean({
      default: false,
      description:
        'Serve the secret-scanning receiver on the public listener: a scanning provider (GitHub secret scanning) reports `pcl_` keys found in public code, and the gateway revokes or flags them at once. Needs auth.api_keys.',
    }),
    path: Type.String({
      default: DEFAULT_PATH,
      pattern: '^/[A-Za-z0-9._~/-]*$',
      maxLength: 200,
      description:
        'Path of the receiver (POST) on the public listener, matched before the routes: register https://<your host><path> with the provider.',
      expected: 'a path starting with "/"',
    }),
    action: Type.Union([Type.Literal('revoke'), Type.Literal('flag')], {
      default: 'revoke',
      description:
        'What a reported key that exists gets: revoke (it stops working on every instance within about a second) or flag (only audited and alerted, for an operator to decide).',
    }),
    public_keys_url: Type.String({
      default: GITHUB_PUBLIC_KEYS_URL,
      description:
        "Where the provider publishes the keys it signs reports with, in GitHub's format {public_keys: [{key_identifier, key, is_current}]}. HTTPS (plain HTTP only to a loopback address). Not fetched when public_keys is given.",
    }),
    public_keys: Type.Array(InlineKeySchema, {
      default: [],
      description:
        'The provider’s public keys given here instead of fetched from public_keys_url (an air-gapped gateway, or a pinned key).',
    }),
    public_keys_refresh: Duration(
      'How long fetched public keys are used before they are fetched again. A report signed with a key not in the list fetches it at once, at most every 10 seconds.',
      '1h',
    ),
    public_keys_timeout: Duration('Longest wait for the public keys URL.', '5s'),
    max_body: Size('Largest report accepted.', '1mb'),
    max_tokens: Type.Integer({
      minimum: 1,
      maximum: 10000,
      default: 1000,
      description: 'Most tokens in one report; a larger report is refused with 413.',
    }),
    severity: Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('critical')], {
      default: 'critical',
      description: 'Severity of the alert raised for a leaked key (alerts.webhooks filter on it).',
    }),
  },
  'Leaked keys revoked automatically: a receiver for secret-scanning reports (GitHub’s partner program format).',
);

export type RawSecretScanning = Static<typeof SecretScanningSchema>;

/** A public key reports may be signed with. */
export interface InlinePublicKey {
  keyIdentifier: string;
  /** PEM. */
  key: string;
}

/** The compiled `secret_scanning` section. */
export interface SecretScanningSettings {
  enabled: boolean;
  path: string;
  action: 'revoke' | 'flag';
  /** Undefined when the keys are given inline. */
  publicKeysUrl: string | undefined;
  publicKeys: readonly InlinePublicKey[];
  refreshMs: number;
  timeoutMs: number;
  maxBodyBytes: number;
  maxTokens: number;
  severity: Severity;
}

/** A problem a schema cannot state, located by its path below the section. */
export interface SectionIssue {
  path: (string | number)[];
  message: string;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Whether `pem` is an ECDSA P-256 public key. */
export function isP256PublicKey(pem: string): boolean {
  try {
    const key = createPublicKey(pem);
    return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  } catch {
    return false;
  }
}

/** Compiles and checks the section; `apiKeys` says whether `auth.api_keys` is configured. */
export function compileSecretScanning(
  raw: RawSecretScanning,
  context: { apiKeys: boolean },
): { settings: SecretScanningSettings; issues: SectionIssue[] } {
  const issues: SectionIssue[] = [];
  const inline = raw.public_keys.map((k, i) => {
    if (!isP256PublicKey(k.key)) {
      issues.push({
        path: ['public_keys', i, 'key'],
        message: 'expected an ECDSA P-256 public key in PEM (-----BEGIN PUBLIC KEY-----)',
      });
    }
    return { keyIdentifier: k.key_identifier, key: k.key };
  });
  const ids = new Set<string>();
  raw.public_keys.forEach((k, i) => {
    if (ids.has(k.key_identifier)) {
      issues.push({ path: ['public_keys', i, 'key_identifier'], message: 'is used twice' });
    }
    ids.add(k.key_identifier);
  });
  if (inline.length === 0) {
    let url: URL | undefined;
    try {
      url = new URL(raw.public_keys_url);
    } catch {
      url = undefined;
    }
    const ok =
      url !== undefined &&
      url.username === '' &&
      url.password === '' &&
      (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.has(url.hostname)));
    if (!ok) {
      issues.push({
        path: ['public_keys_url'],
        message: 'expected an https:// URL without credentials (http:// only to a loopback address)',
      });
    }
  }
  if (raw.enabled && !context.apiKeys) {
    issues.push({
      path: ['enabled'],
      message: 'the receiver revokes API keys: configure auth.api_keys, or leave secret_scanning off',
    });
  }
  const refreshMs = parseDuration(raw.public_keys_refresh);
  const timeoutMs = parseDuration(raw.public_keys_timeout);
  if (timeoutMs === 0) issues.push({ path: ['public_keys_timeout'], message: 'expected more than 0' });
  return {
    settings: {
      enabled: raw.enabled,
      path: raw.path,
      action: raw.action,
      publicKeysUrl: inline.length === 0 ? raw.public_keys_url : undefined,
      publicKeys: inline,
      refreshMs,
      timeoutMs,
      maxBodyBytes: parseSize(raw.max_body),
      maxTokens: raw.max_tokens,
      severity: raw.severity,
    },
    issues,
  };
}
