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
  STATUS_CODES,
} from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Dispatcher, Pool as UndiciPool } from 'undici';
import { deferHeadTimeout, holdReading, noteRequestParsed, releaseReading } from './read-hold.ts';

// undici's index also loads fetch, WebSocket, caches, mocks and more: ~3 MB of heap that every
// major GC walks and every idle sidecar keeps resident. The proxy needs only the pool.
export const Pool: typeof UndiciPool = createRequire(import.meta.url)('undici/lib/dispatcher/pool.js');
export type Pool = UndiciPool;

export const CLIENT_ID_HEADER = 'x-mutual-client-id';
export const DENIED_BY_HEADER = 'x-mutual-denied-by';
/** Why the proxy, not the app, answered (Linkerd's `l5d-proxy-error`). */
export const PROXY_ERROR_HEADER = 'x-mutual-proxy-error';

const LOCAL_RESOURCE_CODES = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL']);

/**
 * The largest HTTP/1 head (request or answer, all header lines) the proxy reads, as its HTTP/2
 * path and Envoy (60 KiB) take. Node's 16 KiB default turned an app's answer with a 20 KiB
 * Set-Cookie, which curl reads straight from the app, into a 502.
 */
export const MAX_HTTP_HEAD_BYTES = 64 * 1024;

/** True when the next hop's answer head was over MAX_HTTP_HEAD_BYTES (undici's code). */
export function isAnswerHeadTooLarge(error: Error): boolean {
  return (error as NodeJS.ErrnoException).code === 'UND_ERR_HEADERS_OVERFLOW';
}

const HTTP_PARSER_ERROR = Symbol.for('undici.error.UND_ERR_HTTP_PARSER');

/**
 * True when the next hop answered, but with bytes that are not a valid HTTP/1.1 answer: a garbage
 * status line, two Content-Lengths, Content-Length with chunked, a NUL or bare CR in a header, a
 * `100` (undici has no 100-continue) or a `101` to a request that asked no upgrade. undici gives
 * the last two no code of their own, only these messages.
 */
export function isInvalidAnswer(error: Error): boolean {
  // undici's parser errors carry no code (llhttp's is lost), only its brand.
  if ((error as unknown as Record<symbol, unknown>)[HTTP_PARSER_ERROR] === true) return true;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') return true;
  return code === 'UND_ERR_SOCKET' && (error.message === 'bad response' || error.message === 'bad upgrade');
}

/**
 * A failure of this machine, not of the peer: out of file descriptors, memory, socket buffers or
 * local ports. Answered as `local_resources`, so nobody goes looking for a fault in the app or
 * the destination.
 */
export function isLocalResourceError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && LOCAL_RESOURCE_CODES.has(code);
}

/** The answer's body when the sidecar could not reach the app on `appPort` for want of its own resources. */
export function appLocalResourcesText(appPort: number, error: Error): string {
  return `mutual: the sidecar could not connect to the app on port ${appPort}, for want of its own resources: ${error.message}\n`;
}

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
  // The proxy answers `100-continue` itself (node:http, or the inbound once policy allows the
  // request); the next hop gets the body without waiting.
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

/**
 * A node:http server that is never listened on: connections are handed to it after detection.
 * `onContinueRequest`, when given, serves requests that carry `Expect: 100-continue`: it must call
 * `response.writeContinue()` itself once it lets the client send its body. Without it node:http
 * answers `100 Continue` before `onRequest` runs.
 */
