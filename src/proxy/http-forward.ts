// One HTTP/1.x request from a node:http server to the next hop through an undici dispatcher, used
// by both directions: inbound (to the app on 127.0.0.1) and outbound (to the destination's proxy
// over pooled mTLS). undici's llhttp parser and plain callbacks cost a fraction of node:http's
// ClientRequest + Agent + stream pipes, which dominated the proxy's CPU per request.
import {
  createServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createRequire } from 'node:module';
import type { Dispatcher, Pool as UndiciPool } from 'undici';

// undici's index also loads fetch, WebSocket, caches, mocks and more: ~3 MB of heap that every
// major GC walks and every idle sidecar keeps resident. The proxy needs only the pool.
export const Pool: typeof UndiciPool = createRequire(import.meta.url)('undici/lib/dispatcher/pool.js');
export type Pool = UndiciPool;

export const CLIENT_ID_HEADER = 'x-mutual-client-id';
export const DENIED_BY_HEADER = 'x-mutual-denied-by';
/** Why the proxy, not the app, answered (Linkerd's `l5d-proxy-error`). */
export const PROXY_ERROR_HEADER = 'x-mutual-proxy-error';

/** Connection-scoped headers that must not be forwarded hop to hop (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'http2-settings',
  // node:http has already answered `100-continue`; the next hop gets the body without waiting.
  'expect',
  // Only the receiving proxy may say who the client is; whatever arrives from elsewhere is dropped.
  CLIENT_ID_HEADER,
]);

/** `x-mutual-client-id` or a spelling an app may read as it (`X_Mutual_Client_Id`: CGI, WSGI, Rack, PHP). */
export function isClientIdHeader(name: string): boolean {
  return (
    name.length === CLIENT_ID_HEADER.length && name.toLowerCase().replaceAll('_', '-') === CLIENT_ID_HEADER
  );
}

