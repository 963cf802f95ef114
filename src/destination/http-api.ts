// The destination API over HTTPS (HTTP/2, HTTP/1.1 accepted), mTLS only: the server presents its
// SVID; a client must present an SVID under the mesh's trust bundle or the connection is closed.
//   GET /v1/destinations/<ip>:<port> | <name>:<port>  [?wait=30s&version=<version of the last answer>]
//   GET /v1/policies?namespace=<ns>  [&wait=…&version=…]   (policy-api.ts, when policies are served)
// With a version equal to the current answer's (?version= or If-None-Match with its ETag), the
// answer is 304; with a wait too, the request is held until the answer changes (200) or the wait
// ends (304): the proxies' watch.

import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import {
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket, Server as TlsServer } from 'node:tls';
import type { Clock } from '../clock.ts';
import { parseDuration } from '../config/index.ts';
import { errorCatalog, isMutualError, MutualError } from '../errors.ts';
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
import {
  answerPlainHttp,
  describeHandshakeError,
  isPlainHttpError,
  limitPeerKeyUpdates,
  type MeshTls,
  PEER_KEY_UPDATES_ALLOWED,
  verifyClientChain,
  verifyClientChainsAfterHandshake,
} from '../tls/index.ts';
import { answerVersion, parseDestinationTarget, requestInvalid } from './answer.ts';
import type { DestinationLookup } from './lookup.ts';
import type { DestinationMetrics } from './metrics.ts';

export const DESTINATIONS_PATH = '/v1/destinations/';
export const POLICIES_PATH = '/v1/policies';
export const MAX_WAIT_MS = 60_000;

export interface DestinationApiDeps {
  readonly lookup: DestinationLookup;
  /** The service's own TLS generation (its SVID and the mesh trust bundle). */
  readonly meshTls: () => MeshTls | undefined;
  readonly clock: Clock;
  readonly metrics: DestinationMetrics;
  /** A warning any client can cause at will: the first of each `key` at once, the rest summed up. */
  readonly warnSampled: (message: string, key: string, fields?: Record<string, unknown>) => void;
  /** GET /v1/policies, when the service has a policy source (policy-api.ts). */
  readonly handlePolicies?: (
    url: URL,
    ifNoneMatch: string | undefined,
    response: Http2ServerResponse,
    hold: () => () => void,
  ) => Promise<void>;
  /** Open connections in all; default defaultMaxConnections() (3/4 of the descriptor limit). */
  readonly maxConnections?: number;
  /** Open connections from one client address (an IPv6 one by its /64); default 1024. */
  readonly maxConnectionsPerAddress?: number;
}

/**
 * Streams one client may have open at once on one HTTP/2 connection (announced in SETTINGS; a
 * stream past it is reset). A sidecar needs at most 256 destination long polls (the proxy's
 * maxWatches) plus the lookups of new destinations in flight (each answered at once, within 1 s),
 * on one connection; its policy long poll has a connection of its own. 1000 leaves it room while one
 * certificate holder can no longer park unlimited held requests (each a timer and a subscription)
 * on one connection: Node announced 2^32-1. A Node client past the limit queues its requests.
 */
export const MAX_CONCURRENT_STREAMS = 1000;

/** The API server, and what its open connections are doing (for a gauge). */
export type DestinationApiServer = Http2SecureServer & {
  readonly connections: Pick<ConnectionLimit, 'open' | 'openByState'>;
};

