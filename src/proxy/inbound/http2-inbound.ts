// HTTP/2 on an inbound connection (prior knowledge, as gRPC speaks it inside the mesh): each stream
// is authorized with the same inputs as an HTTP/1 request, carries the verified client identity in
// `x-mutual-client-id` (never trusted from outside), is counted in the per-request metrics, and is
// forwarded to the app over one pooled HTTP/2 session per app port — streamed both ways with
// backpressure, trailers passed through, resets propagated.
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect as connectHttp2,
  constants,
  type Http2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  performServerHandshake,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { InboundContext } from '../connection-context.ts';
import { CLIENT_ID_HEADER, DENIED_BY_HEADER, isClientIdHeader, PROXY_ERROR_HEADER } from '../http-forward.ts';
import { countConnectionBytes, flushConnectionBytes, methodLabel, tlsLabels } from '../metrics.ts';
import { checkHttp2Request } from './check-request.ts';
import { countDecision, type InboundDeps, principalOf } from './inbound.ts';

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_REFUSED_STREAM } = constants;

/** What one client connection may ask of the proxy; beyond these nghttp2 refuses the stream or the session. */
const SERVER_LIMITS = {
  maxHeaderListPairs: 256,
  settings: { maxConcurrentStreams: 256, maxHeaderListSize: 64 * 1024 },
} as const;

/** Connection-specific headers (RFC 9113 §8.2.2) and the identity only this proxy may set. */
const NOT_FORWARDED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  CLIENT_ID_HEADER,
]);

