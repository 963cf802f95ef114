// Plain HTTP sent to a TLS port (`curl http://`, a client set up with http:// by mistake): OpenSSL
// reads the request, refuses it, and Node destroys the TLS socket unwritten, so the client sees an
// empty reply. The TCP socket under it still writes: answer there in plain HTTP, as Go's servers do.
// Nothing peeks at connections, so TLS clients are untouched.
import { Socket } from 'node:net';
import { errorCatalog, type MutualError } from '../errors.ts';

/**
 * OpenSSL's verdicts on a first record that starts like an HTTP request (GET, POST, HEAD, PUT,
 * DELETE, PATCH, OPTIONS, TRACE; CONNECT) rather than a TLS handshake. Anything else that is not
 * TLS (garbage, an HTTP/2 prior-knowledge preface) is a failed handshake, closed unanswered.
 */
const PLAIN_HTTP_CODES = new Set(['ERR_SSL_HTTP_REQUEST', 'ERR_SSL_HTTPS_PROXY_REQUEST']);

/** Whether a server's `tlsClientError` / `clientError` is plain HTTP sent to its TLS port. */
export function isPlainHttpError(error: { code?: string | undefined }): boolean {
  return PLAIN_HTTP_CODES.has(error.code ?? '');
}

/**
 * Writes `refusal` as `HTTP/1.1 400 Bad Request`, text/plain (`error[CODE]: message` and the
 * code's hint), on the TCP socket under `tlsSocket`, then closes it; false when there is nothing to
 * write on (not a TLS socket over TCP, or already closed). Call it from the server's
 * `tlsClientError` (https: `clientError`) listener for an error `isPlainHttpError` accepts.
 * Node keeps that socket as `_parent` (undocumented; the e2e tests of the plain HTTP answer
 * of the identity and destination services guard it).
 */
export function answerPlainHttp(tlsSocket: unknown, refusal: MutualError): boolean {
  const parent = (tlsSocket as { _parent?: unknown } | undefined)?._parent;
  if (!(parent instanceof Socket) || !parent.writable || parent.destroyed) return false;
  const body = `error[${refusal.code}]: ${refusal.message}\n  hint: ${errorCatalog[refusal.code].action}\n`;
  parent.end(
    `HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  return true;
}
