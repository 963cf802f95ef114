// Inbound, top to bottom: accept → find the app port → detect TLS → terminate mTLS (or admit
// plaintext, or TLS that names another server than the sidecar, where the port's mode allows it)
// → detect the app protocol → authorize → forward to the app on 127.0.0.1. Each stage counts what
// it refuses, with the reason.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Clock } from '../../clock.ts';
import type { ProxyConfig } from '../../config/index.ts';
import { isLoopbackIp } from '../../ip/index.ts';
import type { WorkloadPolicy } from '../../policy/index.ts';
import {
  type ClientHelloScan,
  createCertificateRequiredServer,
  describeHandshakeError,
  isMeshServerName,
  limitPeerKeyUpdates,
  type MeshTls,
  PEER_KEY_UPDATES_ALLOWED,
  type PeerTls,
  scanClientHello,
  verifyClientChain,
} from '../../tls/index.ts';
import { connectApp as connectAppSocket } from '../app-connect.ts';
import { getInboundContext, type InboundContext, plainIp, setInboundContext } from '../connection-context.ts';
import { classifyFirstBytes, peekClientHello, peekFirstBytes } from '../detect.ts';
import { splice } from '../forward.ts';
import { type ProxyMetrics, tlsLabels } from '../metrics.ts';
import { MESH_KEEPALIVE_MS } from '../outbound/mtls-connector.ts';
import { watchRetransmissions } from '../outbound/tcp-liveness.ts';
import type { ProxyLog } from '../proxy-log.ts';
import { createHttpInbound } from './http-inbound.ts';
import { createHttp2Inbound } from './http2-inbound.ts';

/**
 * How long a client on a port that is not opaque may stay silent before the inbound also connects
 * to the app, to see whether the app speaks first. A peer proxy sends a client's first bytes right
 * behind its handshake, so a client still silent after this is one its outbound already waited
 * out (server speaks first) or carries as opaque without waiting.
 */
const APP_FIRST_GRACE_MS = 100;
/**
 * The same before TLS detection on a port that takes plaintext (PERMISSIVE): longer, since an app
 * that speaks before a meshed client's ClientHello arrives (its first segment lost, resent after
 * 200 ms or more) would turn that mTLS connection into plaintext for the app.
 */
const PLAINTEXT_APP_FIRST_GRACE_MS = 1_000;

/**
 * How often the inbound looks for a new policy set to check the connections it already admitted
 * against (a set is a new object only when it changes, so most looks compare one reference).
 */
const POLICY_RECHECK_MS = 250;

/**
 * The ALPN answer to a client that offers some (peer proxies offer none). gRPC stacks (C-core,
 * grpc-go, grpc-java) offer only h2 and give up on a server that does not select it, so a gRPC
 * client holding its own SVID could not call the inbound at all. The inbound does not know what
 * the app speaks: HTTP/1.1 when offered (any HTTP app takes it, and curl or browsers offer both),
 * h2 when it is all the client speaks, and otherwise the client's own first choice, which the app
 * answers or not as it would without the proxy. Node can only select or fail the handshake.
 */
export function selectApplicationProtocol({ protocols }: { protocols: string[] }): string | undefined {
  if (protocols.includes('http/1.1')) return 'http/1.1';
  if (protocols.includes('h2')) return 'h2';
  return protocols[0];
}

/** The client's first bytes, and the app connection opened while waiting for them, if any. */
interface FirstBytes {
  readonly first: Buffer | undefined;
  readonly app?: Socket;
  /** The app spoke before the client: a server-speaks-first protocol, carried as a byte stream. */
  readonly appSpokeFirst?: boolean;
}

export interface InboundDeps {
  readonly config: ProxyConfig;
  readonly clock: Clock;
  readonly log: ProxyLog;
  readonly metrics: ProxyMetrics;
  /** The current TLS generation, or undefined before the first certificate. */
  readonly meshTls: () => MeshTls | undefined;
  readonly policy: () => WorkloadPolicy;
  /** Tracks every socket so a drain can wait for them and a shutdown can close them. */
  readonly track: (socket: Socket | TLSSocket) => void;
}