export function createDestinationApiServer(deps: DestinationApiDeps, initial: MeshTls): DestinationApiServer {
  // No CA in OpenSSL: each client's chain is verified after the handshake (verifyClientChain), as
  // the sidecar's inbound does, because Node 24's OpenSSL verifying a chain sent with its
  // intermediate keeps ~5 KB per full handshake for good (bench/README.md); a client with no
  // certificate is still refused inside the handshake (alert 116).
  const server: Http2SecureServer = verifyClientChainsAfterHandshake(
    createSecureServer(
      {
        ...initial.unverifiedServerOptions,
        allowHTTP1: true,
        requestCert: true,
        rejectUnauthorized: true,
        handshakeTimeout: 10_000,
        settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
      },
      (request, response) => {
        handle(request, response, deps, hold).catch((error: unknown) => sendError(response, error));
      },
    ),
  );
  // One address first: its refusals are closed before the limit on all connections sees them, so
  // one client cannot make that limit close other clients' held polls to make room for its own.
  const maxPerAddress = deps.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
  capConnectionsPerAddress(server, {
    maxPerAddress,
    onRefused: (socket, address) => {
      deps.metrics.connectionsLimited.inc();
      deps.warnSampled('connection refused: too many from one address', `address=${address}`, {
        remote: socket.remoteAddress,
        maxConnectionsPerAddress: maxPerAddress,
        message: `${address} has ${maxPerAddress} connections open to the destination service, as many as one client address may (--max-connections-per-address); a new one was closed before its TLS handshake`,
      });
    },
  });
  const { connections, hold } = limitAllConnections(server, deps);
  // A socket destroyed in its handshake (no certificate) no longer knows its peer: keep each
  // client's address from its TCP socket, which node:tls keeps as `_parent` on the TLS socket.
  const clientAddresses = new WeakMap<object, string>();
  server.on('connection', (raw: Socket) => {
    if (raw.remoteAddress) clientAddresses.set(raw, raw.remoteAddress);
  });
  const clientAddressOf = (socket: TLSSocket) =>
    socket.remoteAddress ?? clientAddresses.get((socket as { _parent?: object })._parent ?? socket);
  // Every client that completed the handshake with a certificate comes here, trusted or not: its
  // chain must lead to the bundle and its leaf be a client SVID. http2's own listener, registered
  // first, has set up a session, which reads nothing before this destroy in the same turn.
  server.on('secureConnection', (socket: TLSSocket) => {
    const meshTls = deps.meshTls();
    const verdict = meshTls
      ? verifyClientChain(socket, meshTls, deps.clock)
      : ({ ok: false, reason: 'not_ready', message: 'no credentials' } as const);
    if (!verdict.ok) {
      deps.metrics.clientsRefused.inc({ reason: verdict.reason });
      deps.warnSampled('client refused', `reason=${verdict.reason}`, {
        remote: socket.remoteAddress,
        reason: verdict.reason,
        error: verdict.message,
      });
      socket.destroy();
      return;
    }
    // A client holding an SVID could otherwise ask for KeyUpdates the service answers in memory
    // without end while it does not read (src/tls/key-updates.ts).
    limitPeerKeyUpdates(socket, 'server', () => {
      deps.metrics.clientsRefused.inc({ reason: 'key_update_flood' });
      deps.warnSampled('client closed: KeyUpdate flood', 'reason=key_update_flood', {
        remote: socket.remoteAddress,
        reason: 'key_update_flood',
        client: verdict.peerId,
        error: `more than ${PEER_KEY_UPDATES_ALLOWED} TLS KeyUpdates on one connection, more than its data could need`,
      });
    });
  });
  server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
    if (isPlainHttpError(error)) {
      // `curl http://`, or a --destination-url of http://: told so in plain HTTP, not an empty reply.
      deps.metrics.clientsRefused.inc({ reason: 'plain_http' });
      const port = socket.localPort === undefined ? 'port' : `port ${socket.localPort}`;
      answerPlainHttp(
        socket,
        new MutualError(
          'MUTUAL_DESTINATION_PLAIN_HTTP',
          `plain HTTP was sent to the destination service, whose ${port} speaks only HTTPS with mutual TLS (TLS 1.3): use https:// and a client certificate`,
        ),
      );
      return;
    }
    const text = `${error.code ?? ''} ${error.message}`;
    const reason = /PEER_DID_NOT_RETURN_A_CERTIFICATE|CERTIFICATE_REQUIRED/i.test(text)
      ? 'no_client_certificate'
      : 'handshake_failed';
    deps.metrics.clientsRefused.inc({ reason });
    // Anyone who reaches the port can cause this at will: sampled by reason (metrics count each).
    deps.warnSampled('client TLS handshake refused', `reason=${reason} code=${error.code}`, {
      remote: clientAddressOf(socket),
      reason,
      error: describeHandshakeError(error),
    });
  });
  // Idle HTTP/2 sessions are closed after two long polls' worth of silence.
  server.setTimeout(2 * MAX_WAIT_MS + 10_000);
  return Object.assign(server, { connections });
}

type Hold = (request: Http2ServerRequest) => () => void;

/**
 * src/net's limit on all connections (at the cap the oldest doing nothing useful makes room for a
 * new one). It follows HTTP/1 requests on their TLS socket; a sidecar's HTTP/2 streams share one
 * session whose `socket` is a proxy, so each request is shown to it on the session's TLS socket.
 */
