/**
 * The console's static files (built by `scripts/build-console.ts` into
 * `dist/console/`), served by the admin listener at `/` and `/console/…`
 * with a strict CSP: no inline script or style, nothing from elsewhere,
 * never framed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROBLEM_HEADERS } from '../../errors.js';

/** Where `npm run build` puts the console (the same from src/ under tsx and from dist/). */
export const CONSOLE_DIST = fileURLToPath(new URL('../../../dist/console/', import.meta.url));

export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/** Headers of every console response. */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

function load(dir: string): Map<string, { type: string; body: Buffer }> | undefined {
  try {
    const files = new Map<string, { type: string; body: Buffer }>();
    for (const name of readdirSync(dir)) {
      const type = TYPES[extname(name)];
      if (type !== undefined) files.set(name, { type, body: readFileSync(join(dir, name)) });
    }
    return files.has('index.html') ? files : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A handler for `/` and `/console/*`; answers false for any other path. The
 * files are read once, at the first request that finds them.
 */
export function consoleAssets(dir = CONSOLE_DIST): (req: IncomingMessage, res: ServerResponse) => boolean {
  let files: Map<string, { type: string; body: Buffer }> | undefined;
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    let name: string;
    if (path === '/' || path === '/console' || path === '/console/') name = 'index.html';
    else if (path.startsWith('/console/') && /^[a-z0-9-]+\.[a-z]+$/.test(path.slice(9))) name = path.slice(9);
    else return false;
    const send = (status: number, type: string, body: Buffer | string, cache: string) => {
      res.writeHead(status, {
        ...CONSOLE_HEADERS,
        'content-type': type,
        'cache-control': cache,
        'content-length': Buffer.byteLength(body),
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(
        405,
        PROBLEM_HEADERS['content-type']!,
        JSON.stringify({ status: 405, title: 'Method not allowed.' }),
        'no-store',
      );
      return true;
    }
    files ??= load(dir);
    if (files === undefined) {
      send(
        503,
        PROBLEM_HEADERS['content-type']!,
        JSON.stringify({
          type: 'urn:portcullis:problem:console.not_built',
          title: 'The web console is not built.',
          status: 503,
          code: 'console.not_built',
          detail: 'run npm run build',
        }),
        'no-store',
      );
      return true;
    }
    const file = files.get(name);
    if (file === undefined) {
      send(
        404,
        PROBLEM_HEADERS['content-type']!,
        JSON.stringify({ status: 404, title: 'No such resource.' }),
        'no-store',
      );
      return true;
    }
    send(200, file.type, file.body, name === 'index.html' ? 'no-store' : 'no-cache');
    return true;
  };
}
