// HTTP/2 on an inbound connection (prior knowledge, as gRPC speaks it inside the mesh): each stream
// is authorized with the same inputs as an HTTP/1 request, carries the verified client identity in
// `x-mutual-client-id` (never trusted from outside), is counted in the per-request metrics, and is
// forwarded to the app over one pooled HTTP/2 session per app port — streamed both ways with
// backpressure, trailers passed through, resets propagated.
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect as connectHttp2,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  performServerHandshake,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { connectApp } from '../app-connect.ts';
import type { InboundContext } from '../connection-context.ts';
import {
  appLocalResourcesText,
  CLIENT_ID_HEADER,
  DENIED_BY_HEADER,
  isLocalResourceError,
  PROXY_ERROR_HEADER,
} from '../http-forward.ts';
import {
  answerStream,
  budgetUpstreamResets,
  captureRequestTrailers,
  closeWhenIdle,
  countWhenAnswered,
  forwardedHeaders,
  GRPC_PERMISSION_DENIED,
  GRPC_UNAVAILABLE,
  guardRapidReset,
  HTTP2_SERVER_LIMITS,
  isClosedOnArrival,
  relayExchange,
  resendWhenRefused,
  resetWhenIdle,
  SESSION_RETIRE_GRACE_MS,
} from '../http2-relay.ts';
import { countConnectionBytes, flushConnectionBytes, methodLabel, tlsLabels } from '../metrics.ts';
import { sampleKeyOf } from '../proxy-log.ts';
import { checkHttp2Request, headersForPolicy } from './check-request.ts';
import { countDecision, type InboundDeps, principalOf } from './inbound.ts';

/** gRPC reads HTTP 400 as INTERNAL (grpc/doc/http-grpc-status-mapping.md). */
const GRPC_INTERNAL = 13;