/** A node:http server that is never listened on: connections are handed to it after detection. */
export function createDetachedHttpServer(onRequest: RequestListener, onBug: (error: Error) => void): Server {
  // A bug in handling one request must cost that request, not the sidecar and every connection.
  const guarded: RequestListener = (request, response) => {
    // node:http parses every request in a chunk and emits each, even behind an answer that closes
    // the connection; the client was told nothing more is read, so nothing more is forwarded.
    if (closingConnections.has(request.socket)) return void request.resume();
    trackAnswer(request.socket, response);
    try {
      onRequest(request, response);
    } catch (error) {
      onBug(error as Error);
      if (response.headersSent) response.destroy();
      else
        response
          .writeHead(502, { 'content-type': 'text/plain', [PROXY_ERROR_HEADER]: 'proxy_error' })
          .end(`mutual: the proxy failed on this request: ${(error as Error).message}\n`);
    }
  };
  const server: Server = createServer(
    {
      requireHostHeader: false,
      keepAliveTimeout: 60_000,
      // `Upgrade: h2c` (and an upgrade with a body: a WebSocket's never has one) is answered as a
      // plain request. Spliced as an upgrade, an app that accepts h2c would take further requests
      // as HTTP/2 streams past policy and identity checks.
      shouldUpgradeCallback: (request) =>
        server.listenerCount('upgrade') > 0 &&
        !/\bh2c\b/i.test(request.headers.upgrade ?? '') &&
        request.headers['transfer-encoding'] === undefined &&
        (request.headers['content-length'] ?? '0') === '0',
    },
    guarded,
  );
  // A client may send its request and half-close at once; answer before closing.
  (server as unknown as { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  server.headersTimeout = 30_000;
  server.requestTimeout = 0;
  // node:http tracks connections (for closeIdleConnections and the headersTimeout check) only once
  // the server is listening; this one never listens, so start the tracking by hand.
  server.emit('listening');
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    // Bytes after a request with `Connection: close` are ignored (RFC 9112 §9.6): that request
    // still gets its answer, and node:http closes the connection after it. Answering 400 at once
    // told the client its request failed while the app went on to serve it.
    if (error.code === 'HPE_CLOSED_CONNECTION') return;
    // node:http reports the error again for every chunk that follows: answer once, and let the
    // answer reach the client (destroying the socket now would reset it unread).
    if (refusedConnections.has(socket)) return;
    refusedConnections.add(socket);
    // An answer under way cannot be interrupted: a status line written now would land in its body.
    const answers = answersInFlight.get(socket);
    if (!socket.writable || [...(answers ?? [])].some((answer) => answer.headersSent)) {
      return void socket.destroy();
    }
    socket.end(`HTTP/1.1 ${parseErrorStatus(error.code)}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    // A client that keeps its end open after the answer is cut off.
    const linger = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
    socket.once('close', () => clearTimeout(linger));
  });
  return server;
}

/** The status node:http itself answers a parse error with: a head over the size limit is 431. */
function parseErrorStatus(code: string | undefined): string {
  if (code === 'HPE_HEADER_OVERFLOW') return '431 Request Header Fields Too Large';
  if (code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') return '413 Payload Too Large';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return '408 Request Timeout';
  return '400 Bad Request';
}

/** How long a connection refused for a malformed request is kept open for its answer to be read. */
const REFUSED_LINGER_MS = 5_000;
/** Connections answered an error for bytes that are not HTTP/1. */
const refusedConnections = new WeakSet<object>();
/** Connections whose answer said `connection: close`. */
const closingConnections = new WeakSet<object>();
/** Answers not yet finished, per connection, so a parse error never writes into one. */
const answersInFlight = new WeakMap<object, Set<ServerResponse>>();

function trackAnswer(socket: object, response: ServerResponse): void {
  const answers = answersInFlight.get(socket) ?? new Set<ServerResponse>();
  answersInFlight.set(socket, answers);
  answers.add(response);
  response.once('close', () => answers.delete(response));
}

/**
 * Marks the connection of `request`, which is being answered with `connection: close`: requests
 * the client pipelined behind it are dropped unanswered, never forwarded or upgraded.
 */
export function closeAfterAnswer(request: IncomingMessage): void {
  closingConnections.add(request.socket);
}

/** Whether an earlier answer on the connection of `request` closes it (see closeAfterAnswer). */
export function isClosing(request: IncomingMessage): boolean {
  return closingConnections.has(request.socket);
}

/** The request's end-to-end headers as flat name/value pairs, plus `extra` ones. */
export function forwardedRequestHeaders(request: IncomingMessage, ...extra: string[]): string[] {
  const headers: string[] = [];
  const raw = request.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (HOP_BY_HOP.has(name.toLowerCase()) || isClientIdHeader(name)) continue;
    headers.push(name, raw[i + 1]!);
  }
  headers.push(...extra);
  return headers;
}

function forwardedResponseHeaders(raw: readonly Buffer[]): string[] {
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    if (HOP_BY_HOP.has(name.toLowerCase())) continue;
    headers.push(name, raw[i + 1]!.toString('latin1'));
  }
  return headers;
}

/** The head of a request as the next hop reads it, for upgrades that become byte streams. */
export function requestHeadText(request: IncomingMessage, headers: readonly string[]): string {
  let text = `${request.method} ${request.url} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${text}\r\n`;
}

/**
 * Sends `request` through `dispatcher` and streams the answer into `response`. `onFailure` is
 * called when no answer came (connect, TLS or app failure) and the response is still unsent.
 */
export function forwardRequest(
  request: IncomingMessage,
  response: ServerResponse,
  dispatcher: Dispatcher,
  headers: string[],
  onFailure: (error: Error) => void,
): void {
  const hasBody =
    request.headers['transfer-encoding'] !== undefined ||
    (request.headers['content-length'] !== undefined && request.headers['content-length'] !== '0');
  let controller: { abort(reason: Error): void } | undefined;
  let finished = false;
  response.on('close', () => {
    if (!finished) controller?.abort(new Error('the client went away'));
  });
  dispatcher.dispatch(
    {
      path: request.url ?? '/',
      method: request.method ?? 'GET',
      headers,
      body: hasBody ? request : null,
      // Never queue a request behind another one's slow answer on the same connection.
      blocking: true,
    },
    {
      onRequestStart(started) {
        controller = started;
      },
      onResponseStart(started, statusCode, _headers, statusMessage) {
        // 1xx informational answers stay between the next hop and us; wait for the final one.
        if (statusCode < 200) return;
        const raw = (started as unknown as { rawHeaders: Buffer[] | null }).rawHeaders ?? [];
        response.writeHead(statusCode, statusMessage ?? '', forwardedResponseHeaders(raw));
      },
      onResponseData(started, chunk) {
        if (!response.write(chunk)) {
          started.pause();
          response.once('drain', () => started.resume());
        }
      },
      onResponseEnd() {
        finished = true;
        // Answered before the whole body was sent (an app that never reads it): undici stops
        // reading the request and destroys it, and node:http then stops reading the connection, so
        // the client's next request would wait forever. Discard the rest, as node:http does itself.
        if (!request.complete) (request as IncomingMessage & { _dump(): void })._dump();
        response.end();
      },
      onResponseError(_started, error) {
        finished = true;
        // Not request.destroyed: undici destroys the request once it has sent the body, so an app
        // that died after reading an upload left the client waiting forever for an answer.
        if (response.destroyed) return;
        if (!response.headersSent) onFailure(error);
        else response.destroy();
      },
    },
  );
}