/** How an accepted connection finds its app port: fixed by the listener, or the original destination. */
export type AppPortSource =
  | { readonly kind: 'fixed'; readonly port: number }
  | { readonly kind: 'original-destination'; readonly resolve: (socket: Socket) => number | undefined };

export function createInbound(deps: InboundDeps) {
  const { config, metrics, log } = deps;
  const http = createHttpInbound(deps, {
    // An upgraded connection (WebSocket) keeps its request's decision only while policy agrees.
    upgraded: (socket, context, recheck) => admit(socket, context, recheck),
  });
  const http2 = createHttp2Inbound(deps);
  // Not listening: accepted sockets are handed to it once their first byte says TLS.
  // Chains are verified by hand right after the handshake, so refusals carry a reason for metrics
  // and logs; a client with no certificate is refused in the handshake (alert 116).
  const tlsServer = createCertificateRequiredServer({
    handshakeTimeout: config.detectTimeoutMs,
    allowHalfOpen: true,
    sessionIdContext: 'mutual-inbound',
    ALPNCallback: selectApplicationProtocol,
  });
  tlsServer.on('secureConnection', (socket: TLSSocket) => void afterHandshake(socket));
  tlsServer.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
    // A client that hangs up mid-handshake has almost always refused our certificate (another
    // CA, wrong identity): its own log says which. Not a timeout, not a protocol error.
    const reason =
      error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT'
        ? 'timeout'
        : error.code === 'ECONNRESET'
          ? 'client_closed'
          : error.code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE'
            ? 'no_client_certificate'
            : 'protocol';
    metrics.handshakeFailures.inc({ direction: 'inbound', reason });
    if (reason === 'no_client_certificate') {
      // Logged as the refusals after the handshake are: `mutual check` points users at this line.
      log.warnSampled('inbound client refused', `reason=${reason}`, {
        reason,
        error: 'the client sent no certificate',
        client: getInboundContext(socket)?.sourceIp ?? socket.remoteAddress,
      });
      return socket.destroy();
    }
    // Anyone who reaches the port can cause this at will: sampled by reason (metrics count each).
    log.warnSampled('inbound TLS handshake failed', `reason=${reason} code=${error.code}`, {
      reason,
      error: describeHandshakeError(error),
      client: getInboundContext(socket)?.sourceIp ?? socket.remoteAddress,
    });
    socket.destroy();
  });

  let appliedGeneration = 0;
  function currentTls(): MeshTls | undefined {
    const meshTls = deps.meshTls();
    if (meshTls && meshTls.generation !== appliedGeneration) {
      // setSecureContext replaces the whole context: always the full option set.
      tlsServer.setSecureContext(meshTls.unverifiedServerOptions);
      appliedGeneration = meshTls.generation;
    }
    return meshTls;
  }

  /**
   * Connections admitted under the policy in force then, and checked again when it changes, as
   * Istio's sidecars drain the connections of a changed filter chain: plaintext ones (closed once
   * their port turns STRICT) and opaque TCP ones (closed once a new set denies them). HTTP over
   * mTLS is not listed: each request is authorized under the set in force.
   */
  const admitted = new Map<
    Socket | TLSSocket,
    { readonly context: InboundContext; readonly recheck: Recheck | undefined }
  >();
  let checkedPolicy: WorkloadPolicy | undefined;
  const recheckTimer = setInterval(recheckAdmitted, POLICY_RECHECK_MS);
  recheckTimer.unref();

  /** `recheck`: policy's decision now on what was admitted (a TCP stream, an upgrade request). */
  function admit(stream: Socket | TLSSocket, context: InboundContext, recheck: Recheck | undefined) {
    if (recheck === undefined && context.peer.kind === 'mtls') return;
    if (stream.destroyed) return;
    if (!admitted.has(stream)) stream.once('close', () => admitted.delete(stream));
    admitted.set(stream, { context, recheck });
  }

  function recheckAdmitted() {
    const policy = deps.policy();
    if (policy === checkedPolicy) return;
    checkedPolicy = policy;
    for (const [stream, { context, recheck }] of admitted) {
      if (isPlaintext(context.peer) && policy.peerAuthenticationMode(context.policyPort) === 'STRICT') {
        log.warnSampled('plaintext connection closed: its port is now STRICT', `port=${context.policyPort}`, {
          port: context.policyPort,
          ...(context.policyPort === context.appPort ? {} : { appPort: context.appPort }),
          client: context.sourceIp,
        });
        admitted.delete(stream);
        refuse(stream, 'plaintext_strict', context.appPort);
        continue;
      }
      const decision = recheck?.();
      if (decision === undefined || decision.allowed) continue;
      countDecision(metrics, decision, context);
      logConnectionDenied(decision, context, 'policy changed: the open connection is closed');
      admitted.delete(stream);
      stream.destroy();
    }
  }

  function logConnectionDenied(
    decision: ReturnType<WorkloadPolicy['authorizeConnection']>,
    context: InboundContext,
    closed?: string,
  ) {
    const client = principalOf(context.peer) ?? context.sourceIp;
    // The first denial of each policy and client at once: "why is my call denied" needs it.
    log.warnSampled('connection denied', `policy=${decision.policy} client=${client}`, {
      policy: decision.policy,
      client,
      port: context.policyPort,
      ...(context.policyPort === context.appPort ? {} : { appPort: context.appPort }),
      ...(closed ? { closed } : {}),
    });
  }

  function refuse(socket: Socket, reason: string, port: number | string) {
    metrics.inboundRefused.inc({ reason, port: String(port) });
    socket.destroy();
  }

  /** Stage 1–3: accept, app port, TLS or plaintext. */
  async function accept(socket: Socket, appPortSource: AppPortSource) {
    deps.track(socket);
    socket.on('error', () => {});
    // A client that vanished without a FIN or RST (its pod gone, a partition) is noticed in about
    // 20 s, and what it held here (its app connection, buffers) released, as the outbound does.
    socket.setKeepAlive(true, MESH_KEEPALIVE_MS);
    // Keepalive waits while an answer to it is unacknowledged: that is bounded here.
    watchRetransmissions(socket);
    const appPort = appPortSource.kind === 'fixed' ? appPortSource.port : appPortSource.resolve(socket);
    if (appPort === undefined) return refuse(socket, 'no_original_destination', '');
    const policyPort = config.policyPorts.get(appPort) ?? appPort;
    const context: InboundContext = {
      appPort,
      policyPort,
      sourceIp: plainIp(socket.remoteAddress),
      peer: { kind: 'none', reason: 'no_client_hello' },
    };
    if (config.skipInboundPorts.has(appPort)) {
      context.peer = { kind: 'none', reason: 'port_skipped' };
      return forwardTcp(socket, context);
    }
    const mode = deps.policy().peerAuthenticationMode(policyPort);
    if (mode === 'DISABLE') {
      context.peer = { kind: 'none', reason: 'disabled' };
      return serve(socket, context, await appFirstBytes(socket, context));
    }
    const plaintextPeer: PeerTls = {
      kind: 'none',
      reason: isLoopbackIp(socket.remoteAddress) ? 'loopback' : 'no_client_hello',
    };
    // Where plaintext may come (PERMISSIVE), an unmeshed client of an app that speaks first (MySQL)
    // would wait out the whole detection timeout for its greeting: the app may end the wait.
    const detected =
      mode === 'STRICT'
        ? { first: await peekFirstBytes(socket, config.detectTimeoutMs) }
        : await raceApp(socket, { ...context, peer: plaintextPeer }, PLAINTEXT_APP_FIRST_GRACE_MS);
    const { first } = detected;
    if (socket.destroyed) return detected.app?.destroy();
    // Closed before its first byte: a TCP health check or a port scan, not a plaintext client.
    if (first === undefined && socket.readableEnded && !detected.appSpokeFirst) {
      detected.app?.destroy();
      return socket.destroy();
    }
    if (!detected.appSpokeFirst && classifyFirstBytes(first) === 'tls') {
      if (!currentTls()) {
        detected.app?.destroy();
        return refuse(socket, 'not_ready', appPort);
      }
      if (mode === 'PERMISSIVE') {
        // Mesh clients' ClientHellos arrive whole in the first segment: no wait for them.
        let hello = scanClientHello(first!);
        if (hello.kind === 'incomplete') hello = await peekClientHello(socket, config.detectTimeoutMs);
        if (socket.destroyed) return detected.app?.destroy();
        if (isAppTls(hello)) {
          context.peer = { kind: 'none', reason: 'opaque_tls' };
          return forwardTcp(socket, context, detected.app);
        }
      }
      detected.app?.destroy();
      setInboundContext(socket, context);
      // Half-open only once secure (afterHandshake): with it, a client's FIN mid-handshake went
      // unnoticed and the connection sat in CLOSE-WAIT until the handshake timeout.
      socket.allowHalfOpen = false;
      tlsServer.emit('connection', socket);
      return;
    }
    if (mode === 'STRICT') {
      // `port` is what policy sees (mesh.yaml's port under `mutual up`); the client dialled the
      // sidecar's own listener, which differs from both outside transparent mode.
      log.warnSampled('plaintext refused on a STRICT port', `port=${policyPort}`, {
        port: policyPort,
        ...(policyPort === appPort ? {} : { appPort }),
        ...(socket.localPort === appPort ? {} : { listener: socket.localPort }),
        client: context.sourceIp,
      });
      return refuse(socket, 'plaintext_strict', appPort);
    }
    context.peer = plaintextPeer;
    return serve(socket, context, detected);
  }

  /**
   * PERMISSIVE: whether a ClientHello is for the app's own TLS (an unmeshed client of an app that
   * serves HTTPS itself), to reach the app byte for byte instead of being refused for want of a
   * client certificate. As Linkerd does: a ClientHello naming a server (SNI) other than the
   * sidecar's names (isMeshServerName: the identity as peers send it, and the SVID's DNS SANs)
   * passes through. Istio decides by ALPN instead (its sidecars offer `istio-*`), which ours can
   * not: peer proxies offer none. Nor is "no ALPN" a sign of a mesh client: the app-TLS clients
   * of Redis, Kafka, AMQP or LDAP offer none either, while curl and browsers offer some with or
   * without an SVID. What stays terminated: a ClientHello with no SNI (a client dialling an IP:
   * every Node, openssl or curl client that holds an SVID and calls the inbound by address; an
   * unmeshed TLS client without SNI is taken for a mesh client and refused, as before), and one
   * this reader cannot read (malformed, oversized, stalled), which the TLS server then answers.
   * A client holding an SVID that dials a name (`curl --cert https://localhost:…`) must name the
   * sidecar (`--resolve`, `-servername`, or a DNS SAN in its SVID) or use a STRICT port.
   */
  function isAppTls(hello: ClientHelloScan): boolean {
    if (hello.kind !== 'client-hello' || hello.serverName === undefined) return false;
    const meshTls = currentTls();
    return meshTls !== undefined && !isMeshServerName(meshTls, hello.serverName);
  }

  /** Stage 4: who is the client? Verified against the current bundle before any byte reaches the app. */
  async function afterHandshake(socket: TLSSocket) {
    socket.allowHalfOpen = true;
    deps.track(socket);
    socket.on('error', () => {});
    const context = getInboundContext(socket);
    const meshTls = currentTls();
    if (!context || !meshTls) return socket.destroy();
    const verdict = verifyClientChain(socket, meshTls, deps.clock);
    if (!verdict.ok) {
      metrics.handshakeFailures.inc({ direction: 'inbound', reason: verdict.reason });
      log.warnSampled('inbound client refused', `reason=${verdict.reason}`, {
        reason: verdict.reason,
        error: verdict.message,
        client: context.sourceIp,
      });
      return socket.destroy();
    }
    context.peer = { kind: 'mtls', peerId: verdict.peerId, localId: meshTls.credentials.spiffeId };
    setInboundContext(socket, context);
    limitPeerKeyUpdates(socket, 'server', () => {
      metrics.tlsConnectionsLimited.inc({ direction: 'inbound', reason: 'key_update_flood' });
      log.warnSampled('inbound client closed: KeyUpdate flood', `client=${verdict.peerId}`, {
        client: verdict.peerId,
        address: context.sourceIp,
        limit: PEER_KEY_UPDATES_ALLOWED,
      });
    });
    serve(socket, context, await appFirstBytes(socket, context));
  }

  /**
   * The client's first bytes, to tell HTTP from the rest; none on an opaque port, where the server
   * may speak first and waiting for the client would hold its greeting for the detection timeout.
   * Elsewhere, a client still silent after a moment (its outbound has already waited out its own
   * detection, or carries the port as opaque) races the app: if the app speaks first, the
   * connection is a byte stream at once, instead of after a second detection timeout here. Only
   * where the client may open a TCP stream to the app anyway (connection-level authorization), and
   * an HTTP app never speaks first, so no HTTP request skips its per-request checks this way.
   */
  async function appFirstBytes(stream: Socket | TLSSocket, context: InboundContext): Promise<FirstBytes> {
    if (config.opaquePorts.has(context.appPort)) return { first: undefined };
    return raceApp(stream, context, APP_FIRST_GRACE_MS);
  }

  /** The client's first bytes; if it is still silent after `graceMs`, the first of the client and the app to speak. */
  async function raceApp(
    stream: Socket | TLSSocket,
    context: InboundContext,
    graceMs: number,
  ): Promise<FirstBytes> {
    const stop = new AbortController();
    const peek = peekFirstBytes(stream, config.detectTimeoutMs, stop.signal);
    let grace: NodeJS.Timeout | undefined;
    const isSilent = await Promise.race([
      peek.then(() => false),
      new Promise<boolean>((resolve) => {
        grace = setTimeout(() => resolve(true), graceMs);
      }),
    ]);
    clearTimeout(grace);
    if (!isSilent || stream.destroyed || !connectionAllowed(context)) return { first: await peek };
    const app = connectApp(context.appPort);
    const appSpeaks = whenFirstReadable(app);
    const winner = await Promise.race([
      peek.then((first) => ({ first })),
      appSpeaks.spoke.then((spoke) => ({ spoke })),
    ]);
    if ('first' in winner) {
      appSpeaks.cancel();
      return { first: winner.first, app };
    }
    if (!winner.spoke) {
      // The app refused or closed: decide on the client's bytes, as without the race.
      app.destroy();
      return { first: await peek };
    }
    stop.abort();
    return { first: await peek, app, appSpokeFirst: true };
  }

  /** Stage 5: HTTP gets request-level handling; everything else is a byte stream. */
  function serve(
    stream: Socket | TLSSocket,
    context: InboundContext,
    { first, app, appSpokeFirst }: FirstBytes,
  ) {
    if (stream.destroyed) return app?.destroy();
    const protocol =
      config.opaquePorts.has(context.appPort) || appSpokeFirst ? 'opaque' : classifyFirstBytes(first);
    if (protocol === 'http1' || protocol === 'http2') {
      // Opened in case the app spoke first; HTTP goes through the pooled app connections.
      app?.destroy();
      admit(stream, context, undefined);
      if (protocol === 'http2') return http2.handle(stream, context);
      setInboundContext(stream, context);
      return http.handle(stream, context);
    }
    forwardTcp(stream, context, app);
  }

  /** Policy's decision on this client opening a TCP stream to the app; none on a skipped port. */
  function connectionDecision(context: InboundContext) {
    if (context.peer.kind === 'none' && context.peer.reason === 'port_skipped') return undefined;
    return deps.policy().authorizeConnection({
      sourcePrincipal: principalOf(context.peer),
      sourceIp: context.sourceIp,
      destinationPort: context.policyPort,
    });
  }

  /** Whether policy lets this client open a TCP stream to the app (not counted: forwardTcp does). */
  function connectionAllowed(context: InboundContext): boolean {
    return connectionDecision(context)?.allowed ?? true;
  }

  function connectApp(appPort: number): Socket {
    const app = connectAppSocket(appPort, { allowHalfOpen: true });
    deps.track(app);
    app.on('error', (error: NodeJS.ErrnoException) =>
      log.warnSampled('app connection failed', `port=${appPort} code=${error.code}`, {
        port: appPort,
        error: error.message,
      }),
    );
    return app;
  }

  /** Stage 6 (TCP): authorize the connection, then splice it to the app (`early`: already open). */
  function forwardTcp(stream: Socket | TLSSocket, context: InboundContext, early?: Socket) {
    const labels = { ...tlsLabels(context.peer, undefined, 'inbound'), port: String(context.appPort) };
    const decision = connectionDecision(context);
    if (decision) {
      countDecision(metrics, decision, context);
      if (!decision.allowed) {
        logConnectionDenied(decision, context);
        early?.destroy();
        return stream.destroy();
      }
      admit(stream, context, () => connectionDecision(context));
    }
    const app = early ?? connectApp(context.appPort);
    metrics.inboundConnections.inc(labels);
    metrics.inboundOpen.inc();
    const idle = {
      ms: config.idleTimeoutMs,
      onIdle: () => metrics.connectionsIdleClosed.inc({ direction: 'inbound', protocol: 'opaque' }),
    };
    splice(
      stream,
      app,
      () => {
        metrics.inboundOpen.dec();
        metrics.inboundClosed.inc(labels);
        metrics.inboundReceivedBytes.inc(labels, app.bytesWritten);
        metrics.inboundSentBytes.inc(labels, app.bytesRead);
      },
      idle,
    );
  }

  return {
    accept,
    closeIdle: () => {
      http.closeIdle();
      http2.closeIdle();
    },
    close: () => {
      clearInterval(recheckTimer);
      http.close();
      http2.close();
    },
  };
}

