// The injector's answers to requests that are not what the API server sends at the HTTP level:
// a body in another type or encoding, a body without a length, and what Node refuses before the
// handler (headers too slow or too large, not HTTP). Each is an HTTP error with a JSON body; none
// may cut off an answer already on its way on the same connection.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorCatalog, MutualError } from '../../errors.ts';

/** Throws the 415 or 411 for a POST whose body the webhook cannot read as the API server sends it. */
export function checkBodyFraming(request: IncomingMessage): void {
  const type = request.headers['content-type'];
  if ((type ?? '').split(';')[0]?.trim().toLowerCase() !== 'application/json') {
    throw refusal(
      415,
      `${type === undefined ? 'the request has no content-type' : `content-type ${JSON.stringify(type)} is not application/json`}: the API server posts AdmissionReviews as application/json`,
    );
  }
  const encoding = request.headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    throw refusal(
      415,
      `content-encoding ${JSON.stringify(encoding)} is not supported: send the AdmissionReview uncompressed, as the API server does`,
    );
  }
  if (request.headers['content-length'] === undefined && request.headers['transfer-encoding'] === undefined) {
    // HTTP/1.0 without Content-Length: for a request that means no body, and whatever follows
    // would be read as the next request.
    throw refusal(
      411,
      'a POST without content-length (or transfer-encoding: chunked) has no body: send the AdmissionReview with its length',
    );
  }
}

function refusal(status: number, message: string): MutualError {
  return new MutualError('MUTUAL_K8S_ADMISSION_REVIEW_INVALID', message, { detail: { status } });
}

/**
 * What Node refused before the handler, as an HTTP answer written on the socket; undefined when
 * nothing is to be written (the client is gone, or an answer is already on its way: it goes out
 * whole and the connection closes after it, as bytes Node could not frame followed a request).
 */
export function answerClientError(
  error: NodeJS.ErrnoException,
  socket: Duplex,
  inFlight: ServerResponse | undefined,
  clientTimeoutMs: number,
): MutualError | undefined {
  const code = error.code ?? '';
  if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
    socket.destroy();
    return undefined;
  }
  if (inFlight !== undefined) {
    if (!inFlight.headersSent) inFlight.setHeader('connection', 'close');
    else inFlight.once('finish', () => socket.end());
    return undefined;
  }
  const isTimeout = code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT';
  const [status, answer] = isTimeout
    ? ['408 Request Timeout', refusal(408, `the request headers did not arrive within ${clientTimeoutMs} ms`)]
    : code === 'HPE_HEADER_OVERFLOW'
      ? [
          '431 Request Header Fields Too Large',
          refusal(431, 'the request headers are larger than 16 KiB in all'),
        ]
      : [
          '400 Bad Request',
          refusal(400, `the request is not HTTP/1.1 the webhook can read (${code || error.message})`),
        ];
  const body = `${JSON.stringify({ error: { code: answer.code, message: answer.message, hint: errorCatalog[answer.code].action } })}\n`;
  socket.end(
    `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  // Closed once the client has read the answer and closed its side, or at the deadline: closing
  // at once with its bytes unread would reset the connection and could lose the answer.
  setTimeout(() => socket.destroy(), clientTimeoutMs).unref();
  return answer;
}
