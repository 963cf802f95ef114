// One HTTP/2 stream relayed to another, for both directions of the proxy: the request body with
// backpressure and its trailers one way, the response headers, body and trailers (gRPC's
// grpc-status lives there) the other, and resets crossing with their codes — never a truncated
// body that looks complete.
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  constants,
  type Http2Session,
  type Http2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Clock } from '../clock.ts';
import { isClientIdHeader } from './http-forward.ts';

const {
  NGHTTP2_NO_ERROR,
  NGHTTP2_CANCEL,
  NGHTTP2_INTERNAL_ERROR,
  NGHTTP2_REFUSED_STREAM,
  NGHTTP2_ENHANCE_YOUR_CALM,
} = constants;

/**
 * Flow-control windows for the proxy's own sessions. HTTP/2's defaults (64 KiB per stream and per
 * connection) stall a bulk transfer every window on a connection many streams share. A client
 * that stops reading holds up to the stream window in the proxy (until resetWhenIdle), yet a
 * 100 MB download through a pair on one host lost 13% of its throughput with 1 MiB, 5% with 2 MiB.
 */
export const HTTP2_STREAM_WINDOW = 4 * 1024 * 1024;
export const HTTP2_CONNECTION_WINDOW = 32 * 1024 * 1024;

/** What one client connection may ask of the proxy; beyond these nghttp2 refuses the stream or the session. */
export const HTTP2_SERVER_LIMITS = {
  maxHeaderListPairs: 256,
  settings: {
    maxConcurrentStreams: 256,
    maxHeaderListSize: 64 * 1024,
    initialWindowSize: HTTP2_STREAM_WINDOW,
  },
} as const;

/**
 * Stream resets are limited as nghttp2 (every Node HTTP/2 server, the proxy's own included) limits
 * the RST_STREAMs it receives: a bucket of tokens, refilled 33 a second. nghttp2's holds 1000 and
 * ends the connection with GOAWAY INTERNAL_ERROR when it runs dry, failing every stream on it.
 */
const RESET_REFILL_PER_S = 33;

/** A token bucket of `burst` resets; `take()` is false, and takes nothing, while it is empty. */
function resetBucket(clock: Clock, burst: number): { take(): boolean } {
  let tokens = burst;
  let atMs = clock.now();
  return {
    take() {
      const nowMs = clock.now();
      tokens = Math.min(burst, tokens + ((nowMs - atMs) / 1000) * RESET_REFILL_PER_S);
      atMs = nowMs;
      if (tokens < 1) return false;
      tokens--;
      return true;
    },
  };
}

/**
 * Rapid reset (CVE-2023-44487): streams a client connection may reset before their answer and
 * within a second of opening them (a burst, then 33 a second), each of which the proxy has already
 * sent on to the app or the destination. Beyond it the connection gets GOAWAY ENHANCE_YOUR_CALM.
 * Above UPSTREAM_RESET_BURST, so that a peer proxy's shared session, which carries many clients'
 * cancellations, is renewed by that proxy before this limit closes it.
 */
export const PREMATURE_RESET_BURST = 200;
const PREMATURE_RESET_WINDOW_MS = 1_000;

/**
 * Watches a client connection's streams for resets before their answer; past
 * PREMATURE_RESET_BURST (and the refill) `onLimit` runs, once, and the session is destroyed with
 * GOAWAY ENHANCE_YOUR_CALM. Returns the watcher each new stream is handed to.
 *
 * nghttp2 parses a whole read before the first of its streams is handed over: a client that
 * writes its preface, SETTINGS and a thousand HEADERS + RST_STREAM at once hands over streams that
 * are closed already, on a session nghttp2 may have ended itself meanwhile (its own limit, 1000
 * resets in one read). Those count at once, whatever became of the session; the caller must not
 * send such a stream on (isClosedOnArrival): sent on, each stream of such a read reached the app
 * before the first reset was counted (481 a connection over mTLS, 1000 in plaintext).
 */