export function createDetachedHttpServer(
  onRequest: RequestListener,
  onBug: (error: Error) => void,
  onContinueRequest?: RequestListener,
): Server {
  // A bug in handling one request must cost that request, not the sidecar and every connection.
  const guard =
    (listener: RequestListener): RequestListener =>
    (request, response) => {
      // node:http parses every request in a chunk and emits each, even behind an answer that closes
      // the connection; the client was told nothing more is read, so nothing more is forwarded.
      if (closingConnections.has(request.socket)) return void request.resume();
      trackAnswer(server, request.socket, response);
      try {
        listener(request, response);
      } catch (error) {
        onBug(error as Error);
        if (response.headersSent) response.destroy();
        else
          response
            .writeHead(502, { 'content-type': 'text/plain', [PROXY_ERROR_HEADER]: 'proxy_error' })
            .end(`mutual: the proxy failed on this request: ${(error as Error).message}\n`);
      }
    };
  const guarded = guard(onRequest);
  const server: Server = createServer(
    {
      requireHostHeader: false,
      keepAliveTimeout: 60_000,
      maxHeaderSize: MAX_HTTP_HEAD_BYTES,
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
  if (onContinueRequest) server.on('checkContinue', guard(onContinueRequest));
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
    // A head cut short where the proxy stopped reading (too many answers owed) is not the client's.
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT' && deferHeadTimeout(socket as Socket)) return;
    // node:http reports the error again for every chunk that follows: answer once, and let the
    // answer reach the client (destroying the socket now would reset it unread).
    if (refusedConnections.has(socket)) return;
    refusedConnections.add(socket);
    if (!socket.writable) return void socket.destroy();
    // The bad bytes were in the body of a request already forwarded (a chunk size that is not hex,
    // a bare LF, a Transfer-Encoding that is not chunked): that body never ends, so neither did its
    // forwarding nor its answer, and the refusal below waited behind that answer for good. The
    // client got nothing, and the request held a pooled connection to the next hop as long as it
    // stayed (one of the 128 to a destination, of the 512 to an app). Envoy answers it 400 at once.
    if (refuseCutShort(socket as Socket, error)) return;
    const refusal = `HTTP/1.1 ${parseErrorStatus(error.code)}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`;
    // Answers are still owed for requests read before the bad bytes. HTTP/1 answers go in request
    // order: written now, the refusal was read as the answer to the first of them (or landed in
    // the body of one under way), and ending the connection lost them all. It waits for them.
    if ((answersInFlight.get(socket)?.size ?? 0) === 0) return void endAndLinger(socket, refusal);
    afterOwedAnswers(socket, () => {
      // An answer that closed the connection has ended it already.
      if (socket.writable && !closingConnections.has(socket)) endAndLinger(socket, refusal);
      else (socket as Socket).destroySoon();
    });
  });
  return server;
}

/**
 * Answers the request whose body the parse `error` on `socket` was in, if its answer has not
 * started: its forwarding stops (the next hop never gets a body that cannot end) and it gets the
 * error's status with `connection: close`, in order behind the answers owed before it. False when
 * there is no such request (the bad bytes began a new one, or its answer is under way).
 */
function refuseCutShort(socket: Socket, error: NodeJS.ErrnoException): boolean {
  const answers = answersInFlight.get(socket);
  if (answers === undefined) return false;
  for (const response of answers) {
    const request = response.req;
    if (request.complete || response.headersSent) continue;
    const forwarded = lastForwarded.get(socket);
    const stopForwarding = forwarded?.request === request ? forwarded.stop : undefined;
    // Not closeAfterAnswer(request): a client that half-closes mid-body (its process exiting) is
    // reported here from node:http's end-of-stream handling, after the request has let go of its
    // socket; request.socket was null, the WeakSet threw, and the throw killed the sidecar.
    closingConnections.add(socket);
    const problem =
      error.code === 'HPE_INVALID_EOF_STATE'
        ? 'the client ended its connection before the request body was complete'
        : `the request body is not valid HTTP/1.1 (${(error as { reason?: string }).reason ?? error.message})`;
    // Answered before the forwarding stops: stopping it may fail the request at once, and its 502
    // then went out first, so this answer's writeHead threw (and killed the sidecar).
    response
      .writeHead(Number(parseErrorStatus(error.code).slice(0, 3)), {
        'content-type': 'text/plain',
        connection: 'close',
        [PROXY_ERROR_HEADER]: 'bad_request',
      })
      .end(`mutual: bad request: ${problem}\n`);
    stopForwarding?.();
    return true;
  }
  return false;
}

/** Ends `socket` with `answer` and lets the client read it; a client that keeps its end open is cut off. */
function endAndLinger(socket: Duplex, answer: string): void {
  socket.end(answer);
  const linger = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
  socket.once('close', () => clearTimeout(linger));
}

