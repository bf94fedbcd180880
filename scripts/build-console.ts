/**
 * Builds the web console (console/) into dist/console/: one JavaScript
 * bundle (Preact and uPlot included), one stylesheet, the page and its icon.
 * Run by `npm run build`; tests that need the console call buildConsole().
 */
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CONSOLE_SOURCE = join(ROOT, 'console');
export const CONSOLE_OUT = join(ROOT, 'dist', 'console');

/** Bundles the console into `outDir` (default dist/console/), replacing what was there. */
export async function buildConsole(outDir = CONSOLE_OUT): Promise<void> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: { app: join(CONSOLE_SOURCE, 'src', 'main.tsx') },
    outdir: outDir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    sourcemap: false,
    legalComments: 'eof',
    logLevel: 'warning',
    absWorkingDir: ROOT,
  });
  copyFileSync(join(CONSOLE_SOURCE, 'index.html'), join(outDir, 'index.html'));
  copyFileSync(join(CONSOLE_SOURCE, 'favicon.svg'), join(outDir, 'favicon.svg'));
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildConsole();
}
