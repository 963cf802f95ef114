// HTTP/2 from the app to a meshed destination (gRPC and h2c prior knowledge): the proxy ends the
// app's HTTP/2 connection itself and sends each stream over one multiplexed mTLS HTTP/2
// connection per destination, as Linkerd does. Every app connection then shares that one
// handshake, and every request is counted with its status and latency on this side too.

import {
  type ClientHttp2Session,
  connect as connectHttp2,
  type Http2Stream,
  type IncomingHttpHeaders,
  performServerHandshake,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { MeshTls } from '../../tls/index.ts';
import { PROXY_ERROR_HEADER } from '../http-forward.ts';
import {
  answerStream,
  budgetUpstreamResets,
  captureRequestTrailers,
  closeWhenIdle,
  countWhenAnswered,
  forwardedHeaders,
  GRPC_UNAVAILABLE,
  guardRapidReset,
  HTTP2_CONNECTION_WINDOW,
  HTTP2_SERVER_LIMITS,
  HTTP2_STREAM_WINDOW,
  isClosedOnArrival,
  relayExchange,
  resendWhenRefused,
  resetWhenIdle,
  SESSION_RETIRE_GRACE_MS,
} from '../http2-relay.ts';
import { flushConnectionBytes, methodLabel } from '../metrics.ts';
import { type MeshedDestination, originOf, reuseKey } from './destinations.ts';
import type { HttpOutboundDeps } from './http-outbound.ts';

/** The same dependencies as the HTTP/1 outbound: connector, failure accounting, credentials. */
export type Http2OutboundDeps = HttpOutboundDeps;

interface AppConnection {
  readonly socket: Socket;
  readonly destination: MeshedDestination;
  readonly label: string;
  /** The connection's TLS labels plus its destination, for per-request metrics. */
  readonly labels: Record<string, string>;
}

/** A pooled session closes after this share of --idle-timeout without streams. */
const POOLED_IDLE_SHARE = 0.9;
/**
 * A pooled session is PINGed this often and destroyed when a PING goes unanswered as long (Linkerd's
 * HTTP/2 keepalive is 10 s). TCP keepalive alone misses a peer that vanished while a stream's
 * HEADERS were still unacknowledged (the kernel then retransmits for about 15 minutes): every new
 * stream went to that dead session and hung, and the app's calls with it.
 */
const SESSION_PING_INTERVAL_MS = 10_000;
const SESSION_PING_TIMEOUT_MS = 10_000;

interface PooledSession {
  readonly generation: number;
  readonly ready: Promise<ClientHttp2Session>;
  session?: ClientHttp2Session;
}

export function createHttp2Outbound(deps: Http2OutboundDeps) {
  const { metrics, log, clock } = deps;
  const appSessions = new Set<ServerHttp2Session>();
  const pool = new Map<string, PooledSession>();
  const pooledIdleWatchers = new WeakMap<ClientHttp2Session, (stream: Http2Stream) => void>();

  /**
   * The destination's multiplexed session for the credentials in force, opened on first use and
   * again once it closes or is told to go away (keyed as every reused connection is: reuseKey).
   */
  function sessionFor(connection: AppConnection, meshTls: MeshTls): Promise<ClientHttp2Session> {
    const { destination, label } = connection;
    const key = reuseKey(destination, meshTls);
    const existing = pool.get(key);
    if (existing && (!existing.session || isOpen(existing.session))) return existing.ready;
    const forget = () => {
      if (pool.get(key) === entry) pool.delete(key);
    };
    const ready = deps.connect(destination, meshTls).then(
      (socket) => {
        deps.track(socket);
        const session = connectHttp2(originOf(destination), {
          createConnection: () => socket,
          settings: { initialWindowSize: HTTP2_STREAM_WINDOW },
        });
        session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW);
        session.on('error', (error: Error) => {
          forget();
          log.warnSampled('outbound HTTP/2 connection failed', `destination=${label}`, {
            destination: label,
            error: error.message,
          });
        });
        session.on('goaway', forget);
        session.once('close', forget);
        // So many streams cancelled on it that the destination's proxy would close it: new
        // streams go to a fresh session, those on this one finish.
        budgetUpstreamResets(session, clock, () => {
          forget();
          metrics.http2SessionsRenewed.inc({ direction: 'outbound', reason: 'resets' });
          log.info('HTTP/2 session to a destination renewed: many streams on it were cancelled', {
            destination: label,
          });
          setTimeout(() => session.close(), SESSION_RETIRE_GRACE_MS).unref();
        });
        // Closed, for want of streams, before the destination's proxy would close it (its own
        // --idle-timeout, counted from the same last stream): a new stream never races that GOAWAY.
        pooledIdleWatchers.set(
          session,
          closeWhenIdle(session, Math.floor(deps.idleTimeoutMs * POOLED_IDLE_SHARE), forget),
        );
        pingWhileOpen(session, () => {
          forget();
          log.warnSampled(
            'outbound HTTP/2 connection closed: the destination did not answer a keepalive PING',
            `destination=${label}`,
            { destination: label, timeoutMs: SESSION_PING_TIMEOUT_MS },
          );
        });
        entry.session = session;
        return session;
      },
      (error: unknown) => {
        forget();
        const reason = deps.onConnectFailure(error, destination, label);
        throw Object.assign(error as Error, { meshReason: reason });
      },
    );
    // Each stream waiting on it handles a failure; this only keeps an unawaited rejection quiet.
    ready.catch(() => {});
    const entry: PooledSession = { generation: meshTls.generation, ready };
    pool.set(key, entry);
    return ready;
  }

  function handleStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, connection: AppConnection) {
    const startedMs = clock.now();
    const method = headers[':method'] ?? 'GET';
    captureRequestTrailers(stream);
    const answered = countWhenAnswered(stream, (status) => {
      flushConnectionBytes(connection.socket);
      metrics.outboundHttpRequests.inc({
        ...connection.labels,
        method: methodLabel(method),
        status_code: status,
      });
      metrics.outboundHttpDuration.observe({ status_code: status }, (clock.now() - startedMs) / 1000);
    });
    const fail = (error: Error & { meshReason?: string }) => {
      const reason = error.meshReason ?? 'upstream_failed';
      const text = `mutual: no answer from ${connection.destination.serverId} at ${connection.label} (${reason}): ${error.message}\n`;
      if (answerStream(stream, headers, 502, text, GRPC_UNAVAILABLE, { [PROXY_ERROR_HEADER]: reason }))
        answered(502);
    };
    if (method === 'CONNECT') {
      if (answerStream(stream, headers, 501, 'mutual: CONNECT over HTTP/2 is not proxied', GRPC_UNAVAILABLE))
        answered(501);
      return;
    }
    // A request is sent again when the destination refuses it unprocessed (it went away
    // mid-flight, draining), if its body is small enough to have been kept (canResend); a larger
    // one is refused to the app, whose client may retry it.
    const send = () => {
      const meshTls = deps.meshTls();
      if (!meshTls) return fail(new Error('the proxy has no certificate yet'));
      sessionFor(connection, meshTls).then(
        (session) => {
          if (stream.destroyed || stream.closed) return;
          let upstream: ReturnType<ClientHttp2Session['request']>;
          try {
            upstream = session.request(
              forwardedHeaders(headers),
              stream.endAfterHeaders ? { endStream: true } : { waitForTrailers: true },
            );
          } catch (error) {
            return fail(error as Error);
          }
          pooledIdleWatchers.get(session)?.(upstream);
          relayExchange(stream, method, upstream, {
            onResponse: answered,
            onFailure: fail,
            onRefused,
          });
        },
        (error: Error) => {
          if (!stream.destroyed) fail(error);
        },
      );
    };
    const onRefused = resendWhenRefused(send);
    send();
  }

  return {
    /** Serves the app's HTTP/2 connection (its preface is still buffered on the socket). */
    handle(socket: Socket, destination: MeshedDestination, label: string, labels: Record<string, string>) {
      const connection: AppConnection = {
        socket,
        destination,
        label,
        labels: { ...labels, destination: label },
      };
      // HTTP/2 has no half-close: the app's FIN ends the connection and cancels its open streams.
      socket.allowHalfOpen = false;
      const session = performServerHandshake(socket, HTTP2_SERVER_LIMITS);
      session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW);
      appSessions.add(session);
      const watchResets = guardRapidReset(session, clock, () => {
        metrics.http2ConnectionsLimited.inc({ direction: 'outbound', reason: 'rapid_reset' });
        log.warn('HTTP/2 connection from the app reset too many streams before their answer; closed', {
          destination: label,
        });
      });
      const watchIdle = closeWhenIdle(session, deps.idleTimeoutMs, () =>
        metrics.connectionsIdleClosed.inc({ direction: 'outbound', protocol: 'http2' }),
      );
      // Counted each time, logged once per connection.
      let isIdleStreamLogged = false;
      const onIdleStream = () => {
        metrics.http2StreamsIdleReset.inc({ direction: 'outbound' });
        if (isIdleStreamLogged) return;
        isIdleStreamLogged = true;
        log.info('HTTP/2 stream from the app reset: nothing read or sent on it for the stream idle timeout', {
          destination: label,
          streamIdleTimeoutMs: deps.streamIdleTimeoutMs,
        });
      };
      session.on('stream', (stream, headers) => {
        // First: a stream nghttp2 reset in the read that brought it (a content-length its DATA does
        // not match) emits 'error' once handed over, and with no listener that ended the sidecar.
        stream.on('error', ignoreStreamError);
        watchResets(stream);
        // Reset in the read that brought it: no destination connection is opened for it.
        if (isClosedOnArrival(stream)) return;
        watchIdle(stream);
        resetWhenIdle(stream, deps.streamIdleTimeoutMs, onIdleStream);
        handleStream(stream, headers, connection);
      });
      session.on('error', (error: Error) => {
        log.warnSampled('HTTP/2 connection from the app failed', `destination=${label}`, {
          destination: label,
          error: error.message,
        });
      });
      session.once('close', () => {
        appSessions.delete(session);
        socket.destroy();
      });
    },
    /** New credentials or bundle: sessions of older generations finish their streams and close. */
    retireBefore(generation: number) {
      for (const [key, entry] of pool) {
        if (entry.generation >= generation) continue;
        pool.delete(key);
        whenOpen(entry, (session) => setTimeout(() => session.close(), SESSION_RETIRE_GRACE_MS).unref());
      }
    },
    /** Drain: every app connection gets a GOAWAY and closes once its streams are done; so do ours. */
    closeIdle() {
      for (const session of appSessions) if (!session.closed) session.close();
      for (const entry of pool.values()) whenOpen(entry, (session) => session.close());
    },
    close() {
      for (const session of appSessions) session.destroy();
      for (const entry of pool.values()) whenOpen(entry, (session) => session.destroy());
      pool.clear();
    },
  };
}

