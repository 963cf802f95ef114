// HTTP/1.x from the app to a meshed destination: each request goes over a pool of mTLS connections
// to the destination's proxy that outlives the app's connections, so an app that opens a new
// connection per request does not pay a TLS handshake per request (nginx's upstream keepalive;
// Linkerd multiplexes over HTTP/2 for the same reason). Upgrades get a dedicated connection.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Clock } from '../../clock.ts';
import type { MeshTls } from '../../tls/index.ts';
import { splice } from '../forward.ts';
import {
  afterOwedAnswers,
  answerBadRequest,
  createDetachedHttpServer,
  forwardedRequestHeaders,
  forwardRequest,
  isClosing,
  MAX_HTTP_HEAD_BYTES,
  malformedRequestProblem,
  Pool,
  PROXY_ERROR_HEADER,
  refuseConnect,
  requestHeadText,
} from '../http-forward.ts';
import { flushConnectionBytes, methodLabel, type ProxyMetrics } from '../metrics.ts';
import { type ProxyLog, sampleKeyOf } from '../proxy-log.ts';
import { type MeshedDestination, originOf, reuseKey } from './destinations.ts';

/** Opens one verified mTLS connection to a destination's proxy (resuming a session where it can). */
export type MeshConnect = (destination: MeshedDestination, meshTls: MeshTls) => Promise<TLSSocket>;

