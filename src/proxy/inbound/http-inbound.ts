// HTTP/1.x on an inbound connection: per-request authorization, the verified client identity in
// `x-mutual-client-id` (never trusted from outside), per-request metrics, forwarding to the app
// over a keep-alive pool.
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Pool } from 'undici';
import { getInboundContext, type InboundContext } from '../connection-context.ts';
import { splice } from '../forward.ts';
import { tlsLabels } from '../metrics.ts';
import { countDecision, type InboundDeps, principalOf } from './inbound.ts';

export const CLIENT_ID_HEADER = 'x-mutual-client-id';
export const DENIED_BY_HEADER = 'x-mutual-denied-by';

/** Connection-scoped headers that must not be forwarded hop to hop (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  // node:http has already answered `100-continue`; the app gets the body without waiting.
  'expect',
  CLIENT_ID_HEADER,
]);

/** The app's response headers for the client, flat name/value pairs, hop-by-hop ones dropped. */
function responseHeaders(raw: readonly Buffer[]): string[] {
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    if (HOP_BY_HOP.has(name.toLowerCase())) continue;
    headers.push(name, raw[i + 1]!.toString('latin1'));
  }
  return headers;
}

export function createHttpInbound(deps: InboundDeps) {
  const { metrics, log, clock } = deps;
  const pools = new Map<number, Pool>();
  const appPool = (port: number) => {
    let pool = pools.get(port);
    if (!pool) {
      // No response deadlines: streams and long polls are the app's to end, as with a direct call.
      pool = new Pool(`http://127.0.0.1:${port}`, { connections: 512, headersTimeout: 0, bodyTimeout: 0 });
      pools.set(port, pool);
    }
    return pool;
  };
  const probePaths = new Set(deps.config.probePaths);

  const server = createServer({ requireHostHeader: false, keepAliveTimeout: 60_000 }, (request, response) =>
    handleRequest(request, response),
  );
  // A client may send its request and half-close at once; answer before closing.
  (server as unknown as { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  server.headersTimeout = 30_000;
  server.requestTimeout = 0;
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) =>
    handleUpgrade(request, socket, head),
  );
  server.on('clientError', (_error, socket: Duplex) => {
    if (socket.writable)
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });

  function decide(request: IncomingMessage, context: InboundContext) {
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    if (probePaths.has(path)) return { allowed: true as const };
    const decision = deps.policy().authorizeRequest({
      sourcePrincipal: principalOf(context.peer),
      sourceIp: context.sourceIp,
      destinationPort: context.appPort,
      method: request.method ?? 'GET',
      path: request.url ?? '/',
      host: request.headers.host ?? '',
      headers: request.headers,
    });
    countDecision(metrics, decision, context);
    return decision;
  }

  /** The request's headers for the app, flat name/value pairs: hop-by-hop ones dropped, ours set. */
  function forwardHeaders(request: IncomingMessage, context: InboundContext): string[] {
    const headers: string[] = [];
    const raw = request.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      if (HOP_BY_HOP.has(name.toLowerCase())) continue;
      headers.push(name, raw[i + 1]!);
    }
    if (context.peer.kind === 'mtls') headers.push(CLIENT_ID_HEADER, context.peer.peerId);
    return headers;
  }

  function handleRequest(request: IncomingMessage, response: ServerResponse) {
    const context = getInboundContext(request.socket);
    if (!context) return response.destroy();
    const startedMs = clock.now();
    const labels = { ...tlsLabels(context.peer, undefined, 'inbound'), port: String(context.appPort) };
    const decision = decide(request, context);
    response.once('finish', () => {
      const status = String(response.statusCode);
      metrics.httpRequests.inc({ ...labels, method: request.method ?? '', status_code: status });
      metrics.httpDuration.observe(
        { tls: labels.tls, status_code: status },
        (clock.now() - startedMs) / 1000,
      );
    });
    if (!decision.allowed) {
      log.warn('request denied', {
        policy: decision.policy,
        client: principalOf(context.peer) ?? context.sourceIp,
        method: request.method,
        path: request.url,
      });
      const headers: OutgoingHttpHeaders = { 'content-type': 'text/plain', 'content-length': 19 };
      // Only meshed callers learn which policy refused them.
      if (context.peer.kind === 'mtls') headers[DENIED_BY_HEADER] = decision.policy;
      request.resume();
      response.writeHead(403, headers).end('RBAC: access denied');
      return;
    }
    forwardToApp(request, response, context);
  }

  /**
   * One request to the app through undici's dispatcher: its llhttp parser and plain callbacks cost
   * a fraction of node:http's ClientRequest + Agent + stream pipes, which dominated the proxy's CPU.
   */
  function forwardToApp(request: IncomingMessage, response: ServerResponse, context: InboundContext) {
    const hasBody =
      request.headers['transfer-encoding'] !== undefined ||
      (request.headers['content-length'] !== undefined && request.headers['content-length'] !== '0');
    let controller: { abort(reason: Error): void; pause(): void; resume(): void } | undefined;
    let finished = false;
    response.on('close', () => {
      if (!finished) controller?.abort(new Error('the client went away'));
    });
    appPool(context.appPort).dispatch(
      {
        path: request.url ?? '/',
        method: request.method ?? 'GET',
        headers: forwardHeaders(request, context),
        body: hasBody ? request : null,
        // The app answers in order on each connection; never pipeline behind a slow response.
        blocking: true,
      },
      {
        onRequestStart(started) {
          controller = started;
        },
        onResponseStart(started, statusCode, _headers, statusMessage) {
          // 1xx informational answers are the app's business with its own client; wait for the final one.
          if (statusCode < 200) return;
          const raw = (started as unknown as { rawHeaders: Buffer[] | null }).rawHeaders ?? [];
          response.writeHead(statusCode, statusMessage ?? '', responseHeaders(raw));
        },
        onResponseData(started, chunk) {
          if (!response.write(chunk)) {
            started.pause();
            response.once('drain', () => started.resume());
          }
        },
        onResponseEnd() {
          finished = true;
          response.end();
        },
        onResponseError(_started, error) {
          finished = true;
          if (request.destroyed || response.destroyed) return;
          log.warn('app request failed', { port: context.appPort, error: error.message });
          if (!response.headersSent) {
            response
              .writeHead(502, { 'content-type': 'text/plain' })
              .end(`mutual: the app on port ${context.appPort} did not answer: ${error.message}\n`);
          } else response.destroy();
        },
      },
    );
  }

  /** WebSocket and other upgrades: authorize the request, then the connection becomes a byte stream. */
  function handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer) {
    const context = getInboundContext(request.socket);
    if (!context) return socket.destroy();
    const decision = decide(request, context);
    if (!decision.allowed) {
      socket.end(
        'HTTP/1.1 403 Forbidden\r\ncontent-length: 19\r\nconnection: close\r\n\r\nRBAC: access denied',
      );
      return;
    }
    const app = connect({ host: '127.0.0.1', port: context.appPort, allowHalfOpen: true });
    deps.track(app);
    app.on('error', () => socket.destroy());
    const headers = forwardHeaders(request, context);
    headers.push('connection', request.headers.connection ?? 'upgrade');
    if (request.headers.upgrade) headers.push('upgrade', request.headers.upgrade);
    let text = `${request.method} ${request.url} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
    app.write(`${text}\r\n`);
    if (head.length > 0) app.write(head);
    splice(socket, app);
  }

  return {
    handle(stream: Socket | TLSSocket, context: InboundContext) {
      const labels = { ...tlsLabels(context.peer, undefined, 'inbound'), port: String(context.appPort) };
      metrics.inboundConnections.inc(labels);
      metrics.inboundOpen.inc();
      stream.once('close', () => {
        metrics.inboundOpen.dec();
        metrics.inboundClosed.inc(labels);
        metrics.inboundReceivedBytes.inc(labels, stream.bytesRead);
        metrics.inboundSentBytes.inc(labels, stream.bytesWritten);
      });
      server.emit('connection', stream);
    },
    close() {
      for (const pool of pools.values()) void pool.destroy();
      server.closeAllConnections();
    },
  };
}
