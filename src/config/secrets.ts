/**
 * Secret references: `${env:NAME}` and `${file:PATH}`. A reference that does
 * not resolve is an error, never used as a literal string.
 */
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

const REF = /^\$\{(env|file):([^}]+)\}$/;

export interface ResolvedSecret {
  value: string;
  /** A warning about how the secret is kept, e.g. a world-readable file. */
  warning?: string;
}

export function isSecretRef(value: string): boolean {
  return REF.test(value);
}

/**
 * Resolves one reference. Throws an Error whose message names the variable or
 * file, never the value. File paths are relative to `baseDir` (the config
 * file's folder); a trailing newline in the file is dropped.
 */
export function resolveSecretRef(ref: string, baseDir: string, env: NodeJS.ProcessEnv): ResolvedSecret {
  const m = REF.exec(ref);
  if (!m) throw new Error('expected ${env:NAME} or ${file:PATH}');
  const [, kind, name] = m as unknown as [string, 'env' | 'file', string];
  if (kind === 'env') {
    const value = env[name];
    if (value === undefined || value === '') throw new Error(`environment variable ${name} is not set`);
    return { value };
  }
  const path = isAbsolute(name) ? name : resolve(baseDir, name);
  let value: string;
  let mode: number;
  try {
    value = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    mode = statSync(path).mode;
  } catch (err) {
    throw new Error(`cannot read secret file ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (value === '') throw new Error(`secret file ${path} is empty`);
  const worldReadable = (mode & 0o004) !== 0;
  return worldReadable
    ? { value, warning: `secret file ${path} is readable by every user on this machine (chmod 600 it)` }
    : { value };
}
