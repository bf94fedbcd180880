/** Reading a request body whole, for stages that must see it (validation, body-bound rules). */
import { gatewayError } from '../errors.js';
import type { RequestContext } from '../pipeline/context.js';

/**
 * Reads the request body, at most the route's body limit (413 past it, as
 * soon as it is passed), once: later calls return the same bytes. The
 * upstream then receives exactly these bytes instead of the stream.
 */
export function readBody(ctx: RequestContext): Promise<Buffer> {
  if (ctx.body !== undefined) return Promise.resolve(ctx.body);
  const { req } = ctx;
  const limit = ctx.route.bodyLimit;
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(
      gatewayError('bodyTooLarge', { internal: `content-length ${declared} > ${limit}` }),
    );
  }
  if (declared === undefined && req.headers['transfer-encoding'] === undefined) {
    ctx.body = Buffer.alloc(0);
    return Promise.resolve(ctx.body);
  }
  if (req.headers.expect?.toLowerCase() === '100-continue') ctx.res.writeContinue();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(gatewayError('bodyTooLarge', { internal: `body passed ${limit} bytes` }));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      ctx.body = Buffer.concat(chunks, size);
      resolve(ctx.body);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(gatewayError('badRequest', { internal: `reading the body failed: ${err.message}` }));
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