const CONNECT_REFUSED_TEXT =
  "mutual: CONNECT is not supported: the sidecar does not open HTTP tunnels. If the destination is a forward proxy (squid, tinyproxy), list its port in --opaque-ports (a service's opaquePorts in mesh.yaml) so its connections are carried as byte streams.\n";

/**
 * Answers a CONNECT request, which neither direction tunnels: `501 Not Implemented` (RFC 9110
 * §15.6.2: a method the server does not support for any resource; a 405 would need an `Allow`
 * naming the app's methods, which the proxy does not know), and the connection closes. Bytes the
 * client sent for the tunnel are read and dropped.
 */
export function refuseConnect(socket: Duplex): void {
  socket.on('error', () => {});
  socket.resume();
  endAndLinger(
    socket,
    `HTTP/1.1 501 Not Implemented\r\ncontent-type: text/plain\r\n${PROXY_ERROR_HEADER}: connect_not_supported\r\ncontent-length: ${Buffer.byteLength(CONNECT_REFUSED_TEXT)}\r\nconnection: close\r\n\r\n${CONNECT_REFUSED_TEXT}`,
  );
}

/**
 * Refuses a malformed request with `400`, the body naming `problem`: never forwarded, its body
 * drained, and the connection closed after the answer (requests pipelined behind it are dropped).
 */
export function answerBadRequest(request: IncomingMessage, response: ServerResponse, problem: string): void {
  request.resume();
  closeAfterAnswer(request);
  response
    .writeHead(400, {
      'content-type': 'text/plain',
      connection: 'close',
      [PROXY_ERROR_HEADER]: 'bad_request',
    })
    .end(`mutual: bad request: ${problem}\n`);
}

/**
 * What is wrong with `request` when the next hop's client (undici) refused to send it as given —
 * two Host headers (RFC 9112 §3.2 calls for a 400), a target that is neither a path nor an
 * absolute URL (`OPTIONS *`) — or undefined when `error` is a failure of the next hop. Only ever
 * called once forwarding failed, so the common path pays nothing for it.
 */
export function malformedRequestProblem(request: IncomingMessage, error: Error): string | undefined {
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== 'UND_ERR_INVALID_ARG' && code !== 'UND_ERR_NOT_SUPPORTED') return undefined;
  let hosts = 0;
  for (let i = 0; i < request.rawHeaders.length; i += 2) {
    if (request.rawHeaders[i]!.toLowerCase() === 'host') hosts++;
  }
  if (hosts > 1) return `the request has ${hosts} Host headers; send one`;
  const target = request.url ?? '';
  if (!target.startsWith('/') && !/^https?:\/\//i.test(target)) {
    return `the request target ${JSON.stringify(target.slice(0, 200))} is not a path; send one that starts with /`;
  }
  return `the request cannot be forwarded as sent (${error.message})`;
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
/**
 * The last thing read on a connection that must wait for the answers owed before it: an upgrade or
 * CONNECT to handle, or the error answer for bytes that are not HTTP/1. Nothing is read after it.
 */
const pendingAfterAnswers = new WeakMap<object, () => void>();

/**
 * Runs `handle`, which answers the last thing read on `socket` (an upgrade, a CONNECT, bytes that
 * are not HTTP/1), once every answer owed for the requests read before it is out. HTTP/1 answers
 * go in request order: handled at once, its 101 or 400 went ahead of those answers and was read as
 * the answer to the first of them (and ending the connection lost them all).
 */
export function afterOwedAnswers(socket: Duplex, handle: () => void): void {
  if ((answersInFlight.get(socket)?.size ?? 0) === 0) return void handle();
  // node:http dropped its own listeners on an upgrade: an error while waiting is not unhandled.
  socket.on('error', () => {});
  socket.once('close', () => pendingAfterAnswers.delete(socket));
  pendingAfterAnswers.set(socket, handle);
}

