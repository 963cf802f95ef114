// Outbound, top to bottom: accept the app's plain connection → where was it going (explicit
// upstream or original destination) → meshed? → HTTP/1 requests over pooled mTLS to the
// destination's proxy, HTTP/2 streams over one multiplexed mTLS connection per destination,
// anything else spliced over an mTLS connection of its own, the server's SPIFFE ID verified
// every way. Unmeshed destinations pass through in plain text, or are refused
// when outbound STRICT is set.
import { connect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Clock } from '../../clock.ts';
import type { ProxyConfig } from '../../config/index.ts';
import { isMutualError } from '../../errors.ts';
import {
  type HandshakeFailureReason,
  isOpensslVerifyCode,
  limitPeerKeyUpdates,
  type MeshTls,
  PEER_KEY_UPDATES_ALLOWED,
  type PeerTls,
  reasonFromOpenssl,
} from '../../tls/index.ts';
import { classifyFirstBytes, peekFirstBytes, type StreamProtocol } from '../detect.ts';
import { splice } from '../forward.ts';
import { isLocalResourceError } from '../http-forward.ts';
import { countConnectionBytes, type ProxyMetrics, tlsLabels } from '../metrics.ts';
import type { ProxyLog } from '../proxy-log.ts';
import type { DestinationResolver, MeshedDestination } from './destinations.ts';
import { createHttpOutbound } from './http-outbound.ts';
import { createHttp2Outbound } from './http2-outbound.ts';
import { createMtlsConnector, MESH_CONNECT_TIMEOUT_MS, MeshConnectTimeoutError } from './mtls-connector.ts';

export interface OutboundDeps {
  readonly config: ProxyConfig;
  readonly clock: Clock;
  readonly log: ProxyLog;
  readonly metrics: ProxyMetrics;
  readonly meshTls: () => MeshTls | undefined;
  readonly destinations: DestinationResolver;
  readonly track: (socket: Socket | TLSSocket) => void;
}

/** Where an app connection was going. */
export type OutboundTarget =
  | {
      readonly kind: 'meshed';
      readonly destination: MeshedDestination;
      readonly label: string;
      /** No pool and no session resumption: a full handshake per app connection. */
      readonly fullHandshake?: boolean;
    }
  | { readonly kind: 'original-destination'; readonly address: string; readonly port: number };

