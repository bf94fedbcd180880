/**
 * Runs the `openssl` command line (the Debian package of that name), always
 * with an argument vector and never through a shell, so no path or name can
 * be read as shell syntax.
 */
import { execFile } from 'node:child_process';

/** The command is missing, failed, or took too long. The message names the subcommand, never key material. */
export class OpensslError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OpensslError';
  }
}

export interface OpensslOptions {
  /** Written to the command's standard input (a CSR, a PEM). */
  input?: string | Buffer;
  /** Default 20 s: key generation is the slowest step and takes well under a second. */
  timeoutMs?: number;
  /** The program to run; default `openssl` from PATH. */
  command?: string;
}

/** Runs `openssl ARGS…` and resolves with its standard output. */
export function runOpenssl(args: readonly string[], options: OpensslOptions = {}): Promise<Buffer> {
  const command = options.command ?? 'openssl';
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      {
        encoding: 'buffer',
        timeout: options.timeoutMs ?? 20_000,
        maxBuffer: 4 * 1024 * 1024,
        windowsHide: true,
        // A user's OPENSSL_CONF could add extensions or change defaults silently.
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', OPENSSL_CONF: '/dev/null' },
      },
      (err, stdout, stderr) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException).code;
          const why =
            code === 'ENOENT'
              ? `${command} is not installed (Debian: apt-get install openssl)`
              : `${command} ${args[0]} failed: ${stderr.toString().trim().split('\n').slice(0, 3).join(' | ') || err.message}`;
          reject(new OpensslError(why, { cause: err }));
          return;
        }
        resolve(stdout);
      },
    );
    child.stdin?.on('error', () => {
      // The command may exit before reading its input; the exit status reports it.
    });
    child.stdin?.end(options.input);
  });
}