export function createHttp2Inbound(deps: InboundDeps) {
  const { metrics, log, clock } = deps;
  const probePaths = new Set(deps.config.probePaths);
  const sessions = new Set<ServerHttp2Session>();
  const app = createAppSessions(deps);

  function handleStream(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    context: InboundContext,
    socket: Socket | TLSSocket,
    rawHeaders: readonly string[],
  ) {
    const startedMs = clock.now();
    const method = headers[':method'] ?? 'GET';
    const path = headers[':path'] ?? '/';
    const answered = countWhenAnswered(stream, (status) => {
      flushConnectionBytes(socket);
      const labels = { ...tlsLabels(context.peer, undefined, 'inbound'), port: String(context.appPort) };
      metrics.httpRequests.inc({ ...labels, method: methodLabel(method), status_code: status });
      metrics.httpDuration.observe(
        { tls: labels.tls, status_code: status },
        (clock.now() - startedMs) / 1000,
      );
    });
    const answer = (code: number, text: string, grpcStatus: number, extra: OutgoingHttpHeaders = {}) => {
      if (answerStream(stream, headers, code, text, grpcStatus, extra)) answered(code);
    };
    captureRequestTrailers(stream);

    if (method === 'CONNECT')
      return answer(501, 'mutual: CONNECT over HTTP/2 is not proxied', GRPC_UNAVAILABLE);
    const checked = checkHttp2Request(headers);
    if (!checked.isValid) {
      log.warnSampled('malformed request refused', sampleKeyOf(checked.problem), {
        client: principalOf(context.peer) ?? context.sourceIp,
        method: method.slice(0, 40),
        target: path.slice(0, 200),
        problem: checked.problem,
      });
      stream.resume();
      return answer(400, `mutual: bad request: ${checked.problem}\n`, GRPC_INTERNAL, {
        [PROXY_ERROR_HEADER]: 'bad_request',
      });
    }
    if (!probePaths.has(checked.path)) {
      const decision = deps.policy().authorizeRequest({
        sourcePrincipal: principalOf(context.peer),
        sourceIp: context.sourceIp,
        destinationPort: context.policyPort,
        method,
        path: checked.target,
        host: checked.host,
        headers: policyHeaders(rawHeaders, checked.host),
      });
      countDecision(metrics, decision, context);
      if (!decision.allowed) {
        const client = principalOf(context.peer) ?? context.sourceIp;
        // The first denial of each policy and client at once: "why is my call denied" needs it.
        log.warnSampled('request denied', `policy=${decision.policy} client=${client}`, {
          policy: decision.policy,
          client,
          method,
          path: checked.target,
        });
        stream.resume();
        // Only meshed callers learn which policy refused them.
        const extra = context.peer.kind === 'mtls' ? { [DENIED_BY_HEADER]: decision.policy } : {};
        return answer(403, 'RBAC: access denied', GRPC_PERMISSION_DENIED, extra);
      }
    }

    const fail = (error: Error) => {
      // Out of descriptors opening the app's session (the stream's error is its cancellation,
      // caused by the connect's EMFILE): the app was never asked, and is not at fault.
      const isLocal = isLocalResourceError(error) || isLocalResourceError(error.cause);
      answer(
        502,
        isLocal
          ? appLocalResourcesText(context.appPort, error)
          : `mutual: the app on port ${context.appPort} did not answer over HTTP/2: ${error.message}\n`,
        GRPC_UNAVAILABLE,
        { [PROXY_ERROR_HEADER]: isLocal ? 'local_resources' : 'app_unavailable' },
      );
    };
    const requestHeaders = forwardedHeaders(headers);
    requestHeaders[':path'] = checked.target;
    if (context.peer.kind === 'mtls') requestHeaders[CLIENT_ID_HEADER] = context.peer.peerId;
    // A stream the app refuses unprocessed is sent again on a fresh session (canResend): a gRPC
    // server's GOAWAY (max_connection_age, a graceful stop) refuses every stream still queued
    // behind its SETTINGS_MAX_CONCURRENT_STREAMS, which its own clients would have retried.
    const send = () => {
      let upstream: ClientHttp2Stream;
      try {
        upstream = app
          .session(context.appPort)
          .request(requestHeaders, stream.endAfterHeaders ? { endStream: true } : { waitForTrailers: true });
      } catch (error) {
        return fail(error as Error);
      }
      relayExchange(stream, method, upstream, {
        onResponse: answered,
        onFailure: fail,
        onRefused,
      });
    };
    const onRefused = resendWhenRefused(send);
    send();
  }

  return {
    handle(socket: Socket | TLSSocket, context: InboundContext) {
      const labels = { ...tlsLabels(context.peer, undefined, 'inbound'), port: String(context.appPort) };
      metrics.inboundConnections.inc(labels);
      metrics.inboundOpen.inc();
      countConnectionBytes(socket, metrics.inboundReceivedBytes, metrics.inboundSentBytes, labels);
      socket.once('close', () => {
        metrics.inboundOpen.dec();
        metrics.inboundClosed.inc(labels);
      });
      // HTTP/2 has no half-close: a client's FIN ends the connection, and the streams it still
      // had open at the app are cancelled (half-open, a stalled or idle stream held them forever).
      socket.allowHalfOpen = false;
      // Not http2.createServer + emit('connection'): that server refuses TLS sockets whose ALPN
      // did not say h2, and the mesh's TLS carries no ALPN. The peeked preface is still buffered
      // on the socket, and the session reads it first.
      const session = performServerHandshake(socket, HTTP2_SERVER_LIMITS);
      sessions.add(session);
      const client = principalOf(context.peer) ?? context.sourceIp;
      const watchResets = guardRapidReset(session, clock, () => {
        metrics.http2ConnectionsLimited.inc({ direction: 'inbound', reason: 'rapid_reset' });
        log.warn('HTTP/2 client reset too many streams before their answer; connection closed', {
          client,
        });
      });
      const watchIdle = closeWhenIdle(session, deps.config.idleTimeoutMs, () =>
        metrics.connectionsIdleClosed.inc({ direction: 'inbound', protocol: 'http2' }),
      );
      // Counted each time, logged once per connection.
      let isIdleStreamLogged = false;
      const onIdleStream = () => {
        metrics.http2StreamsIdleReset.inc({ direction: 'inbound' });
        if (isIdleStreamLogged) return;
        isIdleStreamLogged = true;
        log.info('HTTP/2 stream reset: nothing read or sent on it for the stream idle timeout', {
          client,
          streamIdleTimeoutMs: deps.config.streamIdleTimeoutMs,
        });
      };
      session.on('stream', (stream, headers, _flags, rawHeaders) => {
        // First: a stream nghttp2 reset in the read that brought it (a content-length its DATA does
        // not match) emits 'error' once handed over, and with no listener that ended the sidecar.
        stream.on('error', ignoreStreamError);
        watchResets(stream);
        // Reset in the read that brought it (a client writing preface, SETTINGS and thousands of
        // HEADERS + RST_STREAM at once): sent on all the same, every stream of a read reached the
        // app before the limit above had seen the first reset.
        if (isClosedOnArrival(stream)) return;
        watchIdle(stream);
        resetWhenIdle(stream, deps.config.streamIdleTimeoutMs, onIdleStream);
        handleStream(stream, headers, context, socket, rawHeaders);
      });
      session.on('error', (error: NodeJS.ErrnoException) => {
        log.warnSampled('inbound HTTP/2 connection failed', `code=${error.code}`, {
          error: error.message,
          client,
        });
      });
      session.once('close', () => {
        sessions.delete(session);
        socket.destroy();
      });
    },
    /** Drain: every client connection gets a GOAWAY and closes once its open streams are done. */
    closeIdle() {
      for (const session of sessions) if (!session.closed) session.close();
    },
    close() {
      for (const session of sessions) session.destroy();
      app.close();
    },
  };
}

