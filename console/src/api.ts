/**
 * The console's calls to the admin API: same-origin, with the session
 * cookie (set HttpOnly by the server, never seen here) and the session's
 * CSRF token on every call that changes state.
 */

export type Role = 'viewer' | 'operator' | 'admin';

export interface Session {
  id: string;
  name: string;
  role: Role;
  csrfToken: string | null;
  expiresAt: string | null;
}

const ROLES: readonly Role[] = ['viewer', 'operator', 'admin'];

/** Whether `role` may do what needs `needed` (the server enforces the same). */
export const roleAllows = (role: Role, needed: Role): boolean => ROLES.indexOf(role) >= ROLES.indexOf(needed);

/** A problem+json answer. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    title: string,
    readonly detail?: string,
  ) {
    super(detail === undefined ? title : `${title} (${detail})`);
  }
}

let csrfToken: string | null = null;
let onSessionEnded: () => void = () => {};

export function useSession(session: Session | null, ended: () => void): void {
  csrfToken = session?.csrfToken ?? null;
  onSessionEnded = ended;
}

async function parse<T>(res: Response): Promise<T> {
  const text = await res.text();
  let data: unknown = {};
  if (text !== '') {
    try {
      data = JSON.parse(text);
    } catch {
      throw new ApiError(res.status, 'console.bad_answer', 'The server answered something unexpected.');
    }
  }
  if (!res.ok) {
    const p = data as { code?: string; title?: string; detail?: string };
    throw new ApiError(res.status, p.code ?? 'unknown', p.title ?? `HTTP ${res.status}`, p.detail);
  }
  return data as T;
}

/** Calls the admin API; a 401 (the session ended) sends the console back to its login. */
export async function call<T = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken !== null) headers['x-csrf-token'] = csrfToken;
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    cache: 'no-store',
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  try {
    return await parse<T>(res);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) onSessionEnded();
    throw err;
  }
}

/** Trades an admin token for a session; the token is not kept. */
export async function login(token: string): Promise<Session> {
  const res = await fetch('/admin/session', {
    method: 'POST',
    headers: { accept: 'application/json', authorization: `Bearer ${token.trim()}` },
    credentials: 'same-origin',
    cache: 'no-store',
  });
  return parse<Session>(res);
}

/** The current session, or null when there is none. */
export async function currentSession(): Promise<Session | null> {
  const res = await fetch('/admin/session', {
    headers: { accept: 'application/json' },
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (res.status === 401) return null;
  return parse<Session>(res);
}

export const fmtTime = (iso: string | null | undefined): string => {
  if (iso === null || iso === undefined) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
};

export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
