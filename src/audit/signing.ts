/**
 * Checkpoint signatures: Ed25519 (RFC 8032) over (kind, seq, hash, time),
 * with a key that is never stored in the database, so someone who can write
 * the database can rewrite the hash chain but cannot sign the result.
 *
 * The key is given by reference (`audit.signing_key: ${file:…}`, a PKCS#8
 * PEM private key), or, on the embedded default, generated on first use into
 * `<dataDir>/secrets/audit-signing-key.pem` (mode 0600) with its public half
 * beside it (`audit-signing-key.pub.pem`) for verification elsewhere.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The file names of the generated key pair under `<dataDir>/secrets/`. */
export const LOCAL_KEY_FILE = 'audit-signing-key.pem';
export const LOCAL_PUBLIC_KEY_FILE = 'audit-signing-key.pub.pem';
/** The file of the latest signed checkpoint, beside them (see `checkpoint-file.ts`). */
export const CHECKPOINT_FILE = 'audit-checkpoint.json';

/** Where the gateway with data folder `dataDir` keeps its latest checkpoint outside the store. */
export function checkpointFilePath(dataDir: string): string {
  return join(dataDir, 'secrets', CHECKPOINT_FILE);
}

/** `checkpoint`: the chain head at a moment. `anchor`: the last event removed by retention. */
export type CheckpointKind = 'checkpoint' | 'anchor';

/** One row of `audit_checkpoints`. */
export interface Checkpoint {
  kind: CheckpointKind;
  seq: number;
  hash: string;
  /** Base64 Ed25519 signature over {@link checkpointMessage}. */
  signature: string;
  /** {@link keyId} of the signing key. */
  key_id: string;
  created_at: string;
}

/** Signs checkpoints; holds the private key. */
export interface CheckpointSigner {
  readonly keyId: string;
  readonly publicKey: KeyObject;
  /**
   * Where the latest checkpoint it signs is also kept, outside the store (see
   * `checkpoint-file.ts`); set by {@link resolveAuditSigner}, which knows the
   * data folder, so every writer of the chain (gateway and CLIs) keeps it.
   */
  readonly checkpointFile?: string;
  sign(kind: CheckpointKind, seq: number, hash: string, createdAt: string): Checkpoint;
}

/** The bytes signed for a checkpoint: one line per field, after a version line. */
export function checkpointMessage(kind: string, seq: number, hash: string, createdAt: string): Buffer {
  return Buffer.from(`portcullis.audit.checkpoint.v1\n${kind}\n${seq}\n${hash}\n${createdAt}`, 'utf8');
}

/** The first 16 hex digits of SHA-256 over the public key's SPKI DER: names a key without revealing anything. */
export function keyId(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}

/**
 * Parses a PEM Ed25519 private key.
 *
 * @throws Error naming what is wrong with it, never its content.
 */
export function parseSigningKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new Error('the audit signing key is not a PEM private key');
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(
      `the audit signing key must be an Ed25519 key (openssl genpkey -algorithm ed25519), not ${key.asymmetricKeyType ?? 'a symmetric key'}`,
    );
  }
  return key;
}

/**
 * Parses a PEM key for verification: a public key, or a private key whose
 * public half is taken.
 */
export function parseVerifyKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = pem.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(pem)) : createPublicKey(pem);
  } catch {
    throw new Error('not a PEM public or private key');
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`not an Ed25519 key (${key.asymmetricKeyType ?? 'unknown type'})`);
  }
  return key;
}

/** A signer over `privateKey` (Ed25519). */
export function createCheckpointSigner(privateKey: KeyObject): CheckpointSigner {
  const publicKey = createPublicKey(privateKey);
  const id = keyId(publicKey);
  return {
    keyId: id,
    publicKey,
    sign(kind, seq, hash, createdAt) {
      const signature = sign(null, checkpointMessage(kind, seq, hash, createdAt), privateKey).toString(
        'base64',
      );
      return { kind, seq, hash, signature, key_id: id, created_at: createdAt };
    },
  };
}

/** Whether `checkpoint` carries a valid signature by `publicKey`. */
export function verifyCheckpoint(checkpoint: Checkpoint, publicKey: KeyObject): boolean {
  try {
    return verify(
      null,
      checkpointMessage(checkpoint.kind, checkpoint.seq, checkpoint.hash, checkpoint.created_at),
      publicKey,
      Buffer.from(checkpoint.signature, 'base64'),
    );
  } catch {
    return false;
  }
}

/**
 * The generated key of the embedded default: read from
 * `<dataDir>/secrets/audit-signing-key.pem`, or created there (mode 0600,
 * never overwritten: two processes starting at once keep the first one's).
 */
export function ensureLocalSigningKey(dataDir: string): KeyObject {
  const dir = join(dataDir, 'secrets');
  const file = join(dir, LOCAL_KEY_FILE);
  try {
    return parseSigningKey(readFileSync(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  try {
    writeFileSync(file, pem, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return parseSigningKey(readFileSync(file, 'utf8'));
    throw err;
  }
  chmodSync(file, 0o600);
  writeFileSync(join(dir, LOCAL_PUBLIC_KEY_FILE), publicKey.export({ type: 'spki', format: 'pem' }), {
    mode: 0o644,
  });
  return privateKey;
}

/** The generated key's public half, when it exists; it is never created here (verification must not make keys). */
export function readLocalVerifyKey(dataDir: string): KeyObject | undefined {
  for (const name of [LOCAL_KEY_FILE, LOCAL_PUBLIC_KEY_FILE]) {
    try {
      return parseVerifyKey(readFileSync(join(dataDir, 'secrets', name), 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return undefined;
}

/**
 * The signer the gateway uses: the configured key (`settings.signingKey`,
 * resolved PEM), or the generated one in the data folder. Its checkpoints
 * are also kept in `<dataDir>/secrets/audit-checkpoint.json`.
 *
 * @throws Error when the configured key is not an Ed25519 private key.
 */
export function resolveAuditSigner(signingKey: string | undefined, dataDir: string): CheckpointSigner {
  const signer = createCheckpointSigner(
    signingKey === undefined ? ensureLocalSigningKey(dataDir) : parseSigningKey(signingKey),
  );
  return { ...signer, checkpointFile: checkpointFilePath(dataDir) };
}