/**
 * How many answers one connection may owe before the proxy stops reading it: a client that
 * pipelines requests without reading their answers is otherwise read as fast as it writes, each
 * request parsed into objects (~5 KB) kept until the app, one request at a time, has answered it
 * (100,000 small GETs: +490 MB). Envoy and nginx read the next request only once the last is
 * answered; past this, the bytes wait in the kernel and TCP holds the client back. Reading resumes
 * once half are answered. Node parses the whole chunk it read (64 KB at most) before the pause.
 */
const MAX_OWED_ANSWERS = 32;

function trackAnswer(server: Server, socket: Socket, response: ServerResponse): void {
  const answers = answersInFlight.get(socket) ?? new Set<ServerResponse>();
  answersInFlight.set(socket, answers);
  answers.add(response);
  noteRequestParsed(socket);
  if (answers.size >= MAX_OWED_ANSWERS) holdReading(socket);
  response.once('close', () => {
    answers.delete(response);
    // A refused connection has no further requests to read.
    if (!refusedConnections.has(socket) && answers.size <= MAX_OWED_ANSWERS / 2) {
      releaseReading(socket, server);
    }
    const pending = answers.size === 0 ? pendingAfterAnswers.get(socket) : undefined;
    if (pending === undefined) return;
    pendingAfterAnswers.delete(socket);
    if (!socket.destroyed) pending();
  });
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

function forwardedResponseHeaders(raw: readonly Buffer[], isChunked: boolean): string[] {
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const lower = name.toLowerCase();
    // `Trailer` announces the trailer fields passed on (see forwardTrailers); node:http refuses to
    // write it on an answer it does not chunk, so there it goes with the trailers.
    if (HOP_BY_HOP.has(lower) && !(lower === 'trailer' && isChunked)) continue;
    headers.push(name, raw[i + 1]!.toString('latin1'));
  }
  return headers;
}

/** Whether node:http will send this answer chunked: HTTP/1.1, a body, and no Content-Length to pass on. */
function isAnswerChunked(request: IncomingMessage, statusCode: number, raw: readonly Buffer[]): boolean {
  if (request.httpVersion !== '1.1' || request.method === 'HEAD') return false;
  if (statusCode === 204 || statusCode === 304) return false;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 14 && raw[i]!.toString('latin1').toLowerCase() === 'content-length') return false;
  }
  return true;
}

/** Fields that never go in trailers the proxy writes: framing, routing, and hop-by-hop ones (RFC 9110 §6.5.1). */
const NOT_IN_TRAILERS = new Set(['content-length', 'content-type', 'content-encoding', 'host', 'trailer']);

/**
 * Passes the next hop's chunked trailers (a checksum, gRPC-Web-like status) on to the client, as
 * Envoy and Linkerd do for HTTP/1; dropped, a client that checks them saw an answer that looked
 * cut. node:http writes them only when its answer is chunked, as it is whenever the next hop's
 * was (no Content-Length to pass on), and an HTTP/1.0 client never gets any.
 */
function forwardTrailers(response: ServerResponse, raw: readonly Buffer[] | null | undefined): void {
  if (!raw || raw.length === 0) return;
  const trailers: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || NOT_IN_TRAILERS.has(lower)) continue;
    trailers.push([name, raw[i + 1]!.toString('latin1')]);
  }
  if (trailers.length === 0) return;
  try {
    response.addTrailers(trailers);
  } catch {
    // A field node:http will not write (llhttp let it through): the answer ends without trailers,
    // as it did before they were passed on.
  }
}

/**
 * Passes a `103 Early Hints` from the next hop on to the client (as Envoy passes 1xx answers), so
 * a browser behind the mesh can start its preloads while the app still works on the answer. Only
 * to HTTP/1.1 clients (RFC 9110 §15.2: none to HTTP/1.0), and only with a Link, which is what
 * node:http writes hints for. Other 1xx answers stay between the next hop and the proxy.
 */
function forwardEarlyHints(request: IncomingMessage, response: ServerResponse, raw: readonly Buffer[]): void {
  if (request.httpVersion !== '1.1' || response.headersSent) return;
  const hints: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    if (HOP_BY_HOP.has(name)) continue;
    // node:http checks each Link as one link: `<a>; rel=preload, <b>; rel=preload` is two.
    const values =
      name === 'link' ? raw[i + 1]!.toString('latin1').split(/,\s*(?=<)/) : [raw[i + 1]!.toString('latin1')];
    const previous = hints[name];
    hints[name] =
      previous === undefined && values.length === 1 ? values[0]! : [previous ?? [], values].flat(2);
  }
  if (hints.link === undefined) return;
  try {
    response.writeEarlyHints(hints);
  } catch {
    // A Link node:http refuses to write: the hints are only a head start, the answer follows.
  }
}