function limitAllConnections(server: Http2SecureServer, deps: DestinationApiDeps) {
  const maxConnections = deps.maxConnections ?? defaultMaxConnections();
  const tracked = new EventEmitter();
  const connections = limitConnections(tracked as unknown as TlsServer, {
    maxConnections,
    onShed: (state: ShedState, remote: string) => {
      deps.metrics.connectionsShed.inc({ state });
      deps.warnSampled('connection closed at the limit', `state=${state}`, {
        remote,
        closed: shedStateText(state),
        maxConnections,
        message: `at the limit of ${maxConnections} open connections, the oldest connection ${shedStateText(state)} was closed for a new one; a sidecar polls again. Many may mean a flood of connections, or too low a file descriptor limit`,
      });
    },
  });
  // Each open TLS socket by its client's address and port (unique among open connections).
  const secure = new Map<string, TLSSocket>();
  const views = new WeakMap<object, IncomingMessage>();
  server.on('connection', (raw: Socket) => tracked.emit('connection', raw));
  server.on('secureConnection', (socket: TLSSocket) => {
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    secure.set(key, socket);
    socket.once('close', () => {
      if (secure.get(key) === socket) secure.delete(key);
    });
    tracked.emit('secureConnection', socket);
  });
  server.prependListener('request', (request: Http2ServerRequest, response: Http2ServerResponse) => {
    const socket = secure.get(`${request.socket.remoteAddress}:${request.socket.remotePort}`);
    if (socket === undefined) return;
    const view = {
      socket,
      once: (event: string, listener: () => void) => request.once(event, listener),
    } as unknown as IncomingMessage;
    views.set(request, view);
    tracked.emit('request', view, response);
    // A GET has no body; read its end so that the limit knows the request is whole.
    request.resume();
  });
  const hold: Hold = (request) => {
    const view = views.get(request);
    return view ? connections.hold(view) : () => {};
  };
  return { connections, hold };
}

async function handle(
  request: Http2ServerRequest,
  response: Http2ServerResponse,
  deps: DestinationApiDeps,
  hold: Hold,
) {
  const url = new URL(request.url ?? '/', 'https://destination');
  if (url.pathname === POLICIES_PATH && request.method === 'GET' && deps.handlePolicies)
    return deps.handlePolicies(url, request.headers['if-none-match'], response, () => hold(request));
  if (!url.pathname.startsWith(DESTINATIONS_PATH)) {
    return sendJson(response, 404, {
      error: {
        code: 'MUTUAL_DESTINATION_REQUEST_INVALID',
        message: `no such endpoint ${url.pathname}: ask GET ${DESTINATIONS_PATH}<ip>:<port>`,
      },
    });
  }
  if (request.method !== 'GET') {
    return sendJson(
      response,
      405,
      { error: { code: 'MUTUAL_DESTINATION_REQUEST_INVALID', message: 'use GET' } },
      { allow: 'GET' },
    );
  }
  let text: string;
  try {
    text = decodeURIComponent(url.pathname.slice(DESTINATIONS_PATH.length));
  } catch {
    throw requestInvalid(`the destination in ${url.pathname} is not valid percent-encoding`);
  }
  if (text === '')
    throw requestInvalid(`the request names no destination: ask GET ${DESTINATIONS_PATH}<ip>:<port>`);
  const target = parseDestinationTarget(text);
  const waitMs = parseWait(url.searchParams.get('wait'));
  let answer = deps.lookup.resolve(target);
  let version = answerVersion(answer);
  const known = knownVersions(url.searchParams.get('version'), request.headers['if-none-match'], version);
  if (known.has(version) && waitMs > 0) {
    deps.metrics.watchesOpen.inc();
    // Held silent, its connection may be closed at the connection limit: the sidecar polls again.
    const release = hold(request);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, waitMs);
      const unsubscribe = deps.lookup.subscribe(() => {
        if (!known.has(answerVersion(deps.lookup.resolve(target)))) done();
      });
      response.once('close', done);
      function done() {
        clearTimeout(timer);
        unsubscribe();
        response.off('close', done);
        release();
        resolve();
      }
    });
    deps.metrics.watchesOpen.dec();
    if (response.destroyed || response.writableEnded) return;
    answer = deps.lookup.resolve(target);
    version = answerVersion(answer);
  }
  deps.metrics.lookups.inc({
    result: answer.meshed ? 'meshed' : 'unmeshed',
    source: answer.source ?? 'none',
  });
  if (known.has(version)) {
    response.writeHead(304, { etag: `"${version}"` });
    response.end();
    return;
  }
  sendJson(
    response,
    200,
    { destination: target.text, ...answer, version },
    { etag: `"${version}"`, 'cache-control': 'no-cache' },
  );
}

export function parseWait(text: string | null): number {
  if (text === null || text === '') return 0;
  let ms: number;
  try {
    ms = /^\d+$/.test(text) ? Number(text) * 1000 : parseDuration(text, 'wait');
  } catch {
    throw requestInvalid(`wait=${JSON.stringify(text)} is not a duration: write e.g. wait=30s (at most 60s)`);
  }
  return Math.min(ms, MAX_WAIT_MS);
}

export function sendJson(
  response: Http2ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  if (response.headersSent || response.destroyed) return;
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(`${JSON.stringify(body)}\n`);
}

function sendError(response: Http2ServerResponse, error: unknown) {
  const known = isMutualError(error);
  const code = known ? error.code : 'MUTUAL_INTERNAL';
  const status =
    code === 'MUTUAL_DESTINATION_REQUEST_INVALID'
      ? 400
      : code === 'MUTUAL_DESTINATION_POLICIES_NOT_READY'
        ? 503
        : 500;
  const message = known ? error.message : 'internal error';
  sendJson(response, status, { error: { code, message, hint: errorCatalog[code].action } });
}
