/**
 * Limit keys: what a request is counted as. Compiled once per limit into a
 * function of the request context.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { RequestContext } from '../contracts/stage.js';
import type { KeyPart } from './types.js';

/** A request's key for one limit, or undefined when a part is missing (the limit then does not count it). */
export type KeyFn = (ctx: RequestContext) => string | undefined;

/**
 * The key of a client address: IPv4 as is (IPv4-mapped IPv6 unmapped), IPv6
 * as its `/prefix` network, so that one client cannot rotate through the
 * 2^64 addresses of its own /64 to escape its limit.
 */
export function clientIpKey(ip: string, ipv6Prefix: number): string {
  if (isIP(ip) === 4) return ip;
  const groups = parseIpv6(ip);
  if (groups === undefined) return ip;
  // ::ffff:a.b.c.d in any spelling is an IPv4 client.
  if (groups[5] === 0xffff && groups.slice(0, 5).every((g) => g === 0)) {
    return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  }
  for (let i = 0; i < 8; i++) {
    const keep = Math.min(16, Math.max(0, ipv6Prefix - i * 16));
    groups[i] = keep === 0 ? 0 : groups[i]! & ((0xffff << (16 - keep)) & 0xffff);
  }
  return `${groups.map((g) => g.toString(16)).join(':')}/${ipv6Prefix}`;
}

/** Eight 16-bit groups, or undefined when `text` is not an IPv6 address. A zone (`%eth0`) is dropped. */
export function parseIpv6(text: string): number[] | undefined {
  const zone = text.indexOf('%');
  const ip = zone === -1 ? text : text.slice(0, zone);
  if (isIP(ip) !== 6) return undefined;
  const [head = '', tail] = ip.split('::');
  const toGroups = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        const [a, b, c, d] = piece.split('.').map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else out.push(Number.parseInt(piece, 16));
    }
    return out;
  };
  const left = toGroups(head);
  const right = tail === undefined ? [] : toGroups(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** Values chosen by the client (headers) or long ones are hashed: bounded, and never a secret in Redis or logs. */
function digest(value: string): string {
  return createHash('sha256').update(value).digest('base64url').slice(0, 22);
}

/** `|` separates parts; a part that contains one (or `%`) is percent-escaped so two keys never collide. */
function escapePart(value: string): string {
  return value.includes('|') || value.includes('%')
    ? value.replace(/%/g, '%25').replace(/\|/g, '%7C')
    : value;
}

function readClaim(claims: Readonly<Record<string, unknown>>, path: readonly string[]): unknown {
  let current: unknown = claims;
  for (const seg of path) {
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, seg)) return undefined;
    current = (current as Record<string, unknown>)[seg];
  }
  return current;
}

function partFn(part: KeyPart, ipv6Prefix: number): (ctx: RequestContext) => string | undefined {
  switch (part.kind) {
    case 'ip':
      return (ctx) => (ctx.clientIp === '' ? undefined : clientIpKey(ctx.clientIp, ipv6Prefix));
    case 'api_key':
      return (ctx) => (ctx.principal?.kind === 'api_key' ? escapePart(ctx.principal.id) : undefined);
    case 'client':
      return (ctx) => {
        const p = ctx.principal;
        if (p === undefined) return undefined;
        const id = p.claims.client_id;
        if (typeof id === 'string' && id !== '') return escapePart(id);
        return p.kind === 'client' ? escapePart(p.id) : undefined;
      };
    case 'principal':
      // The kind is part of the key: a JWT subject may look like an API key id.
      return (ctx) =>
        ctx.principal === undefined ? undefined : escapePart(`${ctx.principal.kind}:${ctx.principal.id}`);
    case 'tenant':
      return (ctx) => (ctx.principal?.tenant === undefined ? undefined : escapePart(ctx.principal.tenant));
    case 'route':
      return (ctx) => escapePart(ctx.route.name);
    case 'header': {
      const name = part.name;
      return (ctx) => {
        const raw = ctx.req.headers[name];
        const value = Array.isArray(raw) ? raw[0] : raw;
        return value === undefined || value === '' ? undefined : digest(value);
      };
    }
    case 'claim': {
      const path = part.path;
      return (ctx) => {
        if (ctx.principal === undefined) return undefined;
        const value = readClaim(ctx.principal.claims, path);
        if (typeof value === 'string' && value !== '')
          return value.length > 64 ? digest(value) : escapePart(value);
        if (typeof value === 'number' || typeof value === 'boolean') return String(value);
        return undefined;
      };
    }
  }
}

/** Compiles a limit's key parts into one function; `[]` gives the same key for every request. */
export function compileKey(parts: readonly KeyPart[], ipv6Prefix: number): KeyFn {
  if (parts.length === 0) return () => '*';
  const fns = parts.map((p) => partFn(p, ipv6Prefix));
  if (fns.length === 1) return fns[0]!;
  return (ctx) => {
    let key = '';
    for (let i = 0; i < fns.length; i++) {
      const value = fns[i]!(ctx);
      if (value === undefined) return undefined;
      key = i === 0 ? value : `${key}|${value}`;
    }
    return key;
  };
}