export interface HttpOutboundDeps {
  readonly log: ProxyLog;
  readonly metrics: ProxyMetrics;
  readonly clock: Clock;
  readonly connect: MeshConnect;
  /** Names why a connection to the destination failed (a metric reason), and counts it. */
  readonly onConnectFailure: (error: unknown, destination: MeshedDestination, label: string) => string;
  readonly track: (socket: Socket | TLSSocket) => void;
  /** The credentials in force now: a keep-alive app connection outlives a rotation. */
  readonly meshTls: () => MeshTls | undefined;
  /** --stream-idle-timeout and --idle-timeout (0: never). */
  readonly streamIdleTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

interface OutboundHttpContext {
  readonly destination: MeshedDestination;
  readonly meshTls: MeshTls;
  readonly label: string;
  /** The connection's TLS labels plus its destination, for per-request metrics. */
  readonly labels: Record<string, string>;
}

const CONTEXT = Symbol('mutual.outbound-http-context');
/** Idle pooled connections close before the peer proxy's 60 s keep-alive timeout would cut them. */
const POOL_KEEP_ALIVE_MS = 50_000;
const POOL_CONNECTIONS_PER_DESTINATION = 128;

export function createHttpOutbound(deps: HttpOutboundDeps) {
  const pools = new Map<string, { pool: Pool; generation: number }>();

  function poolFor(context: OutboundHttpContext): Pool {
    const { destination, meshTls, label } = context;
    const key = reuseKey(destination, meshTls);
    const existing = pools.get(key);
    if (existing) return existing.pool;
    const pool = new Pool(originOf(destination), {
      connections: POOL_CONNECTIONS_PER_DESTINATION,
      keepAliveTimeout: POOL_KEEP_ALIVE_MS,
      keepAliveMaxTimeout: POOL_KEEP_ALIVE_MS,
      headersTimeout: 0,
      bodyTimeout: 0,
      maxHeaderSize: MAX_HTTP_HEAD_BYTES,
      connect: (_options, callback) => {
        deps.connect(destination, meshTls).then(
          (socket) => {
            deps.track(socket);
            callback(null, socket);
          },
          (error: Error) => {
            const reason = deps.onConnectFailure(error, destination, label);
            callback(Object.assign(error, { meshReason: reason }), null);
          },
        );
      },
    });
    pools.set(key, { pool, generation: meshTls.generation });
    return pool;
  }

  const server = createDetachedHttpServer(
    (request, response) => handleRequest(request, response),
    (error) =>
      deps.log.error('outbound request failed inside the proxy', { error: error.stack ?? error.message }),
  );
  // Answered only once the answers owed for the requests pipelined before them are out.
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) =>
    afterOwedAnswers(socket, () => void handleUpgrade(request, socket, head)),
  );
  server.on('connect', (request: IncomingMessage, socket: Duplex) =>
    afterOwedAnswers(socket, () => handleConnect(request, socket)),
  );

  function contextOf(request: IncomingMessage): OutboundHttpContext | undefined {
    return (request.socket as unknown as Record<symbol, OutboundHttpContext | undefined>)[CONTEXT];
  }

  function handleRequest(request: IncomingMessage, response: ServerResponse) {
    const context = contextOf(request);
    if (!context) return response.destroy();
    const startedMs = deps.clock.now();
    response.once('finish', () => countRequest(request, response.statusCode, startedMs, context));
    const current = { ...context, meshTls: deps.meshTls() ?? context.meshTls };
    forwardRequest(request, response, poolFor(current), forwardedRequestHeaders(request), (error) => {
      // Refused as sent (two Host headers): the app's request is at fault, not the destination.
      const problem = malformedRequestProblem(request, error);
      if (problem !== undefined) {
        deps.log.warnSampled('malformed request refused', sampleKeyOf(problem), {
          destination: context.label,
          method: request.method,
          target: request.url?.slice(0, 200),
          problem,
        });
        return answerBadRequest(request, response, problem);
      }
      const meshReason = (error as { meshReason?: string }).meshReason;
      const reason = meshReason ?? 'upstream_failed';
      // A failed connection was logged where it failed; one that broke under the request was not
      // (a destination gone mid-request: keepalive or the retransmission watch ended it).
      if (meshReason === undefined)
        deps.log.warnSampled(
          'outbound request failed: the connection to the destination broke',
          `destination=${context.label}`,
          {
            destination: context.label,
            expected: context.destination.serverId,
            error: error.message,
          },
        );
      response
        .writeHead(502, { 'content-type': 'text/plain', [PROXY_ERROR_HEADER]: reason })
        .end(
          `mutual: no answer from ${context.destination.serverId} at ${context.label} (${reason}): ${error.message}\n`,
        );
    });
  }

  function countRequest(
    request: IncomingMessage,
    status: number,
    startedMs: number,
    context: OutboundHttpContext,
  ) {
    flushConnectionBytes(request.socket);
    const statusCode = String(status);
    deps.metrics.outboundHttpRequests.inc({
      ...context.labels,
      method: methodLabel(request.method),
      status_code: statusCode,
    });
    deps.metrics.outboundHttpDuration.observe(
      { status_code: statusCode },
      (deps.clock.now() - startedMs) / 1000,
    );
  }

  /** CONNECT is never tunnelled to the destination: answered 501 here (see refuseConnect), counted. */
  function handleConnect(request: IncomingMessage, socket: Duplex) {
    const context = contextOf(request);
    if (!context) return socket.destroy();
    if (isClosing(request)) return void socket.end();
    const startedMs = deps.clock.now();
    deps.log.warnSampled(
      'CONNECT refused: the sidecar does not open tunnels',
      `destination=${context.label}`,
      { destination: context.label, target: request.url?.slice(0, 200) },
    );
    refuseConnect(socket);
    countRequest(request, 501, startedMs, context);
  }

  /** WebSocket and other upgrades become byte streams, so they get a connection of their own. */
  async function handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer) {
    const context = contextOf(request);
    if (!context) return socket.destroy();
    let peer: TLSSocket;
    try {
      peer = await deps.connect(context.destination, deps.meshTls() ?? context.meshTls);
    } catch (error) {
      const reason = deps.onConnectFailure(error, context.destination, context.label);
      socket.end(
        `HTTP/1.1 502 Bad Gateway\r\n${PROXY_ERROR_HEADER}: ${reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
      );
      return;
    }
    if (socket.destroyed) return peer.destroy();
    deps.track(peer);
    // Only `upgrade`: other headers the app's Connection names are not hop-by-hop for the next hop.
    const headers = forwardedRequestHeaders(request, 'connection', 'upgrade');
    if (request.headers.upgrade) headers.push('upgrade', request.headers.upgrade);
    peer.write(requestHeadText(request, headers), 'latin1');
    if (head.length > 0) peer.write(head);
    splice(socket, peer, undefined, {
      ms: deps.idleTimeoutMs,
      onIdle: () => deps.metrics.connectionsIdleClosed.inc({ direction: 'outbound', protocol: 'upgrade' }),
    });
  }

  return {
    /** Serves the app's HTTP/1 connection; its requests travel over the destination's pool. */
    handle(
      app: Socket,
      destination: MeshedDestination,
      meshTls: MeshTls,
      label: string,
      labels: Record<string, string>,
    ) {
      (app as unknown as Record<symbol, OutboundHttpContext>)[CONTEXT] = {
        destination,
        meshTls,
        label,
        labels: { ...labels, destination: label },
      };
      server.emit('connection', app);
    },
    /** New credentials or bundle: pooled connections of older generations finish and close. */
    retireBefore(generation: number) {
      for (const [key, entry] of pools) {
        if (entry.generation >= generation) continue;
        pools.delete(key);
        void entry.pool.close();
      }
    },
    /** Drain: idle app connections and idle pooled connections close now, busy ones when done. */
    closeIdle() {
      server.closeIdleConnections();
      for (const { pool } of pools.values()) if (!pool.closed) void pool.close();
    },
    close() {
      for (const { pool } of pools.values()) void pool.destroy();
      pools.clear();
      server.close();
      server.closeAllConnections();
    },
  };
}
