/** Tokens of an external (HS256) provider and a wait helper, for the kill switch's tests. */
import { SignJWT } from 'jose';
import { send } from '../../test-support/http.js';

const SECRET = 'kill-switch-test-hmac-secret-of-32-bytes-or-more';
process.env.PC_KILL_SWITCH_SECRET = SECRET;
export const KILL_SWITCH_ISSUER = 'https://idp.kill-switch.test';
const ISS = KILL_SWITCH_ISSUER;

export function externalToken(
  claims: { sub: string; jti?: string; client_id?: string; iat?: number },
  issuer = ISS,
  secret = SECRET,
): Promise<string> {
  const t = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({
    scope: 'orders:read',
    ...(claims.client_id ? { client_id: claims.client_id } : {}),
  })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(issuer)
    .setAudience('orders')
    .setSubject(claims.sub)
    .setIssuedAt(claims.iat ?? t - 5)
    .setExpirationTime(t + 600);
  if (claims.jti) jwt.setJti(claims.jti);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** Sends until the answer is `status`, or `timeoutMs` passes; the time it took, in ms. */
export async function until(
  url: string,
  headers: Record<string, string>,
  status: number,
  timeoutMs = 5000,
): Promise<number> {
  const started = performance.now();
  for (;;) {
    const reply = await send(url, '/orders', { headers });
    if (reply.status === status) return performance.now() - started;
    if (performance.now() - started > timeoutMs) {
      throw new Error(`still ${reply.status} after ${timeoutMs} ms, expected ${status}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}