export function guardRapidReset(
  session: ServerHttp2Session,
  clock: Clock,
  onLimit: () => void,
): (stream: ServerHttp2Stream) => void {
  const bucket = resetBucket(clock, PREMATURE_RESET_BURST);
  let isLimited = false;
  const spend = () => {
    if (isLimited || bucket.take()) return;
    isLimited = true;
    onLimit();
    if (session.destroyed) return;
    // destroy(error, code) would emit the session's 'error'; this sends the same GOAWAY first.
    session.goaway(NGHTTP2_ENHANCE_YOUR_CALM);
    session.destroy();
  };
  return (stream) => {
    if (isClosedOnArrival(stream)) return spend();
    const startedMs = clock.now();
    stream.once('close', () => {
      // Whatever the reset's code: RST_STREAM NO_ERROR is a reset before the answer too (not
      // counted, 1000 of 1000 such streams reached the app, and nghttp2's limit only ended it).
      if (
        stream.headersSent ||
        // A session going away closes its streams unanswered: those are not the client's resets.
        session.destroyed ||
        closedByProxy.has(stream) ||
        clock.now() - startedMs >= PREMATURE_RESET_WINDOW_MS
      )
        return;
      spend();
    });
  };
}

/**
 * Whether a stream was closed before it was handed over (reset in the same read as its HEADERS,
 * or its session ended during that read): nothing to relay, and nobody to answer.
 */
export function isClosedOnArrival(stream: ServerHttp2Stream): boolean {
  return stream.closed || stream.destroyed;
}

/** Streams the proxy itself closed before answering (a refusal passed on), not the client's resets. */
const closedByProxy = new WeakSet<ServerHttp2Stream>();

/**
 * Resets a client's stream with CANCEL (relayExchange passes it upstream) once nothing has been
 * read from it or written to it for `idleMs` (0: never): an idle stream, or one whose client has
 * stopped reading while its answer keeps coming, held in the proxy up to the stream window.
 * Node's stream timer, refreshed by each read and each completed write: no timer of our own per
 * chunk. Its own 'timeout' is not used: it waits while any other stream of the same connection
 * still sends, so a client keeping one stream busy would keep every stalled one alive. The relay
 * writes in chunks that complete as soon as the client reads them, so no completion on this
 * stream for `idleMs` means it is stalled or idle either way.
 */
export function resetWhenIdle(stream: ServerHttp2Stream, idleMs: number, onIdle: () => void): void {
  if (idleMs === 0) return;
  (stream as unknown as { _onTimeout: () => void })._onTimeout = () => {
    if (stream.closed || stream.destroyed) return;
    closedByProxy.add(stream);
    onIdle();
    stream.close(NGHTTP2_CANCEL);
  };
  stream.setTimeout(idleMs);
}

/**
 * Closes `session` (GOAWAY, then the connection) once it has had no open stream for `idleMs`
 * (0: never); PINGs and SETTINGS do not keep it open, as in Envoy. One timer per session, rearmed
 * when its last stream closes. Returns the watcher each new stream is handed to.
 */
export function closeWhenIdle(
  session: Http2Session,
  idleMs: number,
  onIdle: () => void,
): (stream: Http2Stream) => void {
  if (idleMs === 0) return () => {};
  let openStreams = 0;
  const timer = setTimeout(() => {
    if (openStreams > 0 || session.closed || session.destroyed) return;
    onIdle();
    session.close();
  }, idleMs).unref();
  session.once('close', () => clearTimeout(timer));
  return (stream) => {
    openStreams++;
    stream.once('close', () => {
      if (--openStreams === 0 && !session.closed) timer.refresh();
    });
  };
}

/**
 * Resets the proxy sends on one shared upstream session (to the app, or to a destination's proxy)
 * before new streams move to a fresh session: cancellations of all its clients' streams meet there,
 * and the peer's limit (nghttp2's 1000, a Mutual inbound's PREMATURE_RESET_BURST) would close the
 * session and fail every other client's streams on it.
 */
const UPSTREAM_RESET_BURST = 100;

interface ResetBudget {
  readonly bucket: { take(): boolean };
  renew: (() => void) | undefined;
  /** Resets waiting for the bucket, oldest first. */
  readonly deferred: { upstream: ClientHttp2Stream; code: number }[];
}
const resetBudgets = new WeakMap<ClientHttp2Session, ResetBudget>();

/** Makes `renew` run, once, when the proxy has reset too many streams on `session` (UPSTREAM_RESET_BURST). */
export function budgetUpstreamResets(session: ClientHttp2Session, clock: Clock, renew: () => void): void {
  resetBudgets.set(session, { bucket: resetBucket(clock, UPSTREAM_RESET_BURST), renew, deferred: [] });
}

/**
 * Resets a stream the proxy opened upstream, spending its session's reset budget. Past it the
 * session is renewed, and the resets of streams still open on it wait for the bucket to refill
 * (33 a second, as the peer's): a renewed session still carries every stream opened on it before,
 * and cancelling up to 256 of them at once (a client's burst) was past a Mutual inbound's
 * PREMATURE_RESET_BURST, which closed it with every other client's streams.
 */