/** gRPC status codes this proxy answers with (grpc/doc/statuscodes.md). */
const GRPC_PERMISSION_DENIED = 7;
const GRPC_INTERNAL = 13;
const GRPC_UNAVAILABLE = 14;

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
  ) {
    const startedMs = clock.now();
    const method = headers[':method'] ?? 'GET';
    const path = headers[':path'] ?? '/';
    const isGrpc = (headers['content-type'] ?? '').startsWith('application/grpc');
    let status = 0;
    stream.on('error', () => {});
    stream.once('close', () => {
      // Counted as HTTP/1 counts: once a response has gone out whole; a reset stream is no answer.
      if (status === 0 || stream.rstCode !== NGHTTP2_NO_ERROR) return;
      flushConnectionBytes(socket);
      const labels = { ...tlsLabels(context.peer, undefined, 'inbound'), port: String(context.appPort) };
      metrics.httpRequests.inc({ ...labels, method: methodLabel(method), status_code: String(status) });
      metrics.httpDuration.observe(
        { tls: labels.tls, status_code: String(status) },
        (clock.now() - startedMs) / 1000,
      );
    });
    const answer = (code: number, text: string, grpcStatus: number, extra: OutgoingHttpHeaders = {}) => {
      if (stream.headersSent || stream.destroyed) return;
      status = code;
      if (isGrpc) {
        // Trailers-only, as a gRPC server answers an error: every client reads the status from it.
        stream.respond(
          {
            ':status': code,
            'content-type': headers['content-type'],
            'grpc-status': String(grpcStatus),
            'grpc-message': grpcMessage(text),
            ...extra,
          },
          { endStream: true },
        );
      } else {
        const body = Buffer.from(text);
        stream.respond({
          ':status': code,
          'content-type': 'text/plain',
          'content-length': body.length,
          ...extra,
        });
        stream.end(body);
      }
    };

    if (method === 'CONNECT')
      return answer(501, 'mutual: CONNECT over HTTP/2 is not proxied', GRPC_UNAVAILABLE);
    const checked = checkHttp2Request(headers);
    if (!checked.isValid) {
      log.warn('malformed request refused', {
        client: principalOf(context.peer) ?? context.sourceIp,
        method: method.slice(0, 40),
        target: path.slice(0, 200),
        problem: checked.problem,
      });
      stream.resume();
      // gRPC reads HTTP 400 as INTERNAL (grpc/doc/http-grpc-status-mapping.md).
      return answer(400, `mutual: bad request: ${checked.problem}\n`, GRPC_INTERNAL, {
        [PROXY_ERROR_HEADER]: 'bad_request',
      });
    }
    if (!probePaths.has(checked.path)) {
      const decision = deps.policy().authorizeRequest({
        sourcePrincipal: principalOf(context.peer),
        sourceIp: context.sourceIp,
        destinationPort: context.appPort,
        method,
        path: checked.target,
        host: checked.host,
        headers: headers.host === undefined ? { ...headers, host: checked.host } : headers,
      });
      countDecision(metrics, decision, context);
      if (!decision.allowed) {
        log.warn('request denied', {
          policy: decision.policy,
          client: principalOf(context.peer) ?? context.sourceIp,
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
      answer(
        502,
        `mutual: the app on port ${context.appPort} did not answer over HTTP/2: ${error.message}\n`,
        GRPC_UNAVAILABLE,
      );
    };
    const requestHeaders = forwardedHeaders(headers);
    requestHeaders[':path'] = checked.target;
    if (context.peer.kind === 'mtls') requestHeaders[CLIENT_ID_HEADER] = context.peer.peerId;
    const hasBody = !stream.endAfterHeaders;
    let upstream: ClientHttp2Stream;
    try {
      upstream = app
        .session(context.appPort)
        .request(requestHeaders, hasBody ? { waitForTrailers: true } : { endStream: true });
    } catch (error) {
      return fail(error as Error);
    }
    let upstreamError: Error | undefined;
    upstream.on('error', (error) => {
      upstreamError = error;
    });

    // Client → app: the body with backpressure, then the client's trailers (or an empty end).
    let requestTrailers: OutgoingHttpHeaders = {};
    if (hasBody) {
      stream.on('trailers', (trailers: IncomingHttpHeaders) => {
        requestTrailers = forwardedHeaders(trailers);
      });
      upstream.on('wantTrailers', () => upstream.sendTrailers(requestTrailers));
      relay(stream, upstream);
    }

    // App → client: headers, body, then the app's trailers (gRPC's grpc-status lives there).
    let responseTrailers: OutgoingHttpHeaders = {};
    upstream.on('response', (responseHeaders, flags) => {
      if (stream.destroyed || stream.closed) return;
      status = Number(responseHeaders[':status']) || 0;
      const isTrailersOnly = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      const hasNoBody = isTrailersOnly || method === 'HEAD' || [204, 205, 304].includes(status);
      if (hasNoBody) {
        stream.respond(forwardedHeaders(responseHeaders), { endStream: true });
        upstream.resume();
        return;
      }
      stream.respond(forwardedHeaders(responseHeaders), { waitForTrailers: true });
      upstream.on('trailers', (trailers: IncomingHttpHeaders) => {
        responseTrailers = forwardedHeaders(trailers);
      });
      stream.on('wantTrailers', () => stream.sendTrailers(responseTrailers));
      relay(upstream, stream);
    });

    // Resets and cancellations, both ways.
    stream.once('close', () => {
      if (upstream.closed || upstream.destroyed) return;
      const isDone = stream.rstCode === NGHTTP2_NO_ERROR && upstream.readableEnded;
      if (!isDone) upstream.close(stream.rstCode === NGHTTP2_NO_ERROR ? NGHTTP2_CANCEL : stream.rstCode);
    });
    upstream.once('close', () => {
      if (stream.closed || stream.destroyed) return;
      const code = upstream.rstCode;
      if (!stream.headersSent) {
        // The app refused the stream before any work (its own limit): the client may retry it.
        if (code === NGHTTP2_REFUSED_STREAM) return stream.close(code);
        return fail(upstreamError ?? new Error(`the app reset the stream (HTTP/2 error code ${code})`));
      }
      if (code !== NGHTTP2_NO_ERROR) stream.close(code);
      else if (!upstream.readableEnded) stream.close(NGHTTP2_INTERNAL_ERROR);
    });
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
      // Not http2.createServer + emit('connection'): that server refuses TLS sockets whose ALPN
      // did not say h2, and the mesh's TLS carries no ALPN. The peeked preface is still buffered
      // on the socket, and the session reads it first.
      const session = performServerHandshake(socket, SERVER_LIMITS);
      sessions.add(session);
      session.on('stream', (stream, headers) => handleStream(stream, headers, context, socket));
      session.on('error', (error: NodeJS.ErrnoException) => {
        log.warn('inbound HTTP/2 connection failed', {
          error: error.message,
          client: principalOf(context.peer) ?? context.sourceIp,
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

/** One HTTP/2 prior-knowledge session per app port, opened on first use and again after it closes. */
function createAppSessions({ log }: Pick<InboundDeps, 'log'>) {
  const sessions = new Map<number, ClientHttp2Session>();
  // Ports whose failure has been logged; cleared once the app answers HTTP/2 again.
  const failing = new Set<number>();
  return {
    session(port: number): ClientHttp2Session {
      const open = sessions.get(port);
      if (open && !open.closed && !open.destroyed) return open;
      const session = connectHttp2(`http://127.0.0.1:${port}`);
      const forget = () => {
        if (sessions.get(port) === session) sessions.delete(port);
      };
      // The app's SETTINGS prove it speaks HTTP/2 (a TCP connect alone does not).
      session.once('remoteSettings', () => failing.delete(port));
      session.on('error', (error: NodeJS.ErrnoException) => {
        forget();
        if (failing.has(port)) return;
        failing.add(port);
        log.warn('the app does not answer HTTP/2', { port, error: error.message, code: error.code });
      });
      session.on('goaway', forget);
      session.once('close', forget);
      sessions.set(port, session);
      return session;
    },
    close() {
      for (const session of sessions.values()) session.destroy();
      sessions.clear();
    },
  };
}

/**
 * Pipes `from` into `to` with backpressure. A reset ends `from`'s readable side too, so its end
 * is checked: a reset becomes a reset of `to` with the same code, never a clean (truncated) end.
 */
function relay(from: Http2Stream, to: Http2Stream) {
  from.pipe(to, { end: false });
  from.once('end', () => {
    if (from.rstCode === NGHTTP2_NO_ERROR) to.end();
    else if (!to.closed) to.close(from.rstCode);
  });
}

/** A header block without connection-specific headers or the client identity (pseudo-headers kept). */
function forwardedHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name of Object.keys(headers)) {
    if (NOT_FORWARDED.has(name) || isClientIdHeader(name)) continue;
    // `te` may only say `trailers` in HTTP/2 (gRPC sends it); anything else is dropped.
    if (name === 'te' && headers.te !== 'trailers') continue;
    out[name] = headers[name];
  }
  return out;
}

/** grpc-message is percent-encoded: '%' and anything outside printable ASCII (PROTOCOL-HTTP2.md). */
function grpcMessage(text: string): string {
  return Array.from(Buffer.from(text.trim()))
    .map((byte) =>
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');
}
