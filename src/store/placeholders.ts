import { StoreError } from './errors.js';

/** SQL rewritten for SQLite's anonymous `?` parameters. */
export interface PositionalSql {
  sql: string;
  /** For each `?` in `sql`, in order, the 1-based index into the caller's `$n` parameters. */
  order: number[];
  /** The highest `$n` used (0 when there are none). */
  highest: number;
}

const isIdentChar = (ch: string | undefined): boolean =>
  ch !== undefined && (/[A-Za-z0-9_$]/.test(ch) || ch.charCodeAt(0) > 0x7f);
const isDigit = (ch: string | undefined): boolean => ch !== undefined && ch >= '0' && ch <= '9';

/**
 * Rewrites PostgreSQL-style `$1, $2 …` placeholders to SQLite `?`s, returning
 * which parameter each `?` binds, so a `$2` used twice binds twice.
 *
 * Hand-written because it has to follow SQLite's own tokenizer: text inside
 * string literals, quoted identifiers (`"…"`, `` `…` ``, `[…]`) and comments is
 * left alone, and `$1` inside an identifier such as `a$1` is not a placeholder.
 * A bare `?` is refused, because mixing styles would bind the wrong values.
 */
export function toSqlitePositional(sql: string): PositionalSql {
  const order: number[] = [];
  let out = '';
  let copiedUpTo = 0;
  let i = 0;
  const skipQuoted = (close: string, doubledEscapes: boolean): void => {
    i++;
    while (i < sql.length) {
      if (sql[i] === close) {
        if (doubledEscapes && sql[i + 1] === close) {
          i += 2;
          continue;
        }
        i++;
        return;
      }
      i++;
    }
  };
  while (i < sql.length) {
    const ch = sql[i];
    if (ch === "'" || ch === '"' || ch === '`') {
      skipQuoted(ch, true);
    } else if (ch === '[') {
      skipQuoted(']', false);
    } else if (ch === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end + 1;
    } else if (ch === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? sql.length : end + 2;
    } else if (ch === '?') {
      throw new StoreError(
        'store.invalid_params',
        'SQL must use $1, $2 … placeholders, not "?" (the store rewrites them for SQLite)',
      );
    } else if (ch === '$' && isDigit(sql[i + 1]) && !isIdentChar(sql[i - 1])) {
      let end = i + 1;
      while (isDigit(sql[end])) end++;
      if (isIdentChar(sql[end])) {
        i = end;
        continue;
      }
      const index = Number(sql.slice(i + 1, end));
      if (index < 1) throw new StoreError('store.invalid_params', 'placeholders are numbered from $1');
      out += sql.slice(copiedUpTo, i) + '?';
      order.push(index);
      copiedUpTo = end;
      i = end;
    } else {
      i++;
    }
  }
  out += sql.slice(copiedUpTo);
  return { sql: out, order, highest: order.reduce((a, b) => Math.max(a, b), 0) };
}
