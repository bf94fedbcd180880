/**
 * `portcullis keys import`: brings keys from another system (Kong, Tyk, an
 * in-house gateway) into the API key store, so the clients that hold them
 * keep working.
 *
 * The file is JSON Lines, one key a line:
 *
 *     {"key": "…", "name": "billing", "scopes": ["orders:read"], "tenant": "acme", "expiry": "2027-01-01T00:00:00Z", "routes": ["list-orders"]}
 *
 * `routes` (optional) restricts the key to those routes, by name: a key that
 * leaked from the old system can then reach only what it was meant for.
 *
 * Each key is stored as Portcullis's own are: only `HMAC-SHA-256(pepper, key)`,
 * under an id that is itself a keyed hash of the key ({@link importedKeyId}),
 * never the key. The import is all or nothing: every line is checked first,
 * and one bad line (named by its number, never by its key) imports nothing.
 * Messages never contain a key, not even part of one: a JSON syntax error is
 * reported by its column alone, since the parser's own message quotes the text.
 */
import type { Db } from '../store/types.js';
import { IMPORTED_KEY_MAX_LENGTH, IMPORTED_KEY_MIN_LENGTH, isImportableKey } from './format.js';
import {
  ApiKeyError,
  checkRouteNames,
  checkScopes,
  checkText,
  digestSecret,
  importedKeyId,
} from './store.js';

/** One valid line of an import file. */
export interface ImportEntry {
  /** 1-based line number in the file. */
  line: number;
  /** The stored id, `key_…` (a keyed hash of the key). */
  id: string;
  /** `HMAC-SHA-256(pepper, key)`, as stored. */
  digest: Buffer;
  name: string;
  scopes: string[];
  tenant: string | undefined;
  /** Epoch ms; undefined: no expiry. */
  expiresAt: number | undefined;
  /** Route names the key is restricted to; undefined: every route. */
  routes: string[] | undefined;
}

/** A line that cannot be imported: its number and what is wrong, never its key. */
export interface ImportProblem {
  line: number;
  message: string;
}

/** The outcome of {@link parseImportFile}. */
export interface ParsedImport {
  entries: ImportEntry[];
  problems: ImportProblem[];
}

/** Lines read at most: a bigger migration is split into several files. */
export const MAX_IMPORT_LINES = 1_000_000;

const FIELDS = new Set(['key', 'name', 'scopes', 'tenant', 'expiry', 'routes']);
// RFC 3339 date-time with an explicit offset: an expiry without a zone would depend on the machine's.
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i;

function keyProblem(key: string): string | undefined {
  if (isImportableKey(key)) return undefined;
  if (key.startsWith('pcl_')) {
    return 'the key starts with pcl_: Portcullis keys cannot be imported (they already live in a store)';
  }
  if (key.length < IMPORTED_KEY_MIN_LENGTH || key.length > IMPORTED_KEY_MAX_LENGTH) {
    return `the key has ${key.length} characters; expected ${IMPORTED_KEY_MIN_LENGTH} to ${IMPORTED_KEY_MAX_LENGTH}`;
  }
  return 'the key must be printable ASCII without spaces (it travels in an HTTP header)';
}

function checkLine(value: unknown, line: number, pepper: string, now: number): ImportEntry | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return 'expected a JSON object {"key", "name", "scopes", "tenant", "expiry", "routes"}';
  }
  const record = value as Record<string, unknown>;
  const unknown = Object.keys(record).filter((k) => !FIELDS.has(k));
  if (unknown.length > 0) {
    // A misspelt "expiry" must not silently import a key that never expires.
    return `unknown field ${JSON.stringify(unknown[0]!.slice(0, 40))}; expected key, name, scopes, tenant, expiry, routes`;
  }
  const { key, name, scopes, tenant, expiry, routes } = record;
  if (typeof key !== 'string') return 'expected "key" to be a string';
  const bad = keyProblem(key);
  if (bad !== undefined) return bad;
  if (typeof name !== 'string') return 'expected "name" to be a string';
  if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === 'string')) {
    return 'expected "scopes" to be a list of strings (it may be empty)';
  }
  if (tenant !== undefined && tenant !== null && typeof tenant !== 'string') {
    return 'expected "tenant" to be a string or null';
  }
  if (
    routes !== undefined &&
    routes !== null &&
    (!Array.isArray(routes) || !routes.every((r) => typeof r === 'string'))
  ) {
    return 'expected "routes" to be a list of route names, or null for every route';
  }
  let expiresAt: number | undefined;
  if (expiry !== undefined && expiry !== null) {
    if (typeof expiry !== 'string' || !DATE_TIME.test(expiry) || Number.isNaN(Date.parse(expiry))) {
      return 'expected "expiry" to be an RFC 3339 date-time with a zone, e.g. 2027-01-31T00:00:00Z, or null';
    }
    expiresAt = Date.parse(expiry);
    if (expiresAt <= now) return `the expiry ${expiry} has passed`;
  }
  let checkedScopes: string[];
  let checkedRoutes: string[] | undefined;
  try {
    checkText('the name', name);
    if (typeof tenant === 'string') checkText('the tenant', tenant);
    checkedScopes = checkScopes(scopes as string[]);
    if (Array.isArray(routes)) checkedRoutes = checkRouteNames(routes as string[]);
  } catch (err) {
    if (err instanceof ApiKeyError) return err.message;
    throw err;
  }
  return {
    line,
    id: importedKeyId(pepper, key),
    digest: digestSecret(pepper, key),
    name,
    scopes: checkedScopes,
    tenant: typeof tenant === 'string' ? tenant : undefined,
    expiresAt,
    routes: checkedRoutes,
  };
}