function cancelUpstream(upstream: ClientHttp2Stream, code: number): void {
  const budget = resetBudgets.get(upstream.session as ClientHttp2Session);
  if (!budget || (budget.deferred.length === 0 && budget.bucket.take())) return void upstream.close(code);
  budget.deferred.push({ upstream, code });
  if (budget.deferred.length === 1) paceResets(budget);
  const renew = budget.renew;
  budget.renew = undefined;
  renew?.();
}

function paceResets(budget: ResetBudget): void {
  setTimeout(() => {
    while (budget.deferred.length > 0) {
      const { upstream, code } = budget.deferred[0]!;
      if (!upstream.closed && !upstream.destroyed) {
        if (!budget.bucket.take()) break;
        upstream.close(code);
      }
      budget.deferred.shift();
    }
    if (budget.deferred.length > 0) paceResets(budget);
  }, 1000 / RESET_REFILL_PER_S).unref();
}

/**
 * How long a replaced upstream session lives on before its GOAWAY. nghttp2 sends GOAWAY ahead of
 * queued HEADERS, so closing at once could overtake streams just sent on it, which the peer would
 * then refuse.
 */
export const SESSION_RETIRE_GRACE_MS = 1_000;

/** Connection-specific headers (RFC 9113 §8.2.2). */
const NOT_FORWARDED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** gRPC status codes the proxy answers with (grpc/doc/statuscodes.md). */
export const GRPC_PERMISSION_DENIED = 7;
export const GRPC_UNAVAILABLE = 14;

/**
 * Answers a stream the proxy will not relay: a gRPC caller gets a trailers-only answer with
 * grpc-status (every gRPC client reads it from there), anyone else a plain-text body.
 * Returns false when the stream can no longer be answered.
 */
