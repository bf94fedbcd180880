/**
 * The latest signed checkpoint, kept outside the store: `audit verify`
 * compares it with the database.
 *
 * Checkpoints in the database can be deleted along with the events they
 * cover, and a restored older copy of the database brings its own, older
 * checkpoints; either way the chain that remains verifies. A copy of the
 * latest checkpoint in a file (and in the JSON lines stream) names a seq and
 * hash the database must still contain.
 *
 * The file is `<dataDir>/secrets/audit-checkpoint.json`, beside the generated
 * signing key: one JSON line, as in the JSON lines stream. It is replaced
 * atomically (temp file, fsync, rename, fsync of the folder), so a crash
 * leaves the old checkpoint or the new one, never a torn file.
 *
 * The writer never replaces a checkpoint the database no longer contains: a
 * gateway restarted on a rolled-back database would otherwise sign its new
 * head into the file and erase the evidence.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { checkpointLine } from './jsonl.js';
import { CHECKPOINT_FILE, type Checkpoint } from './signing.js';
import type { AuditRepository } from './store.js';

// Defined in signing.ts, beside the key files (signing.ts must not import this module).
export { CHECKPOINT_FILE, checkpointFilePath } from './signing.js';

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Parses one checkpoint line (of the checkpoint file or the JSON lines stream).
 *
 * @throws Error saying what is wrong with it.
 */
export function parseCheckpointLine(text: string): Checkpoint {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error('not JSON');
  }
  if (
    typeof v !== 'object' ||
    v === null ||
    (v.type !== 'checkpoint' && v.type !== 'anchor') ||
    !Number.isSafeInteger(v.seq) ||
    typeof v.hash !== 'string' ||
    !HEX64.test(v.hash) ||
    typeof v.signature !== 'string' ||
    typeof v.key_id !== 'string' ||
    typeof v.created_at !== 'string'
  ) {
    throw new Error('not a checkpoint (type, seq, hash, signature, key_id, created_at)');
  }
  return {
    kind: v.type,
    seq: v.seq as number,
    hash: v.hash,
    signature: v.signature,
    key_id: v.key_id,
    created_at: v.created_at,
  };
}

/**
 * The checkpoint in the file, or `undefined` when there is none.
 *
 * @throws Error when the file cannot be read or holds no checkpoint.
 */
export async function readCheckpointFile(path: string): Promise<Checkpoint | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    return parseCheckpointLine(text.trim());
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
}

/** How far back from the end of a JSON lines file to look for its newest checkpoint. */
const JSONL_TAIL_BYTES = 1 << 20;

/**
 * The newest checkpoint line among the last MiB of a JSON lines file, or
 * `undefined` when there is none there (or no file). Only the tail is read:
 * the file grows without bound, and checkpoints come every
 * `checkpoint_every` events.
 */
export function newestJsonlCheckpoint(path: string): Checkpoint | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let text: string;
  try {
    const total = fstatSync(fd).size;
    const start = Math.max(0, total - JSONL_TAIL_BYTES);
    const buffer = Buffer.alloc(total - start);
    const size = readSync(fd, buffer, 0, buffer.length, start);
    text = buffer.subarray(0, size).toString('utf8');
  } finally {
    closeSync(fd);
  }
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    if (!line.includes('"type":"checkpoint"')) continue;
    try {
      return parseCheckpointLine(line);
    } catch {
      // A line cut by the start of the window, or a corrupt one: look further back.
    }
  }
  return undefined;
}

/**
 * Replaces the file with `cp`, atomically and durably: a temp file beside
 * it (mode 0600), fsync, rename over the file, fsync of the folder.
 */
export async function writeCheckpointFile(path: string, cp: Checkpoint): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.${CHECKPOINT_FILE}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const file = await open(temp, 'wx', 0o600);
    try {
      await file.writeFile(checkpointLine(cp), 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => {});
    throw err;
  }
  const folder = await open(dir, 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}

/**
 * Why the checkpoint `cp` is not in the chain of `repo`, or `undefined` when
 * the chain has an event at its seq with exactly its hash, or retention has
 * legitimately removed that seq (`anchorSeq`, asked only then, is at or after it).
 */
export async function missingFromChain(
  repo: AuditRepository,
  cp: Checkpoint,
  anchorSeq: () => Promise<number | undefined>,
): Promise<{ kind: 'edited' | 'truncated'; message: string } | undefined> {
  const row = await repo.get(cp.seq);
  if (row) {
    if (row.hash === cp.hash) return undefined;
    return {
      kind: 'edited',
      message: `the event at seq ${cp.seq} has hash ${row.hash}, not ${cp.hash}: the database was replaced by another copy, or rewritten`,
    };
  }
  const anchor = await anchorSeq();
  if (anchor !== undefined && cp.seq <= anchor) return undefined;
  const head = await repo.head();
  return {
    kind: 'truncated',
    message: `the database has no event at seq ${cp.seq} (its last is seq ${head.seq}): events were deleted from the end, or the database was restored from an older copy`,
  };
}
