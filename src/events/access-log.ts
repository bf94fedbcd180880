/** The access log: one line per finished request, when `log.access` is on. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';

/** Logs the request once its response has been handed to the socket. */
export function logOnFinish(
  logger: Logger,
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
  startedAt: number,
): void {
  res.once('finish', () => {
    logger.info(
      {
        requestId: id,
        method: req.method,
        path: req.url?.split('?')[0],
        status: res.statusCode,
        ms: Math.round((performance.now() - startedAt) * 100) / 100,
      },
      'request',
    );
  });
}
