/**
 * Bound (pipeline step 1). The listener bounds the head (header size and
 * count, timeouts, framing: `src/tls/listener.ts`); this module bounds the
 * body, as it is read (`src/request/body.ts`: whole within the route's
 * limit, or streamed to the upstream and cut at the limit), and closes
 * connections whose body was left unread.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** Whether the request's body is still (partly) unread. */
export function hasUnreadBody(req: IncomingMessage): boolean {
  return (
    !req.readableEnded &&
    (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0)
  );
}

/**
 * After answering a request whose body was not (fully) read, close the
 * connection instead of reading the rest: the rest may be gigabytes.
 *
 * Node closes a `Connection: close` socket with `destroySoon()`, which closes
 * the descriptor while the client is still sending; the kernel then answers
 * with a reset that can discard our response before the client reads it.
 * So, for this socket only, closing becomes a lingering close (as nginx
 * does): half-close, discard what still arrives for a moment, then destroy.
 */
export function closeWhenDone(req: IncomingMessage, res: ServerResponse): void {
  res.shouldKeepAlive = false;
  const socket = req.socket as (Socket & { destroySoon?: () => void }) | null;
  if (!socket) return;
  socket.destroySoon = () => {
    socket.end();
    socket.resume();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  };
}

const LINGER_MS = 2000;