/** Runs `action` on the entry's session now, or once it is open (a retired session may still be connecting). */
function whenOpen(entry: PooledSession, action: (session: ClientHttp2Session) => void): void {
  if (entry.session) action(entry.session);
  else entry.ready.then(action, () => {});
}

/**
 * PINGs `session` every SESSION_PING_INTERVAL_MS; one unanswered for SESSION_PING_TIMEOUT_MS
 * destroys it (its streams fail, 502 to the app; new ones open a fresh connection) after `onDead`.
 */
function pingWhileOpen(session: ClientHttp2Session, onDead: () => void): void {
  let deadline: NodeJS.Timeout | undefined;
  const interval = setInterval(() => {
    if (deadline || session.closed || session.destroyed) return;
    deadline = setTimeout(() => {
      if (session.destroyed) return;
      onDead();
      session.destroy(new Error(`no answer to a keepalive PING within ${SESSION_PING_TIMEOUT_MS / 1000} s`));
    }, SESSION_PING_TIMEOUT_MS).unref();
    try {
      session.ping(() => {
        clearTimeout(deadline);
        deadline = undefined;
      });
    } catch {
      // Closing already (ERR_HTTP2_INVALID_SESSION): its 'close' stops the timers.
    }
  }, SESSION_PING_INTERVAL_MS).unref();
  session.once('close', () => {
    clearInterval(interval);
    clearTimeout(deadline);
  });
}

function isOpen(session: ClientHttp2Session): boolean {
  return !session.closed && !session.destroyed;
}

/** A stream's failure is handled where it closes (relayExchange, countWhenAnswered); its 'error' is not news. */
function ignoreStreamError(): void {}