/**
 * Checks every line of an import file. Blank lines are skipped; the same
 * key twice is a problem (on the later line, naming the earlier one).
 * Nothing here touches the store.
 */
export function parseImportFile(text: string, pepper: string, now = Date.now()): ParsedImport {
  const entries: ImportEntry[] = [];
  const problems: ImportProblem[] = [];
  const seen = new Map<string, number>();
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  if (lines.length > MAX_IMPORT_LINES) {
    return {
      entries,
      problems: [
        { line: MAX_IMPORT_LINES + 1, message: `more than ${MAX_IMPORT_LINES} lines; split the file` },
      ],
    };
  }
  lines.forEach((raw, i) => {
    const line = i + 1;
    const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (text.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      // The parser's message quotes the text, which may be the key: only the position is kept.
      const at = /position (\d+)/.exec((err as Error).message);
      const where = at ? ` at column ${Number(at[1]) + 1}` : '';
      problems.push({ line, message: `not valid JSON${where}` });
      return;
    }
    const checked = checkLine(value, line, pepper, now);
    if (typeof checked === 'string') {
      problems.push({ line, message: checked });
      return;
    }
    const first = seen.get(checked.id);
    if (first !== undefined) {
      problems.push({ line, message: `the same key as line ${first}` });
      return;
    }
    seen.set(checked.id, line);
    entries.push(checked);
  });
  return { entries, problems };
}

/** The outcome of {@link storeImportedKeys}. */
export interface StoredImport {
  imported: ImportEntry[];
  /** Keys already in the store, skipped (only with `skipExisting`). */
  skipped: ImportEntry[];
  /** Keys already in the store, refused (without `skipExisting`: nothing was imported). */
  existing: ImportEntry[];
}

const iso = (ms: number): string => new Date(ms).toISOString();
const BATCH = 500;

/**
 * Stores the entries in one transaction. A key already stored (imported
 * before) makes the whole import fail, unless `skipExisting`, for re-running
 * an import that overlaps an earlier one.
 */
export function storeImportedKeys(
  db: Db,
  entries: readonly ImportEntry[],
  options: { skipExisting?: boolean; now?: number } = {},
): Promise<StoredImport> {
  const at = options.now ?? Date.now();
  return db.transaction(async (tx) => {
    const stored = new Set<string>();
    for (let i = 0; i < entries.length; i += BATCH) {
      const ids = entries.slice(i, i + BATCH).map((e) => e.id);
      const marks = ids.map((_, j) => `$${j + 1}`).join(', ');
      const rows = await tx.query<{ id: string }>(`select id from api_keys where id in (${marks})`, ids);
      for (const r of rows) stored.add(r.id);
    }
    const existing = entries.filter((e) => stored.has(e.id));
    if (existing.length > 0 && !options.skipExisting) return { imported: [], skipped: [], existing };
    const imported = entries.filter((e) => !stored.has(e.id));
    for (const e of imported) {
      await tx.execute(
        'insert into api_keys (id, name, digest, scopes, tenant, created_at, expires_at, routes) values ($1, $2, $3, $4, $5, $6, $7, $8)',
        [
          e.id,
          e.name,
          e.digest.toString('hex'),
          JSON.stringify(e.scopes),
          e.tenant ?? null,
          iso(at),
          e.expiresAt === undefined ? null : iso(e.expiresAt),
          e.routes === undefined ? null : JSON.stringify(e.routes),
        ],
      );
    }
    return { imported, skipped: existing, existing: [] };
  });
}