export function createOutbound(deps: OutboundDeps) {
  const { metrics, log, config } = deps;
  const connector = createMtlsConnector(deps.clock);
  const connectMesh = async (destination: MeshedDestination, meshTls: MeshTls, resume = true) => {
    const socket = await connector.connect(
      destination,
      meshTls,
      () => metrics.outboundSessionsResumed.inc(),
      {
        resume,
      },
    );
    limitPeerKeyUpdates(socket, 'client', () => {
      metrics.tlsConnectionsLimited.inc({ direction: 'outbound', reason: 'key_update_flood' });
      log.warnSampled('outbound destination closed: KeyUpdate flood', `destination=${destination.serverId}`, {
        destination: destination.serverId,
        limit: PEER_KEY_UPDATES_ALLOWED,
      });
    });
    return socket;
  };

  /** Counts and logs a failed connection to a destination's proxy; returns the metric reason. */
  function connectFailed(error: unknown, destination: MeshedDestination, label: string): string {
    const reason = failureReason(error);
    if (reason !== 'connect_failed' && reason !== 'connect_timeout' && reason !== 'local_resources')
      metrics.handshakeFailures.inc({ direction: 'outbound', reason });
    log.warnSampled('outbound mTLS failed', `destination=${label} reason=${reason}`, {
      destination: label,
      expected: destination.serverId,
      reason,
      error: (error as Error).message,
    });
    return reason;
  }

  const httpDeps = {
    log,
    metrics,
    clock: deps.clock,
    connect: connectMesh,
    onConnectFailure: (error: unknown, destination: MeshedDestination, label: string) => {
      const reason = connectFailed(error, destination, label);
      metrics.outboundRefused.inc({ reason, destination: label });
      return reason;
    },
    track: deps.track,
    meshTls: deps.meshTls,
    streamIdleTimeoutMs: config.streamIdleTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
  };
  const http = createHttpOutbound(httpDeps);
  const http2 = createHttp2Outbound(httpDeps);

  /**
   * What the app speaks, from its first bytes: opaque where the port is declared so (here, or by
   * the destination) or the app stays silent (server speaks first).
   */
  async function appProtocol(
    app: Socket,
    target: OutboundTarget,
    meshed: MeshedDestination,
  ): Promise<StreamProtocol> {
    if (meshed.opaque) return 'opaque';
    const port = target.kind === 'meshed' ? app.localPort : target.port;
    if (port !== undefined && config.opaquePorts.has(port)) return 'opaque';
    return classifyFirstBytes(await peekFirstBytes(app, config.detectTimeoutMs));
  }

  function refuse(app: Socket, reason: string, destination: string) {
    metrics.outboundRefused.inc({ reason, destination });
    // A reset, not a clean close: the app must not mistake a refusal for an empty answer.
    if ((app as unknown as { _handle?: unknown })._handle) app.resetAndDestroy();
    else app.destroy();
  }

  async function accept(app: Socket, target: OutboundTarget) {
    deps.track(app);
    app.on('error', () => {});
    app.setNoDelay(true);
    let meshed: MeshedDestination | undefined;
    let label: string;
    if (target.kind === 'meshed') {
      meshed = target.destination;
      label = target.label;
    } else {
      label = target.address.includes(':')
        ? `[${target.address}]:${target.port}`
        : `${target.address}:${target.port}`;
      const answer = deps.destinations.resolve(target.address, target.port);
      // Only a lookup that must ask the destination service waits (bounded); the rest stay synchronous.
      meshed = answer instanceof Promise ? await answer : answer;
      if (!meshed) return passThrough(app, target.address, target.port, label);
    }
    let meshTls = deps.meshTls();
    if (!meshTls) return refuse(app, 'not_ready', label);
    const fullHandshake = target.kind === 'meshed' && target.fullHandshake === true;
    const protocol = fullHandshake ? 'opaque' : await appProtocol(app, target, meshed);
    if (app.destroyed) return;
    // Credentials may have rotated while the app was deciding what to say.
    meshTls = deps.meshTls() ?? meshTls;
    const peer: PeerTls = { kind: 'mtls', peerId: meshed.serverId, localId: meshTls.credentials.spiffeId };
    const labels = tlsLabels(peer, undefined, 'outbound');
    if (protocol === 'http1' || protocol === 'http2') {
      app.once('close', countAppConnection(app, labels, label));
      if (protocol === 'http1') http.handle(app, meshed, meshTls, label, labels);
      else http2.handle(app, meshed, label, labels);
      return;
    }
    let server: TLSSocket;
    try {
      server = await connectMesh(meshed, meshTls, !fullHandshake);
    } catch (error) {
      return refuse(app, connectFailed(error, meshed, label), label);
    }
    if (app.destroyed) return server.destroy();
    deps.track(server);
    pipeWithMetrics(app, server, labels, label);
  }

  function passThrough(app: Socket, address: string, port: number, label: string) {
    if (config.outboundStrict) {
      log.warnSampled('unmeshed destination refused (outbound STRICT)', `destination=${label}`, {
        destination: label,
      });
      return refuse(app, 'unmeshed_refused', label);
    }
    const server = connect({ host: address, port, allowHalfOpen: true });
    deps.track(server);
    server.setNoDelay(true);
    server.on('error', () => {});
    // Spliced once connected. A destination that refuses (or cannot be reached) is the app's
    // connect refused: a reset, not a clean close it would take for an empty answer, and a failed
    // connection in the metrics (edges, check), as a meshed one is.
    // The app's own connect succeeded at once (here), so its connect timeout never fires: without
    // one here, a destination whose SYNs are dropped held it for the kernel's SYN retries (127 s).
    // Istio's passthrough cluster has the same 10 s.
    const timer = setTimeout(
      () =>
        server.destroy(
          new MeshConnectTimeoutError(
            `no TCP connection with ${label} within ${MESH_CONNECT_TIMEOUT_MS / 1000} s (gone, partitioned or filtered)`,
          ),
        ),
      MESH_CONNECT_TIMEOUT_MS,
    );
    const abandon = () => server.destroy();
    const failed = (error: Error) => {
      clearTimeout(timer);
      app.off('close', abandon);
      log.warnSampled('unmeshed destination unreachable', `destination=${label}`, {
        destination: label,
        error: error.message,
      });
      const reason =
        error instanceof MeshConnectTimeoutError
          ? 'connect_timeout'
          : isLocalResourceError(error)
            ? 'local_resources'
            : 'connect_failed';
      refuse(app, reason, label);
    };
    app.once('close', abandon);
    server.once('close', () => clearTimeout(timer));
    server.once('error', failed);
    server.once('connect', () => {
      clearTimeout(timer);
      server.off('error', failed);
      app.off('close', abandon);
      const localId = deps.meshTls()?.credentials.spiffeId;
      pipeWithMetrics(
        app,
        server,
        tlsLabels({ kind: 'none', reason: 'not_meshed' }, localId, 'outbound'),
        label,
      );
    });
  }

  function pipeWithMetrics(
    app: Socket,
    server: Socket,
    labels: ReturnType<typeof tlsLabels>,
    destination: string,
  ) {
    splice(app, server, countAppConnection(app, labels, destination), {
      ms: config.idleTimeoutMs,
      onIdle: () => metrics.connectionsIdleClosed.inc({ direction: 'outbound', protocol: 'opaque' }),
    });
  }

  /** Counts an app connection as opened; the returned function counts it closed (call once). */
  function countAppConnection(app: Socket, labels: ReturnType<typeof tlsLabels>, destination: string) {
    const all = { ...labels, destination };
    metrics.outboundConnections.inc(all);
    metrics.outboundOpen.inc();
    // What the app sends is what goes out to the destination.
    countConnectionBytes(app, metrics.outboundSentBytes, metrics.outboundReceivedBytes, all);
    return () => {
      metrics.outboundOpen.dec();
      metrics.outboundClosed.inc(all);
    };
  }

  return {
    accept,
    /** New credentials or bundle: forget TLS sessions and retire pooled connections made with the old. */
    clearSessions() {
      connector.clear();
      const generation = deps.meshTls()?.generation;
      if (generation === undefined) return;
      http.retireBefore(generation);
      http2.retireBefore(generation);
    },
    closeIdle: () => {
      http.closeIdle();
      http2.closeIdle();
    },
    close: () => {
      http.close();
      http2.close();
    },
  };
}

function failureReason(
  error: unknown,
): HandshakeFailureReason | 'connect_failed' | 'connect_timeout' | 'local_resources' {
  if (isMutualError(error))
    return (error.detail?.reason as HandshakeFailureReason | undefined) ?? 'wrong_identity';
  if (error instanceof MeshConnectTimeoutError) return 'connect_timeout';
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (code === 'ECONNREFUSED' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ECONNRESET')
    return 'connect_failed';
  // Not the destination's fault, and not a handshake that failed: the proxy could not even try.
  if (isLocalResourceError(error)) return 'local_resources';
  // OpenSSL refused the server's chain: the same reasons as for an inbound client's.
  if (isOpensslVerifyCode(code)) return reasonFromOpenssl(code);
  return 'protocol';
}
