/**
 * Console sessions: after logging in with an admin token, the browser holds
 * a random session id in an `HttpOnly; Secure; SameSite=Strict` cookie named
 * with the `__Host-` prefix (only this host's secure origins can set it); the
 * server keeps the session (bounded, idle and absolute expiry) and a CSRF
 * token that every state-changing call made with the cookie must repeat in
 * the `x-csrf-token` header.
 *
 * Hand-written: a session here is a few fields in a bounded Map tied to the
 * admin API's own token records; a session library would bring a store
 * abstraction, signing and middleware this listener does not use.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AdminPrincipal } from '../principal.js';

export const SESSION_COOKIE = '__Host-pcl_session';
export const CSRF_HEADER = 'x-csrf-token';

export interface SessionSettings {
  /** A session unused this long ends. Default 30 minutes. */
  idleMs: number;
  /** A session ends this long after login, used or not. Default 12 hours. */
  absoluteMs: number;
  /** Most sessions at once; the oldest is dropped to make room. Default 1000. */
  max: number;
}

export const DEFAULT_SESSION_SETTINGS: SessionSettings = {
  idleMs: 30 * 60_000,
  absoluteMs: 12 * 60 * 60_000,
  max: 1000,
};

export interface ConsoleSession {
  /** sha256 of the session id: the id itself is never kept. */
  readonly key: string;
  /** The admin: an admin token's record, or a JWT or certificate admin (whose `expiresAt` also ends the session). */
  readonly token: AdminPrincipal;
  readonly csrf: string;
  readonly createdAt: number;
  lastSeen: number;
  /** When the admin's credential was last found still active. */
  checkedAt: number;
}

const digest = (id: string) => createHash('sha256').update(id).digest('hex');

/** The session id in the request's `Cookie` header, or undefined. */
export function sessionIdOf(req: IncomingMessage): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === SESSION_COOKIE) {
      const value = part.slice(eq + 1).trim();
      return /^[A-Za-z0-9_-]{43}$/.test(value) ? value : '';
    }
  }
  return undefined;
}

/** Whether `presented` equals `expected`, in time independent of where they differ. */
export function sameSecret(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export class SessionStore {
  private readonly sessions = new Map<string, ConsoleSession>();
  constructor(
    readonly settings: SessionSettings = DEFAULT_SESSION_SETTINGS,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new session for `token`: its id (for the cookie only) and the session. */
  create(token: AdminPrincipal): { id: string; session: ConsoleSession } {
    this.sweep();
    while (this.sessions.size >= this.settings.max) {
      const oldest = this.sessions.keys().next().value as string;
      this.sessions.delete(oldest);
    }
    const id = randomBytes(32).toString('base64url');
    const t = this.now();
    const session: ConsoleSession = {
      key: digest(id),
      token,
      csrf: randomBytes(32).toString('base64url'),
      createdAt: t,
      lastSeen: t,
      checkedAt: t,
    };
    this.sessions.set(session.key, session);
    return { id, session };
  }

  /** The live session of `id`, its idle time restarted; undefined when unknown or expired. */
  get(id: string): ConsoleSession | undefined {
    const key = digest(id);
    const s = this.sessions.get(key);
    if (s === undefined) return undefined;
    const t = this.now();
    if (!this.alive(s, t)) {
      this.sessions.delete(key);
      return undefined;
    }
    s.lastSeen = t;
    return s;
  }

  /** Whether `s` is still in the store and within its idle and absolute limits (does not touch it). */
  isLive(s: ConsoleSession): boolean {
    return this.sessions.get(s.key) === s && this.alive(s, this.now());
  }

  delete(s: ConsoleSession): void {
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
  }

  /** Ends every session of an admin token (it was revoked). */
  deleteToken(tokenId: string): void {
    for (const [key, s] of this.sessions) if (s.token.id === tokenId) this.sessions.delete(key);
  }

  get size(): number {
    return this.sessions.size;
  }

  /** When `s` ends if unused from now on. */
  expiresAt(s: ConsoleSession): number {
    return Math.min(
      s.lastSeen + this.settings.idleMs,
      s.createdAt + this.settings.absoluteMs,
      s.token.expiresAt ?? Number.POSITIVE_INFINITY,
    );
  }

  /** The `Set-Cookie` value of a new session. */
  cookie(id: string): string {
    const maxAge = Math.floor(this.settings.absoluteMs / 1000);
    return `${SESSION_COOKIE}=${id}; Path=/; Max-Age=${maxAge}; HttpOnly; Secure; SameSite=Strict`;
  }

  private alive(s: ConsoleSession, t: number): boolean {
    // A session never outlives its credential (a JWT's exp, a certificate's notAfter).
    return (
      t - s.lastSeen < this.settings.idleMs &&
      t - s.createdAt < this.settings.absoluteMs &&
      (s.token.expiresAt === undefined || t < s.token.expiresAt)
    );
  }

  private sweep(): void {
    const t = this.now();
    for (const [key, s] of this.sessions) if (!this.alive(s, t)) this.sessions.delete(key);
  }
}

/** The `Set-Cookie` value that removes the session cookie. */
export const CLEAR_COOKIE = `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict`;