export function answerStream(
  stream: ServerHttp2Stream,
  requestHeaders: IncomingHttpHeaders,
  code: number,
  text: string,
  grpcStatus: number,
  extra: OutgoingHttpHeaders = {},
): boolean {
  if (stream.headersSent || stream.destroyed) return false;
  if ((requestHeaders['content-type'] ?? '').startsWith('application/grpc')) {
    stream.respond(
      {
        ':status': code,
        'content-type': requestHeaders['content-type'],
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
  return true;
}

/**
 * Counts a stream as HTTP/1 requests are counted: `count` gets the answer's status once the
 * stream has closed after a whole answer (a reset stream is no answer). Returns the setter for
 * that status, called when the proxy or the upstream answers.
 */
export function countWhenAnswered(
  stream: ServerHttp2Stream,
  count: (status: string) => void,
): (status: number) => void {
  let status = 0;
  stream.once('close', () => {
    if (status !== 0 && stream.rstCode === NGHTTP2_NO_ERROR) count(String(status));
  });
  return (answered) => {
    status = answered;
  };
}

const requestTrailers = new WeakMap<ServerHttp2Stream, OutgoingHttpHeaders>();

/**
 * Keeps the client's trailers from the moment the stream arrives: they are emitted as soon as
 * they are read, even while the proxy is still finding an upstream and the body waits.
 */
export function captureRequestTrailers(stream: ServerHttp2Stream): void {
  stream.once('trailers', (trailers: IncomingHttpHeaders) => {
    requestTrailers.set(stream, forwardedHeaders(trailers));
  });
}

/**
 * Request body bytes kept until the upstream answers, so that a stream it refuses unprocessed
 * (REFUSED_STREAM, RFC 9113 §8.7: streams queued behind the app's SETTINGS_MAX_CONCURRENT_STREAMS
 * when its GOAWAY comes, as a gRPC server's max_connection_age sends) can be sent again whole.
 * A gRPC unary request fits; a larger upload is refused to the client as before.
 */
export const REPLAY_LIMIT_BYTES = 64 * 1024;

interface Replay {
  readonly chunks: Buffer[];
  bytes: number;
  /** No longer kept: answered, or more than REPLAY_LIMIT_BYTES. */
  isDropped: boolean;
  stop(): void;
}
const replays = new WeakMap<ServerHttp2Stream, Replay>();

/** Keeps what `stream` sends (from its first relay on) until `dropReplay` or the limit. */
function keepForReplay(stream: ServerHttp2Stream): Replay {
  const existing = replays.get(stream);
  if (existing) return existing;
  // Added after pipe(): flowing already, so this listener changes nothing about backpressure.
  const onData = (chunk: Buffer) => {
    replay.bytes += chunk.length;
    if (replay.bytes <= REPLAY_LIMIT_BYTES) replay.chunks.push(chunk);
    else dropReplay(stream);
  };
  const replay: Replay = { chunks: [], bytes: 0, isDropped: false, stop: () => stream.off('data', onData) };
  replays.set(stream, replay);
  stream.on('data', onData);
  stream.once('close', () => dropReplay(stream));
  return replay;
}

function dropReplay(stream: ServerHttp2Stream): void {
  const replay = replays.get(stream);
  if (!replay || replay.isDropped) return;
  replay.isDropped = true;
  replay.chunks.length = 0;
  replay.stop();
}

/** How often a stream its upstream refuses unprocessed is sent again. */
const REFUSED_RETRIES = 2;

/**
 * The onRefused handler for one client stream: runs `send` again (a fresh upstream stream) up to
 * REFUSED_RETRIES times over all its attempts, then lets the refusal reach the client.
 */
export function resendWhenRefused(send: () => void): () => boolean {
  let retries = REFUSED_RETRIES;
  return () => {
    if (retries-- <= 0) return false;
    send();
    return true;
  };
}

/** Whether `stream` can be sent again whole: it has no body, or all of it so far is kept. */
export function canResend(stream: ServerHttp2Stream): boolean {
  return stream.endAfterHeaders || replays.get(stream)?.isDropped === false;
}

export interface RelayHandlers {
  /** The status of the response going back (the upstream's). */
  readonly onResponse: (status: number) => void;
  /** The upstream failed before answering: answer the stream for it. */
  readonly onFailure: (error: Error) => void;
  /**
   * The upstream refused the stream unprocessed (REFUSED_STREAM, RFC 9113 §8.7): true when the
   * caller sends it again (relayExchange on a new upstream, which replays the kept body first;
   * see canResend); otherwise the client gets the refusal to retry itself.
   */
  readonly onRefused?: () => boolean;
}

/**
 * Relays `stream` (from the client, its trailers captured on arrival) to `upstream` (just opened
 * with the forwarded request headers, `waitForTrailers` when the request has a body) and the
 * answer back.
 */
export function relayExchange(
  stream: ServerHttp2Stream,
  method: string,
  upstream: ClientHttp2Stream,
  handlers: RelayHandlers,
): void {
  let upstreamError: Error | undefined;
  upstream.on('error', (error) => {
    upstreamError = error;
  });

  // Client → upstream: the body with backpressure, then the client's trailers (or an empty end).
  // On a stream sent again, what was kept of the body goes first.
  let detach = () => {};
  if (!stream.endAfterHeaders) {
    upstream.on('wantTrailers', () => upstream.sendTrailers(requestTrailers.get(stream) ?? {}));
    const replay = replays.get(stream);
    if (replay && !replay.isDropped) for (const chunk of replay.chunks) upstream.write(chunk);
    detach = relay(stream, upstream, cancelUpstream);
    keepForReplay(stream);
  }

  // The client still uploading when the upstream has answered in full and closed the stream
  // (node's server does this by itself: RST_STREAM NO_ERROR after the answer, RFC 9113 §8.1) gets
  // the same reset, or its upload stalls on a window nobody reads. The reset waits until the
  // answer's end has left (resetAfterAnswerEnd); a client whose upload has ended meanwhile gets none.
  let isAnswerQueued = false;
  let isResetAfterAnswer = false;
  const onAnswerQueued = () => {
    isAnswerQueued = true;
    if (isResetAfterAnswer) resetAfterAnswerEnd(stream);
  };

  // A `103 Early Hints` goes ahead of the answer, as Envoy passes 1xx; node reads other 1xx
  // (a 100 nobody asked for) the same way, and those stay here.
  upstream.on('headers', (headers: IncomingHttpHeaders) => {
    if (Number(headers[':status']) !== 103 || stream.headersSent || stream.destroyed) return;
    try {
      stream.additionalHeaders(forwardedHeaders(headers));
    } catch {
      // A field nghttp2 will not send: the hints are only a head start, the answer follows.
    }
  });

  // Upstream → client: headers, body, then the upstream's trailers.
  let responseTrailers: OutgoingHttpHeaders = {};
  upstream.on('response', (responseHeaders, flags) => {
    dropReplay(stream);
    if (stream.destroyed || stream.closed) return;
    const status = Number(responseHeaders[':status']) || 0;
    handlers.onResponse(status);
    const isTrailersOnly = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    const hasNoBody = isTrailersOnly || method === 'HEAD' || [204, 205, 304].includes(status);
    if (hasNoBody) {
      stream.respond(forwardedHeaders(responseHeaders), { endStream: true });
      upstream.resume();
      onAnswerQueued();
      return;
    }
    stream.respond(forwardedHeaders(responseHeaders), { waitForTrailers: true });
    upstream.on('trailers', (trailers: IncomingHttpHeaders) => {
      responseTrailers = forwardedHeaders(trailers);
    });
    stream.on('wantTrailers', () => {
      stream.sendTrailers(responseTrailers);
      onAnswerQueued();
    });
    relay(upstream, stream, (to, code) => to.close(code));
  });

  // The upstream closed the stream while the request body was still going to it (after a whole
  // answer, RST_STREAM NO_ERROR). node then waits, before 'close', for writes that can never
  // leave: stop them, and let the stream go once the answer has been read.
  upstream.once('aborted', () => {
    stream.unpipe(upstream);
    if (upstream.readableEnded) upstream.destroy();
    else upstream.once('end', () => upstream.destroy());
  });

  // Resets and cancellations, both ways.
  stream.once('close', () => {
    if (upstream.closed || upstream.destroyed) return;
    const isDone = stream.rstCode === NGHTTP2_NO_ERROR && upstream.readableEnded;
    if (!isDone)
      cancelUpstream(upstream, stream.rstCode === NGHTTP2_NO_ERROR ? NGHTTP2_CANCEL : stream.rstCode);
  });
  upstream.once('close', () => {
    if (stream.closed || stream.destroyed) return;
    const code = upstream.rstCode;
    if (!stream.headersSent) {
      // The upstream refused the stream before any work (its own limit): the client may retry it.
      if (code === NGHTTP2_REFUSED_STREAM) {
        detach();
        if (canResend(stream) && handlers.onRefused?.()) return;
        dropReplay(stream);
        closedByProxy.add(stream);
        return stream.close(code);
      }
      return handlers.onFailure(
        upstreamError ?? new Error(`the stream was reset (HTTP/2 error code ${code})`),
      );
    }
    if (code !== NGHTTP2_NO_ERROR) stream.close(code);
    else if (!upstream.readableEnded) stream.close(NGHTTP2_INTERNAL_ERROR);
    else if (!stream.endAfterHeaders && !stream.readableEnded) {
      // Answered in full before the whole upload arrived: what the client still sends is
      // discarded, so that the stream ends and closes, and it gets the upstream's reset.
      stream.unpipe(upstream);
      stream.resume();
      isResetAfterAnswer = true;
      if (isAnswerQueued) resetAfterAnswerEnd(stream);
    }
  });
}

/**
 * Resets `stream` with NO_ERROR once the END_STREAM ending its answer has been sent. sendTrailers
 * submits it in a setImmediate (an empty DATA frame when there are no trailers), and nghttp2 sends
 * an RST_STREAM ahead of DATA still queued and drops that DATA: the client got the answer without
 * its end and waited forever (h2load uploading to an app that answers 413 early, through a pair).
 * Polled, doubling from 1 ms: the DATA waits behind the native write the trailers scheduled, or,
 * with a full window, for the client's WINDOW_UPDATE.
 */
function resetAfterAnswerEnd(stream: ServerHttp2Stream, waitMs = 1): void {
  if (stream.closed || stream.destroyed || stream.readableEnded) return;
  if (stream.state.localClose) return void stream.close(NGHTTP2_NO_ERROR);
  setTimeout(() => resetAfterAnswerEnd(stream, Math.min(waitMs * 2, 1000)), waitMs).unref();
}

/**
 * Pipes `from` into `to` with backpressure. A reset ends `from`'s readable side too, so its end
 * is checked: a reset becomes a reset of `to` with the same code, never a clean (truncated) end.
 * `from` may have ended already (a stream sent again). Returns what undoes the pipe.
 */
function relay<To extends Http2Stream>(
  from: Http2Stream,
  to: To,
  reset: (to: To, code: number) => void,
): () => void {
  const onEnd = () => {
    if (from.rstCode === NGHTTP2_NO_ERROR) to.end();
    else if (!to.closed) reset(to, from.rstCode);
  };
  if (from.readableEnded) {
    onEnd();
    return () => {};
  }
  from.pipe(to, { end: false });
  from.once('end', onEnd);
  return () => {
    from.unpipe(to);
    from.off('end', onEnd);
  };
}

/** A header block without connection-specific headers or the client identity (pseudo-headers kept). */
export function forwardedHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name of Object.keys(headers)) {
    // The identity only the server proxy may set, in any spelling an app reads as it.
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
