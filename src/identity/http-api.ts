import { createHash } from 'node:crypto';
import { type IncomingMessage, maxHeaderSize, type ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { parseDuration } from '../config/index.ts';
import { type ErrorCode, errorCatalog, isMutualError, MutualError } from '../errors.ts';
import { readRequestBody } from '../http-body.ts';
import { knownVersions } from '../known-versions.ts';
import {
  type ConnectionLimit,
  capConnectionsPerAddress,
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  defaultMaxConnections,
  limitConnections,
  type ShedState,
  shedStateText,
} from '../net/index.ts';
import { bundleToJwks, bundleToPem, type TrustBundle } from '../pki/index.ts';
import {
  answerPlainHttp,
  isPlainHttpError,
  limitPeerKeyUpdates,
  MESH_TLS_GROUPS,
  PEER_KEY_UPDATES_ALLOWED,
} from '../tls/index.ts';
import { type Certifier, RateLimitedError } from './certifier.ts';

export const MAX_REQUEST_BODY_BYTES = 64 * 1024;
const MAX_LONG_POLL_S = 60;

export interface BundleSource {
  current(): TrustBundle;
  /** Calls `listener` after every change; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
}

export interface IdentityApiDeps {
  readonly certifier: Certifier;
  readonly bundles: BundleSource;
  /** PEM key and chain of the service's own SVID. */
  readonly serverCredentials: { key: string; cert: string };
  /** How long a client may take for its TLS handshake, its headers and its body; default 10 s. */
  readonly clientTimeoutMs?: number;
  /** Open connections one client address may have; default DEFAULT_MAX_CONNECTIONS_PER_ADDRESS. */
  readonly maxConnectionsPerAddress?: number;
  /** Open connections in all; default defaultMaxConnections() (3/4 of the descriptor limit). */
  readonly maxConnections?: number;
}

/** The API server, and what its open connections are doing (for a gauge). */
export type IdentityApiServer = Server & {
  readonly connections: Pick<ConnectionLimit, 'open' | 'openByState'>;
};

export const DEFAULT_CLIENT_TIMEOUT_MS = 10_000;

/** Transport codes are chosen here, at the edge; the certifier only knows error codes. */
function statusFor(code: ErrorCode): number {
  if (code === 'MUTUAL_IDENTITY_TOKEN_INVALID') return 401;
  if (code === 'MUTUAL_IDENTITY_RATE_LIMITED' || code === 'MUTUAL_IDENTITY_AUTH_FAILURES_LIMITED') return 429;
  if (code === 'MUTUAL_IDENTITY_REQUEST_TOO_LARGE') return 413;
  if (code === 'MUTUAL_IDENTITY_REQUEST_TIMEOUT') return 408;
  if (
    code === 'MUTUAL_IDENTITY_UNAVAILABLE' ||
    code === 'MUTUAL_IDENTITY_TOKEN_REVIEW_UNAVAILABLE' ||
    code === 'MUTUAL_PKI_ISSUER_INVALID'
  )
    return 503;
  if (code === 'MUTUAL_INTERNAL') return 500;
  return 400;
}

export function createIdentityApiServer(deps: IdentityApiDeps): IdentityApiServer {
  const clientTimeoutMs = deps.clientTimeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS;
  const server = createServer(
    {
      key: deps.serverCredentials.key,
      cert: deps.serverCredentials.cert,
      minVersion: 'TLSv1.3',
      ecdhCurve: MESH_TLS_GROUPS,
      handshakeTimeout: clientTimeoutMs,
      // How often Node looks for clients past headersTimeout; its default (30 s) is too lax.
      connectionsCheckingInterval: Math.max(250, Math.min(1000, clientTimeoutMs / 4)),
    },
    (request, response) => {
      handle(request, response, deps, clientTimeoutMs, connections.hold).catch((error: unknown) =>
        sendError(response, error),
      );
    },
  );
  // A slow client gets a 408 (or its socket closed) instead of holding a socket forever: the
  // headers within clientTimeoutMs, the body within clientTimeoutMs of the headers.
  server.headersTimeout = clientTimeoutMs;
  server.requestTimeout = (MAX_LONG_POLL_S + 15) * 1000;
  server.keepAliveTimeout = 5_000;
  const maxPerAddress = deps.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
  capConnectionsPerAddress(server, {
    maxPerAddress,
    onRefused: (socket, address) => {
      const refusal = new MutualError(
        'MUTUAL_IDENTITY_CONNECTIONS_LIMITED',
        `${address} has ${maxPerAddress} connections open to the identity service, as many as one client address may (--max-connections-per-address); a new one was closed before its TLS handshake`,
      );
      deps.certifier.recordRefusal(refusal, requesterOf(socket), `from ${address}`);
    },
  });
  // Then all addresses together (after the cap above, which closes its refusals first): at the cap
  // the oldest connection doing nothing (a held long poll too) makes room for a new one.
  const maxConnections = deps.maxConnections ?? defaultMaxConnections();
  const connections = limitConnections(server, {
    maxConnections,
    onShed: (state, remote) =>
      deps.certifier.recordRefusal(shedRefusal(state, remote, maxConnections), remote, state),
  });
  // Anyone who reaches the port may complete a handshake (the token is the credential), and then
  // ask for KeyUpdates the service answers in memory without end while it does not read.
  server.on('secureConnection', (socket: TLSSocket) =>
    limitPeerKeyUpdates(socket, 'server', () => {
      const refusal = new MutualError(
        'MUTUAL_IDENTITY_KEY_UPDATE_FLOOD',
        `${socket.remoteAddress} sent more than ${PEER_KEY_UPDATES_ALLOWED} TLS KeyUpdates on one connection, more than its data could need; the connection was closed`,
      );
      deps.certifier.recordRefusal(refusal, requesterOf(socket), 'key update flood');
    }),
  );
  // Requests Node refuses before our handler (headers too slow, not HTTP) are audited too.
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    const code = error.code ?? '';
    if (code === 'ECONNRESET' || code === 'EPIPE') {
      socket.destroy();
      return;
    }
    const { refusal, status, kind, isHandshake } = clientErrorRefusal(
      code || error.message,
      clientTimeoutMs,
      (socket as Socket).localPort,
    );
    // Sampled by kind, and never throws: a line the audit log cannot take is dropped.
    const requester = requesterOf(socket as Socket);
    if (isHandshake) deps.certifier.recordHandshakeRefusal(refusal, requester, kind);
    else deps.certifier.recordRefusal(refusal, requester, kind);
    // Beside the audit line, plain HTTP is told in its own terms, on the TCP socket under TLS.
    const isAnsweredInPlain =
      refusal.code === 'MUTUAL_IDENTITY_PLAIN_HTTP' && answerPlainHttp(socket, refusal);
    if (!isAnsweredInPlain && socket.writable) {
      const answer = {
        code: refusal.code,
        message: refusal.message,
        hint: errorCatalog[refusal.code].action,
      };
      const body = `${JSON.stringify({ error: answer })}\n`;
      socket.end(
        `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  });
  return Object.assign(server, { connections });
}

function shedRefusal(state: ShedState, remote: string, maxConnections: number): MutualError {
  const closed =
    state === 'new'
      ? `closed the new connection from ${remote}, as every open one was being answered`
      : `closed the oldest one ${shedStateText(state)}, from ${remote}, to accept a new one`;
  return new MutualError(
    'MUTUAL_IDENTITY_CONNECTIONS_SHED',
    `the identity service had ${maxConnections} connections open, its limit (--max-connections), so it ${closed}`,
  );
}

/**
 * What a failed TLS handshake means, by Node's code for OpenSSL's reason: what the client did that
 * the service does not take. Anything else is named by its code.
 */
const HANDSHAKE_FAILURES: Readonly<Record<string, string>> = {
  ERR_SSL_UNSUPPORTED_PROTOCOL:
    'the client offered only TLS 1.2 or older; the identity service speaks only TLS 1.3',
  ERR_SSL_NO_SUITABLE_KEY_SHARE: `the client offered none of the key-exchange groups the identity service takes (${MESH_TLS_GROUPS.replaceAll('*', '').replaceAll(':', ', ')})`,
  ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM:
    'the client accepts no signature algorithm of the service certificate (ECDSA P-256 with SHA-256)',
  ERR_SSL_NO_SHARED_CIPHER:
    'the client offered no TLS 1.3 cipher suite the service takes (AES-GCM, ChaCha20-Poly1305)',
  ERR_SSL_WRONG_VERSION_NUMBER: 'the client did not send a TLS ClientHello (not TLS)',
  ERR_SSL_UNEXPECTED_MESSAGE: 'the client sent a malformed or out-of-order TLS message',
  ERR_SSL_PACKET_LENGTH_TOO_LONG: 'the client did not send a TLS ClientHello (not TLS)',
  ERR_SSL_RECORD_LENGTH_MISMATCH: 'the client sent a malformed TLS record',
};

/**
 * The coded refusal, and the status line, for a client Node refused before our handler, the kind
 * by which its audit lines are sampled, and whether it failed in its handshake (before any HTTP).
 */
function clientErrorRefusal(
  code: string,
  clientTimeoutMs: number,
  localPort: number | undefined,
): { refusal: MutualError; status: string; kind: string; isHandshake?: true } {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT') {
    const refusal = new MutualError(
      'MUTUAL_IDENTITY_REQUEST_TIMEOUT',
      `the request headers did not arrive within ${clientTimeoutMs} ms`,
    );
    return { refusal, status: '408 Request Timeout', kind: 'headers too slow' };
  }
  if (code === 'HPE_HEADER_OVERFLOW') {
    const refusal = new MutualError(
      'MUTUAL_IDENTITY_REQUEST_TOO_LARGE',
      `the request headers are larger than ${maxHeaderSize} bytes in all`,
    );
    return { refusal, status: '431 Request Header Fields Too Large', kind: 'headers too large' };
  }
  // TLS errors end the connection before any HTTP: the status is never sent, the audit line says why.
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') {
    const refusal = new MutualError(
      'MUTUAL_IDENTITY_REQUEST_TIMEOUT',
      `the TLS handshake did not finish within ${clientTimeoutMs} ms`,
    );
    return { refusal, status: '408 Request Timeout', kind: code, isHandshake: true };
  }
  if (isPlainHttpError({ code })) {
    const port = localPort === undefined ? 'port' : `port ${localPort}`;
    const refusal = new MutualError(
      'MUTUAL_IDENTITY_PLAIN_HTTP',
      `plain HTTP was sent to the identity service, whose ${port} speaks only HTTPS (TLS 1.3): use https:// instead of http://`,
    );
    return { refusal, status: '400 Bad Request', kind: 'plain_http', isHandshake: true };
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
    const refusal = new MutualError(
      'MUTUAL_IDENTITY_REQUEST_INVALID',
      HANDSHAKE_FAILURES[code]
        ? `the TLS handshake failed (${code}): ${HANDSHAKE_FAILURES[code]}`
        : `the TLS handshake failed (${code})`,
    );
    return { refusal, status: '400 Bad Request', kind: code, isHandshake: true };
  }
  const refusal = new MutualError(
    'MUTUAL_IDENTITY_REQUEST_INVALID',
    `the request is not valid HTTP (${code})`,
  );
  return { refusal, status: '400 Bad Request', kind: `not HTTP (${code})` };
}

function requesterOf(socket: {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
}): string {
  return `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
}

async function handle(
  request: IncomingMessage,
  response: ServerResponse,
  deps: IdentityApiDeps,
  clientTimeoutMs: number,
  hold: ConnectionLimit['hold'],
): Promise<void> {
  let url: URL;
  try {
    url = new URL(request.url ?? '/', 'https://identity');
  } catch {
    // Node passes on targets such as //[ that are not URLs.
    throw new MutualError(
      'MUTUAL_IDENTITY_REQUEST_INVALID',
      `the request target ${JSON.stringify(request.url)} is not a path: use POST /v1/certify or GET /v1/bundle`,
    );
  }
  if (url.pathname === '/v1/certify') {
    if (request.method !== 'POST') return sendMethodNotAllowed(response, 'POST');
    const requester = requesterOf(request.socket);
    let body: { token: string; csr: string };
    // Stages before the certifier: content type → body within size and time → JSON shape. The
    // stage a request fails at is the kind its audit line is sampled by.
    let stage = 'content type';
    try {
      checkContentType(request.headers['content-type']);
      stage = 'body';
      const text = await readBody(request, clientTimeoutMs);
      stage = 'JSON';
      body = parseCertifyBody(text);
    } catch (error) {
      if (isMutualError(error)) deps.certifier.recordRefusal(error, requester, stage);
      throw error;
    }
    const result = await deps.certifier.certify(body, requester);
    return sendJson(response, 200, result);
  }
  if (url.pathname === '/v1/bundle') {
    if (request.method !== 'GET' && request.method !== 'HEAD') return sendMethodNotAllowed(response, 'GET');
    return serveBundle(request, response, url, deps.bundles, hold);
  }
  sendJson(response, 404, {
    error: { code: 'MUTUAL_IDENTITY_REQUEST_INVALID', message: `no such endpoint ${url.pathname}` },
  });
}

const unquoted = (etag: string) => etag.slice(1, -1);

function bundleEtag(bundle: TrustBundle): string {
  const hash = createHash('sha256');
  for (const der of bundle.rootsDer) hash.update(der);
  return `"${bundle.sequence}-${hash.digest('hex').slice(0, 16)}"`;
}

/**
 * GET /v1/bundle[?format=jwks][&wait=SECONDS]: with If-None-Match equal to the current ETag and
 * a wait, the request is held until the bundle changes (long poll) or the wait ends (304).
 */
async function serveBundle(
  request: IncomingMessage,
  response: ServerResponse,
  url: URL,
  bundles: BundleSource,
  hold: ConnectionLimit['hold'],
) {
  const waitMs = parseWait(url.searchParams.get('wait'));
  // Tags as the client sent them (a list, weak W/"…", or *), compared without their quotes.
  const known = knownVersions(
    null,
    request.headers['if-none-match'],
    unquoted(bundleEtag(bundles.current())),
  );
  if (known.has(unquoted(bundleEtag(bundles.current()))) && waitMs > 0) {
    // Held silent, its connection may be closed at --max-connections: the client polls again.
    const release = hold(request);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, waitMs);
      const unsubscribe = bundles.subscribe(done);
      // The response's close, not the socket's: a keep-alive client polls many times over one
      // socket, and a listener left on it per poll would pile up for the socket's whole life.
      response.once('close', done);
      function done() {
        clearTimeout(timer);
        unsubscribe();
        response.off('close', done);
        release();
        resolve();
      }
    });
    if (response.destroyed || response.writableEnded) return;
  }
  const bundle = bundles.current();
  const etag = bundleEtag(bundle);
  if (known.has(unquoted(etag))) {
    response.writeHead(304, { etag });
    response.end();
    return;
  }
  const isJwks = url.searchParams.get('format') === 'jwks';
  const body = isJwks ? `${JSON.stringify(bundleToJwks(bundle))}\n` : bundleToPem(bundle);
  response.writeHead(200, {
    etag,
    'content-type': isJwks ? 'application/json' : 'application/x-pem-file',
    'cache-control': 'no-cache',
  });
  response.end(request.method === 'HEAD' ? undefined : body);
}

/**
 * `wait` as seconds (`30`) or a duration (`30s`, as the destination service takes it), at most
 * MAX_LONG_POLL_S. Anything else is refused: read as 0 it would answer at once, and a client
 * polling in a loop would then poll without pause.
 */
function parseWait(text: string | null): number {
  if (text === null || text === '') return 0;
  let ms = Number.NaN;
  try {
    ms = /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : parseDuration(text, 'wait');
  } catch {}
  if (!Number.isFinite(ms)) {
    throw new MutualError(
      'MUTUAL_IDENTITY_REQUEST_INVALID',
      `wait=${JSON.stringify(text)} is not a duration: write seconds or a duration, e.g. wait=30 or wait=30s (at most ${MAX_LONG_POLL_S}s)`,
    );
  }
  return Math.min(ms, MAX_LONG_POLL_S * 1000);
}

function checkContentType(contentType: string | undefined): void {
  const mediaType = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    throw new MutualError(
      'MUTUAL_IDENTITY_REQUEST_INVALID',
      `the request body must be JSON with content-type application/json, not ${JSON.stringify(contentType ?? '(none)')}`,
      { detail: { status: 415 } },
    );
  }
}

/** The body, whole, within the size cap and the client timeout (a trickling client is cut off). */
function readBody(request: IncomingMessage, timeoutMs: number): Promise<string> {
  return readRequestBody(request, {
    maxBytes: MAX_REQUEST_BODY_BYTES,
    timeoutMs,
    tooLarge,
    timedOut: (size) =>
      new MutualError(
        'MUTUAL_IDENTITY_REQUEST_TIMEOUT',
        `the request body did not arrive within ${timeoutMs} ms (${size} bytes came)`,
      ),
  });
}

function tooLarge(): MutualError {
  return new MutualError(
    'MUTUAL_IDENTITY_REQUEST_TOO_LARGE',
    `the request body is larger than ${MAX_REQUEST_BODY_BYTES} bytes`,
  );
}

function parseCertifyBody(text: string): { token: string; csr: string } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new MutualError('MUTUAL_IDENTITY_REQUEST_INVALID', 'the request body is not valid JSON');
  }
  const fields = body as Record<string, unknown> | null;
  if (
    typeof fields !== 'object' ||
    fields === null ||
    typeof fields.token !== 'string' ||
    typeof fields.csr !== 'string'
  ) {
    throw new MutualError(
      'MUTUAL_IDENTITY_REQUEST_INVALID',
      'the request must be a JSON object with string fields "token" and "csr"',
    );
  }
  return { token: fields.token, csr: fields.csr };
}

function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  if (response.headersSent) return;
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(`${JSON.stringify(body)}\n`);
}

function sendMethodNotAllowed(response: ServerResponse, allowed: string) {
  sendJson(
    response,
    405,
    { error: { code: 'MUTUAL_IDENTITY_REQUEST_INVALID', message: `use ${allowed} for this endpoint` } },
    { allow: allowed },
  );
}

function sendError(response: ServerResponse, error: unknown) {
  const code: ErrorCode = isMutualError(error) ? error.code : 'MUTUAL_INTERNAL';
  const message = isMutualError(error) ? error.message : 'internal error';
  const headers: Record<string, string> =
    error instanceof RateLimitedError ? { 'retry-after': String(error.retryAfterS) } : {};
  // A client that sent too much or too slowly does not get to keep its connection.
  if (code === 'MUTUAL_IDENTITY_REQUEST_TOO_LARGE' || code === 'MUTUAL_IDENTITY_REQUEST_TIMEOUT') {
    headers.connection = 'close';
  }
  const status =
    isMutualError(error) && typeof error.detail.status === 'number' ? error.detail.status : statusFor(code);
  sendJson(response, status, { error: { code, message, hint: errorCatalog[code].action } }, headers);
}