/**
 * One HTTP/2 prior-knowledge session per app port, opened on first use and again after it closes
 * or has had so many streams cancelled that the app would close it (budgetUpstreamResets).
 */
function createAppSessions({ log, clock, metrics }: Pick<InboundDeps, 'log' | 'clock' | 'metrics'>) {
  const sessions = new Map<number, ClientHttp2Session>();
  // Ports whose failure has been logged; cleared once the app answers HTTP/2 again.
  const failing = new Set<number>();
  return {
    session(port: number): ClientHttp2Session {
      const open = sessions.get(port);
      if (open && !open.closed && !open.destroyed) return open;
      const session = connectHttp2(`http://127.0.0.1:${port}`, { createConnection: () => connectApp(port) });
      const forget = () => {
        if (sessions.get(port) === session) sessions.delete(port);
      };
      // The app's SETTINGS prove it speaks HTTP/2 (a TCP connect alone does not).
      session.once('remoteSettings', () => failing.delete(port));
      session.on('error', (error: NodeJS.ErrnoException) => {
        forget();
        if (failing.has(port)) return;
        failing.add(port);
        if (isLocalResourceError(error))
          log.warn('the sidecar could not connect to the app, for want of its own resources', {
            port,
            error: error.message,
            code: error.code,
          });
        else log.warn('the app does not answer HTTP/2', { port, error: error.message, code: error.code });
      });
      session.on('goaway', forget);
      session.once('close', forget);
      budgetUpstreamResets(session, clock, () => {
        forget();
        metrics.http2SessionsRenewed.inc({ direction: 'inbound', reason: 'resets' });
        log.info('HTTP/2 session to the app renewed: many streams on it were cancelled', { port });
        setTimeout(() => session.close(), SESSION_RETIRE_GRACE_MS).unref();
      });
      sessions.set(port, session);
      return session;
    },
    close() {
      for (const session of sessions.values()) session.destroy();
      sessions.clear();
    },
  };
}

/** Every value of each header, and `host` from :authority when the request sent no Host. */
function policyHeaders(rawHeaders: readonly string[], host: string): Record<string, string[]> {
  const headers = headersForPolicy(rawHeaders);
  headers.host ??= [host];
  return headers;
}

/** A stream's failure is handled where it closes (relayExchange, countWhenAnswered); its 'error' is not news. */
function ignoreStreamError(): void {}
