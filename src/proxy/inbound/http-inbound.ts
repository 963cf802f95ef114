// HTTP/1.x on an inbound connection: per-request authorization, the verified client identity in
// `x-mutual-client-id` (never trusted from outside), per-request metrics, forwarding to the app
// over a keep-alive pool.
import {
  type IncomingMessage,
  type OutgoingHttpHeaders,
  request as requestApp,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { appConnector, connectApp } from '../app-connect.ts';
import { getInboundContext, type InboundContext } from '../connection-context.ts';
import { splice } from '../forward.ts';
import {
  afterOwedAnswers,
  answerBadRequest,
  appLocalResourcesText,
  CLIENT_ID_HEADER,
  closeAfterAnswer,
  createDetachedHttpServer,
  DENIED_BY_HEADER,
  forwardedRequestHeaders,
  forwardRequest,
  isAnswerHeadTooLarge,
  isClosing,
  isInvalidAnswer,
  isLocalResourceError,
  MAX_HTTP_HEAD_BYTES,
  malformedRequestProblem,
  Pool,
  PROXY_ERROR_HEADER,
  refuseConnect,
} from '../http-forward.ts';
import { countConnectionBytes, flushConnectionBytes, methodLabel, tlsLabels } from '../metrics.ts';
import { sampleKeyOf } from '../proxy-log.ts';
import { type CheckedRequest, checkHttp1Request } from './check-request.ts';
import { countDecision, type InboundDeps, principalOf, type Recheck } from './inbound.ts';

export interface HttpInboundHooks {
  /** A connection upgraded (101) after `recheck` allowed its request; closed if policy stops allowing it. */
  readonly upgraded?: (socket: Socket | TLSSocket, context: InboundContext, recheck: Recheck) => void;
}

/** How long an idle connection to the app is kept: below the shortest common app default (gunicorn's 2 s). */
export const APP_KEEP_ALIVE_MS = 1_000;

export function createHttpInbound(deps: InboundDeps, hooks: HttpInboundHooks = {}) {
  const { metrics, log, clock } = deps;
  const pools = new Map<number, Pool>();
  const appPool = (port: number) => {
    let pool = pools.get(port);
    if (!pool) {
      // No response deadlines: streams and long polls are the app's to end, as with a direct call.
      pool = new Pool(`http://127.0.0.1:${port}`, {
        connect: appConnector(port),
        connections: 512,
        // Idle connections to the app are closed before the app closes them: a request sent on one
        // the app is closing at that moment fails, and a POST cannot be sent again. undici's 4 s
        // outlived gunicorn's 2 s keep-alive: 3 of 8,000 PUTs got 502 after idle gaps. An app's
        // `Keep-Alive: timeout=N` hint may not stretch it either (undici would keep N - 1 s).
        keepAliveTimeout: APP_KEEP_ALIVE_MS,
        keepAliveMaxTimeout: APP_KEEP_ALIVE_MS,
        headersTimeout: 0,
        bodyTimeout: 0,
        maxHeaderSize: MAX_HTTP_HEAD_BYTES,
      });
      pools.set(port, pool);
    }
    return pool;
  };
  const probePaths = new Set(deps.config.probePaths);

  const server = createDetachedHttpServer(
    (request, response) => handleRequest(request, response, false),
    (error) => log.error('inbound request failed inside the proxy', { error: error.stack ?? error.message }),
    // `Expect: 100-continue`: the client is told to send its body only once policy allows it.
    (request, response) => handleRequest(request, response, true),
  );
  // Answered only once the answers owed for the requests pipelined before them are out.
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) =>
    afterOwedAnswers(socket, () => handleUpgrade(request, socket, head)),
  );
  server.on('connect', (request: IncomingMessage, socket: Duplex) =>
    afterOwedAnswers(socket, () => handleConnect(request, socket)),
  );

  /** Authorizes the checked request; `request.url` is already its normalised target. */
  function decide(
    request: IncomingMessage,
    checked: CheckedRequest & { isValid: true },
    context: InboundContext,
  ) {
    if (probePaths.has(checked.path)) return { allowed: true as const };
    const decision = authorize(request, checked, context);
    countDecision(metrics, decision, context);
    return decision;
  }

  /** Policy's decision on the request under the set in force now (not counted). */
  function authorize(
    request: IncomingMessage,
    checked: CheckedRequest & { isValid: true },
    context: InboundContext,
  ) {
    return deps.policy().authorizeRequest({
      sourcePrincipal: principalOf(context.peer),
      sourceIp: context.sourceIp,
      destinationPort: context.policyPort,
      method: request.method ?? 'GET',
      path: checked.target,
      host: checked.host,
      // Every value of a repeated header (node:http's `headers` drops or ", "-joins them).
      headers: request.headersDistinct,
    });
  }

  /** Refused before authorization: not forwarded, and the connection closes after the answer. */
  function logBadRequest(request: IncomingMessage, problem: string, context: InboundContext): void {
    log.warnSampled('malformed request refused', sampleKeyOf(problem), {
      client: principalOf(context.peer) ?? context.sourceIp,
      method: request.method,
      target: request.url?.slice(0, 200),
      problem,
    });
  }

  function countRequest(
    request: IncomingMessage,
    status: number,
    startedMs: number,
    context: InboundContext,
  ) {
    flushConnectionBytes(request.socket);
    const labels = { ...tlsLabels(context.peer, undefined, 'inbound'), port: String(context.appPort) };
    const statusCode = String(status);
    metrics.httpRequests.inc({ ...labels, method: methodLabel(request.method), status_code: statusCode });
    metrics.httpDuration.observe(
      { tls: labels.tls, status_code: statusCode },
      (clock.now() - startedMs) / 1000,
    );
  }

  const forwardHeaders = (request: IncomingMessage, context: InboundContext) =>
    context.peer.kind === 'mtls'
      ? forwardedRequestHeaders(request, CLIENT_ID_HEADER, context.peer.peerId)
      : forwardedRequestHeaders(request);

  function handleRequest(request: IncomingMessage, response: ServerResponse, expectsContinue: boolean) {
    const context = getInboundContext(request.socket);
    if (!context) return response.destroy();
    const startedMs = clock.now();
    const checked = checkHttp1Request(request);
    response.once('finish', () => countRequest(request, response.statusCode, startedMs, context));
    if (!checked.isValid) {
      logBadRequest(request, checked.problem, context);
      return answerBadRequest(request, response, checked.problem);
    }
    request.url = checked.target;
    const decision = decide(request, checked, context);
    if (!decision.allowed) {
      const client = principalOf(context.peer) ?? context.sourceIp;
      // The first denial of each policy and client at once: "why is my call denied" needs it.
      log.warnSampled('request denied', `policy=${decision.policy} client=${client}`, {
        policy: decision.policy,
        client,
        method: request.method,
        path: request.url,
      });
      const headers: OutgoingHttpHeaders = { 'content-type': 'text/plain', 'content-length': 19 };
      // Only meshed callers learn which policy refused them.
      if (context.peer.kind === 'mtls') headers[DENIED_BY_HEADER] = decision.policy;
      if (expectsContinue) {
        // Never invited to send its body (no 100 Continue): the client may send it anyway or not at
        // all, so nothing more on this connection can be told apart from it (RFC 9110 §10.1.1).
        headers.connection = 'close';
        closeAfterAnswer(request);
      }
      request.resume();
      response.writeHead(403, headers).end('RBAC: access denied');
      return;
    }
    if (expectsContinue) response.writeContinue();
    forwardRequest(request, response, appPool(context.appPort), forwardHeaders(request, context), (error) => {
      const problem = malformedRequestProblem(request, error);
      if (problem !== undefined) {
        logBadRequest(request, problem, context);
        return answerBadRequest(request, response, problem);
      }
      log.warnSampled(
        'app request failed',
        `port=${context.appPort} code=${(error as NodeJS.ErrnoException).code}`,
        { port: context.appPort, error: error.message },
      );
      const { reason, text } = appFailureAnswer(error, context.appPort);
      response.writeHead(502, { 'content-type': 'text/plain', [PROXY_ERROR_HEADER]: reason }).end(text);
    });
  }

  /**
   * WebSocket and other upgrades: authorize the request, and only if the app answers 101 does the
   * connection become a byte stream. Any other answer goes back and the connection closes: left
   * spliced, its next requests would reach the app past policy, with any x-mutual-client-id.
   */
  function handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer) {
    const context = getInboundContext(request.socket);
    if (!context) return socket.destroy();
    // Pipelined behind an answer that closes the connection: the client expects nothing more.
    if (isClosing(request)) return void socket.end();
    const checked = checkHttp1Request(request);
    if (!checked.isValid) {
      logBadRequest(request, checked.problem, context);
      const text = `mutual: bad request: ${checked.problem}\n`;
      socket.end(
        `HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n${PROXY_ERROR_HEADER}: bad_request\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
      );
      return;
    }
    request.url = checked.target;
    const decision = decide(request, checked, context);
    if (!decision.allowed) {
      socket.end(
        'HTTP/1.1 403 Forbidden\r\ncontent-length: 19\r\nconnection: close\r\n\r\nRBAC: access denied',
      );
      return;
    }
    const headers = forwardHeaders(request, context);
    // Never the client's Connection: a header it names (`Connection: upgrade, x-mutual-client-id`)
    // is one any HTTP/1 hop in front of the app drops, the verified identity included.
    headers.push('connection', 'upgrade');
    if (request.headers.upgrade) headers.push('upgrade', request.headers.upgrade);
    const toApp = requestApp({
      ...{ method: request.method, path: request.url, headers, setHost: false },
      createConnection: () => {
        // Half-open allowed, as for any spliced stream: a FIN travels across once upgraded.
        const app = connectApp(context.appPort, { allowHalfOpen: true });
        deps.track(app);
        return app;
      },
    });
    toApp.on('error', () => socket.destroy());
    socket.on('error', () => toApp.destroy());
    socket.once('close', () => toApp.destroy());
    // Written with 'latin1': node:http read each byte of the app's head as one character.
    const headText = (status: string, raw: string[]) =>
      `HTTP/1.1 ${status}\r\n${raw.map((v, i) => (i % 2 ? `${v}\r\n` : `${v}: `)).join('')}\r\n`;
    toApp.once('upgrade', (response, app, appHead) => {
      socket.write(headText(`101 ${response.statusMessage}`, response.rawHeaders), 'latin1');
      if (appHead.length > 0) socket.write(appHead);
      // Bytes the client sent after its request belong to the new protocol.
      if (head.length > 0) app.write(head);
      if (!probePaths.has(checked.path))
        hooks.upgraded?.(socket as Socket, context, () => authorize(request, checked, context));
      splice(socket, app, undefined, {
        ms: deps.config.idleTimeoutMs,
        onIdle: () => metrics.connectionsIdleClosed.inc({ direction: 'inbound', protocol: 'upgrade' }),
      });
    });
    toApp.once('response', (response) => {
      const raw = response.rawHeaders.filter(
        (_, i, all) => !/^(connection|keep-alive|transfer-encoding)$/i.test(all[i - (i % 2)]!),
      );
      socket.write(
        headText(`${response.statusCode} ${response.statusMessage}`, [...raw, 'connection', 'close']),
        'latin1',
      );
      // Whatever the client sends after its request goes nowhere; once the answer is out, close.
      socket.resume();
      socket.once('finish', () => socket.destroy());
      response.pipe(socket);
    });
    toApp.end();
  }

  /** CONNECT is never tunnelled to the app: answered 501 (see refuseConnect), counted, logged. */
  function handleConnect(request: IncomingMessage, socket: Duplex) {
    const context = getInboundContext(request.socket);
    if (!context) return socket.destroy();
    if (isClosing(request)) return void socket.end();
    const startedMs = clock.now();
    const client = principalOf(context.peer) ?? context.sourceIp;
    log.warnSampled('CONNECT refused: the sidecar does not open tunnels', `client=${client}`, {
      client,
      target: request.url?.slice(0, 200),
    });
    refuseConnect(socket);
    countRequest(request, 501, startedMs, context);
  }

  return {
    handle(stream: Socket | TLSSocket, context: InboundContext) {
      const labels = { ...tlsLabels(context.peer, undefined, 'inbound'), port: String(context.appPort) };
      metrics.inboundConnections.inc(labels);
      metrics.inboundOpen.inc();
      countConnectionBytes(stream, metrics.inboundReceivedBytes, metrics.inboundSentBytes, labels);
      stream.once('close', () => {
        metrics.inboundOpen.dec();
        metrics.inboundClosed.inc(labels);
      });
      server.emit('connection', stream);
    },
    /** Drain: keep-alive connections with no request in flight close now, the rest after their response. */
    closeIdle() {
      server.closeIdleConnections();
    },
    close() {
      for (const pool of pools.values()) void pool.destroy();
      server.close();
      server.closeAllConnections();
    },
  };
}

/** The 502 for a request the app did not answer: whose fault it was (the proxy error header) and the body. */
function appFailureAnswer(error: Error, appPort: number): { reason: string; text: string } {
  // Out of descriptors here: the app was never asked, and is not at fault.
  if (isLocalResourceError(error)) {
    return { reason: 'local_resources', text: appLocalResourcesText(appPort, error) };
  }
  if (isAnswerHeadTooLarge(error)) {
    return {
      reason: 'app_answer_too_large',
      text: `mutual: the app on port ${appPort} answered with headers over ${MAX_HTTP_HEAD_BYTES / 1024} KiB, more than the sidecar reads\n`,
    };
  }
  // Said apart from `did not answer`: the app is up and answering, and its HTTP is what to fix.
  if (isInvalidAnswer(error)) {
    return {
      reason: 'app_answer_invalid',
      text: `mutual: the app on port ${appPort} answered with bytes that are not a valid HTTP/1.1 answer (${error.message}); a client calling it directly would have refused them too\n`,
    };
  }
  return {
    reason: 'app_unavailable',
    text: `mutual: the app on port ${appPort} did not answer: ${error.message}\n`,
  };
}
