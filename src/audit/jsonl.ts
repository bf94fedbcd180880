/**
 * The JSON lines stream of the audit log, for shipping to a SIEM: every
 * stored event (its row, with seq and hashes) and every signed checkpoint,
 * one JSON object per line, in the order they were committed.
 */

import { once } from 'node:events';
import { closeSync, constants, fchmodSync, fstatSync, openSync, write } from 'node:fs';
import { resolve } from 'node:path';
import type { Writable } from 'node:stream';
import type { AuditRecord } from './canonical.js';
import type { Checkpoint } from './signing.js';

/** Where JSON lines go; `write` resolves once the text is handed to the OS (or the stream accepted it). */
export interface JsonlSink {
  write(text: string): Promise<void>;
  close(): Promise<void>;
}

/** One event as a JSON line: exactly its stored row. */
export function eventLine(record: AuditRecord): string {
  return `${JSON.stringify(record)}\n`;
}

/** One checkpoint as a JSON line, told apart from events by `type: "checkpoint"` or `"anchor"`. */
export function checkpointLine(cp: Checkpoint): string {
  return `${JSON.stringify({ type: cp.kind, seq: cp.seq, hash: cp.hash, signature: cp.signature, key_id: cp.key_id, created_at: cp.created_at })}\n`;
}

function writeAll(fd: number, buffer: Buffer): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    let offset = 0;
    const next = (): void => {
      write(fd, buffer, offset, buffer.length - offset, null, (err, written) => {
        if (err) return reject(err);
        offset += written;
        if (offset < buffer.length) next();
        else resolvePromise();
      });
    };
    next();
  });
}

/**
 * Opens the sink: `-` is stdout; any other string a file, created with mode
 * 0600 (an existing one is tightened to it) and opened `O_APPEND`, so each
 * batch lands at the end even if another process appends or logrotate
 * truncates it (copytruncate). A `Writable` is used as given (tests).
 *
 * @throws Error when the file cannot be opened; the message names the path.
 */
export function openJsonlSink(target: string | Writable): JsonlSink {
  if (typeof target !== 'string' || target === '-') {
    const stream = typeof target === 'string' ? process.stdout : target;
    return {
      async write(text) {
        if (!stream.write(text)) await once(stream, 'drain');
      },
      async close() {
        // stdout and caller-owned streams stay open.
      },
    };
  }
  const path = resolve(target);
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
  } catch (err) {
    throw new Error(
      `cannot open the audit JSON lines file ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  if ((fstatSync(fd).mode & 0o777) !== 0o600) fchmodSync(fd, 0o600);
  let closed = false;
  let last: Promise<void> = Promise.resolve();
  return {
    write(text) {
      // Chained, so batches never interleave within the file.
      last = last.catch(() => {}).then(() => writeAll(fd, Buffer.from(text, 'utf8')));
      return last;
    },
    async close() {
      if (closed) return;
      closed = true;
      await last.catch(() => {});
      closeSync(fd);
    },
  };
}
