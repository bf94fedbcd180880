/** A gateway in a child process (`portcullis start`), for tests of signals and process exit. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

const MAIN = new URL('../cli/main.ts', import.meta.url).pathname;

export interface ChildGateway {
  child: ChildProcess;
  url: string;
  port: number;
  adminUrl: string;
  /** The config file it runs with (rewrite it and send SIGHUP to reload). */
  configFile: string;
  /** Every JSON log line written so far. */
  logs: Record<string, unknown>[];
  /** Resolves with the exit code and when the process exited (Date.now()). */
  exited: Promise<{ code: number | null; at: number }>;
  /** Kills it if still running, and removes its data folder. */
  close(): Promise<void>;
}

/** Starts `portcullis start` on ephemeral ports with `config` (merged with loopback listeners). */
export async function startChildGateway(config: Record<string, unknown>): Promise<ChildGateway> {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-child-'));
  const file = join(dataDir, 'portcullis.yaml');
  writeFileSync(
    file,
    stringify({
      ...config,
      listen: { host: '127.0.0.1', port: 0, ...(config.listen as object) },
      admin: { host: '127.0.0.1', port: 0, ...(config.admin as object) },
      log: { level: 'info', ...(config.log as object) },
    }),
  );
  const { PORTCULLIS_PORT: _ignored, ...env } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'start', '--config', file], {
    env: { ...env, PORTCULLIS_DATA: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let buffer = '';
  let stderr = '';
  child.stderr!.on('data', (c) => {
    stderr += c;
  });
  child.stdout!.on('data', (c: Buffer) => {
    buffer += c.toString();
    let nl = buffer.indexOf('\n');
    while (nl >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
      nl = buffer.indexOf('\n');
    }
  });
  const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
    child.once('exit', (code) => resolve({ code, at: Date.now() })),
  );
  const deadline = Date.now() + 30_000;
  let listening: Record<string, unknown> | undefined;
  while (listening === undefined) {
    if (child.exitCode !== null || Date.now() > deadline) {
      rmSync(dataDir, { recursive: true, force: true });
      throw new Error(`the gateway did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 20));
    listening = logs.find((l) => l.msg === 'portcullis listening');
  }
  const port = Number(listening.port);
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    port,
    adminUrl: `http://127.0.0.1:${String(listening.adminPort)}`,
    configFile: file,
    logs,
    exited,
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