/**
 * Resolves true once the socket has bytes to read (left unread), false if it ends or fails first.
 * `cancel` stops watching and leaves the socket as it was.
 */
function whenFirstReadable(socket: Socket): { spoke: Promise<boolean>; cancel(): void } {
  let cancel = () => {};
  const spoke = new Promise<boolean>((resolve) => {
    const done = (value: boolean) => {
      cancel();
      resolve(value);
    };
    const onReadable = () => done(socket.readableLength > 0);
    const onGone = () => done(false);
    cancel = () => {
      socket.off('readable', onReadable);
      socket.off('error', onGone);
      socket.off('close', onGone);
    };
    socket.on('readable', onReadable);
    socket.once('error', onGone);
    socket.once('close', onGone);
  });
  return { spoke, cancel };
}

/** Policy's decision, under the set in force now, on something admitted under an earlier one. */
export type Recheck = () => ReturnType<WorkloadPolicy['authorizeConnection']> | undefined;

/** A client without a verified certificate, on a port whose mode was not skipped. */
function isPlaintext(peer: PeerTls): boolean {
  return peer.kind === 'none' && peer.reason !== 'port_skipped';
}

export function principalOf(peer: PeerTls): string | undefined {
  return peer.kind === 'mtls' ? peer.peerId : undefined;
}

export function countDecision(
  metrics: ProxyMetrics,
  decision: ReturnType<WorkloadPolicy['authorizeConnection']>,
  context: InboundContext,
) {
  const base = { client_id: principalOf(context.peer) ?? '', port: String(context.appPort) };
  metrics.authorizations.inc({
    ...base,
    decision: decision.allowed ? 'allow' : 'deny',
    policy: decision.policy ?? '',
  });
  for (const policy of decision.audited ?? [])
    metrics.authorizations.inc({ ...base, decision: 'audit', policy });
}
