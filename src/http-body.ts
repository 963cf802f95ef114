// Reading a request body whole, for the daemons' small JSON APIs (identity, injector): within a
// size cap and a deadline, so a huge or trickling client is cut off rather than kept.
import type { IncomingMessage } from 'node:http';

export interface BodyLimits {
  readonly maxBytes: number;
  readonly timeoutMs: number;
  /** The caller's coded error for a body over `maxBytes` (declared or sent). */
  readonly tooLarge: () => Error;
  /** The caller's coded error for a body not complete within `timeoutMs`. */
  readonly timedOut: (receivedBytes: number) => Error;
}

/** The body as UTF-8; what arrives after a refusal is drained, not kept. */
export function readRequestBody(request: IncomingMessage, limits: BodyLimits): Promise<string> {
  return new Promise((resolve, reject) => {
    if (Number(request.headers['content-length'] ?? 0) > limits.maxBytes) {
      request.resume();
      reject(limits.tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const refuse = (error: Error) => {
      clearTimeout(timer);
      request.removeAllListeners('data');
      request.resume();
      reject(error);
    };
    const timer = setTimeout(() => refuse(limits.timedOut(size)), limits.timeoutMs);
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limits.maxBytes) refuse(limits.tooLarge());
      else chunks.push(chunk);
    });
    request.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    request.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