/**
 * The reason phrase as node:http writes it back (latin1, one byte a character). undici decodes the
 * app's as UTF-8: `200 Café` in UTF-8 would go out as a lone 0xE9, and bytes that are not UTF-8
 * became U+FFFD, which writeHead refuses, so the client got a 502. Valid UTF-8 goes back as the app
 * sent it; anything else gets the status code's standard phrase (Envoy always writes its own).
 */
function reasonBytes(statusCode: number, reason = ''): string {
  if (Buffer.byteLength(reason) === reason.length) return reason;
  return reason.includes('\uFFFD')
    ? (STATUS_CODES[statusCode] ?? '')
    : Buffer.from(reason).toString('latin1');
}

/**
 * The head of a request as the next hop reads it, for upgrades that become byte streams. Header
 * values are node:http's latin1 reading of the bytes sent: write it with 'latin1' to send them back.
 */
export function requestHeadText(request: IncomingMessage, headers: readonly string[]): string {
  let text = `${request.method} ${request.url} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${text}\r\n`;
}

/** Methods a request may be sent again with (RFC 9110 §9.2.2): the app may have acted on the first. */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * Whether a request that got no byte of answer may go once more: idempotent, without a body (its
 * stream is spent), and failed on a pooled connection the next hop closed or reset under it. A
 * keep-alive connection the app closes as it goes idle (without `Connection: close`: Node's 5 s
 * keepAliveTimeout, gunicorn, a max-requests limit) is picked for the next request in the moment
 * it closes: an app closing each connection 0-2 ms after its 10th answer got 44 of 2,000
 * sequential GETs answered 502, where undici or Envoy in front of it send the GET again. Sent
 * through the pool, not on a connection of its own: if another pooled one dies too, that is the 502.
 */
