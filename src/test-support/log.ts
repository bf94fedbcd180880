/** A logger for tests whose JSON lines are kept in memory, parsed. */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../log.js';

export function captureLogger(
  level = 'debug',
  redact?: readonly string[],
): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { logger: createLogger({ level, ...(redact ? { redact } : {}) }, sink), lines };
}