function isRetriable(request: IncomingMessage, error: Error): boolean {
  if (!IDEMPOTENT_METHODS.has(request.method ?? 'GET') || isInvalidAnswer(error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE';
}

/** A forwarded request: settled once answered or dropped; `next` is the request queued behind it. */
interface Forwarded {
  isSettled: boolean;
  next?: () => void;
  request: IncomingMessage | undefined;
  /** Stops forwarding it: never sent, or aborted at the next hop. */
  stop: (() => void) | undefined;
}

/** Per client connection: the last request forwarded on it. */
const lastForwarded = new WeakMap<object, Forwarded>();

/**
 * How long an answer may still take to start once the client has half-closed (FIN) after its whole
 * request. A client may do that and still read the answer, so the sidecars wait (hyper, Envoy and
 * nginx cancel at once); but a client that gave up (a timeout) and closed looks the same, and its
 * request held a pooled connection to the next hop, and the app's handler, until the app answered:
 * for good, from an app that never does, and 128 of them took the whole pool to a destination.
 * The same on mTLS connections: clients with certificates half-close too (Node's tls `end(request)`,
 * openssl s_client at the end of its input), though the outbound never does.
 */
export const HALF_CLOSED_ANSWER_WAIT_MS = 10_000;

/**
 * Sends `request` through `dispatcher` and streams the answer into `response`. `onFailure` is
 * called when no answer came (connect, TLS or app failure) and the response is still unsent.
 * Pipelined requests of one connection go one after the other, as Envoy and hyper send them: their
 * answers go back in order anyway, and sent all at once, a client that pipelined hundreds of
 * requests and read nothing held one pooled connection each, all 512 of the app's, and every
 * other client of the port waited.
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
  let isClientGone = false;
  const onClientGone = () => {
    isClientGone = true;
    if (!finished) controller?.abort(new Error('the client went away'));
  };
  response.on('close', onClientGone);
  // No promise per request: a keep-alive client's previous request has settled already, and this
  // one starts at once, not a microtask later.
  const forwarded: Forwarded = { isSettled: false, request, stop: onClientGone };
  const socket = request.socket;
  let halfClosedTimer: NodeJS.Timeout | undefined;
  const onClientHalfClosed = () => {
    if (finished || isClientGone || response.headersSent || halfClosedTimer) return;
    // A body still being read is not waited on yet: its pace is the app's.
    if (!request.complete) return void request.once('end', onClientHalfClosed);
    halfClosedTimer = setTimeout(() => {
      if (!response.headersSent) socket.destroy();
    }, HALF_CLOSED_ANSWER_WAIT_MS);
  };
  const settle = () => {
    if (forwarded.isSettled) return;
    forwarded.isSettled = true;
    clearTimeout(halfClosedTimer);
    socket.off('end', onClientHalfClosed);
    // Let go at once: held from lastForwarded (a WeakMap keyed by the socket) until the socket is
    // collected, the request and this closure cost every new connection 10 µs of GC and 7% of the
    // new-connection rate (interleaved A/B runs through a sidecar pair).
    forwarded.request = undefined;
    forwarded.stop = undefined;
    forwarded.next?.();
  };
  response.once('finish', settle);
  response.once('close', settle);
  const previous = lastForwarded.get(request.socket);
  lastForwarded.set(request.socket, forwarded);
  // A pipelined request's response has no socket until those before it are answered, so it never
  // emits 'close'; node:http destroys the request itself when the connection goes. Left running,
  // its answer waited for a 'drain' that never comes, holding a pooled connection to the app for
  // good: a client that pipelined a few hundred requests and left took the whole pool with it.
  request.on('close', () => {
    if (!request.errored && !request.socket?.destroyed) return;
    onClientGone();
    settle();
  });
  let isRetried = false;
  let hasAnswerStarted = false;
  const start = () => {
    if (isClientGone) return;
    // Watched from its start only, so requests pipelined behind it add no listener each.
    if (!isRetried) {
      if (socket.readableEnded) onClientHalfClosed();
      else socket.once('end', onClientHalfClosed);
    }
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
          // Queued in the pool until the client had gone: never sent.
          if (isClientGone) started.abort(new Error('the client went away'));
        },
        onResponseStart(started, statusCode, _headers, statusMessage) {
          hasAnswerStarted = true;
          const raw = (started as unknown as { rawHeaders: Buffer[] | null }).rawHeaders ?? [];
          if (statusCode === 103) return forwardEarlyHints(request, response, raw);
          // Other 1xx informational answers stay between the next hop and us; wait for the final one.
          if (statusCode < 200) return;
          try {
            response.writeHead(
              statusCode,
              reasonBytes(statusCode, statusMessage),
              forwardedResponseHeaders(raw, isAnswerChunked(request, statusCode, raw)),
            );
          } catch (error) {
            // llhttp reads a reason phrase that node:http refuses to write (`200 O\x01K`): writeHead
            // threw, and kept that reason, so the 502 for it threw too, inside undici, and the
            // client waited forever (holding a pooled connection between the sidecars). Answered
            // as any malformed answer is: 502, with node's own reason.
            response.statusMessage = '';
            throw error;
          }
        },
        onResponseData(started, chunk) {
          if (!response.write(chunk)) {
            started.pause();
            response.once('drain', () => started.resume());
          }
        },
        onResponseEnd(ended) {
          finished = true;
          forwardTrailers(response, (ended as unknown as { rawTrailers?: Buffer[] }).rawTrailers);
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
          // Ended: answered by the proxy already (refuseCutShort), which a destroy would cut short.
          if (response.destroyed || response.writableEnded) return;
          if (!isRetried && !hasAnswerStarted && !hasBody && !isClientGone && isRetriable(request, error)) {
            isRetried = true;
            // Once undici has let go of the dead connection, or the pool hands it the same one.
            return void setImmediate(start);
          }
          if (!response.headersSent) onFailure(error);
          else response.destroy();
        },
      },
    );
  };
  if (previous && !previous.isSettled) previous.next = start;
  else start();
}
