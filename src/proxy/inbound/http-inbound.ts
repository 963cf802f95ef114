// HTTP/1.x on an inbound connection: per-request authorization, the verified client identity in
// `x-mutual-client-id` (never trusted from outside), per-request metrics, forwarding to the app
// over a keep-alive pool.
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
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
  CLIENT_ID_HEADER,
]);

export function createHttpInbound(deps: InboundDeps) {
  const { metrics, log, clock } = deps;
  const agents = new Map<number, Agent>();
  const agentFor = (port: number) => {
    let agent = agents.get(port);
    if (!agent) {
      agent = new Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 64, scheduling: 'lifo' });
      agents.set(port, agent);
    }
    return agent;
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

  function forwardHeaders(request: IncomingMessage, context: InboundContext): OutgoingHttpHeaders {
    const headers: OutgoingHttpHeaders = {};
    const raw = request.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      if (HOP_BY_HOP.has(name)) continue;
      const value = raw[i + 1]!;
      const existing = headers[name];
      headers[name] = existing === undefined ? value : ([] as string[]).concat(existing as string, value);
    }
    if (context.peer.kind === 'mtls') headers[CLIENT_ID_HEADER] = context.peer.peerId;
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
    const upstream = httpRequest({
      host: '127.0.0.1',
      port: context.appPort,
      method: request.method,
      path: request.url,
      headers: forwardHeaders(request, context),
      agent: agentFor(context.appPort),
    });
    upstream.on('response', (reply) => {
      const headers: OutgoingHttpHeaders = {};
      const raw = reply.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!.toLowerCase();
        if (HOP_BY_HOP.has(name)) continue;
        const existing = headers[name];
        headers[name] =
          existing === undefined ? raw[i + 1]! : ([] as string[]).concat(existing as string, raw[i + 1]!);
      }
      response.writeHead(reply.statusCode ?? 502, reply.statusMessage, headers);
      reply.pipe(response);
      reply.on('error', () => response.destroy());
    });
    upstream.on('error', (error) => {
      log.warn('app request failed', { port: context.appPort, error: error.message });
      if (!response.headersSent) {
        response
          .writeHead(502, { 'content-type': 'text/plain' })
          .end(`mutual: the app on port ${context.appPort} did not answer: ${error.message}\n`);
      } else response.destroy();
    });
    response.on('close', () => {
      if (!response.writableFinished) upstream.destroy();
    });
    request.pipe(upstream);
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
    headers.connection = request.headers.connection ?? 'upgrade';
    if (request.headers.upgrade) headers.upgrade = request.headers.upgrade;
    let text = `${request.method} ${request.url} HTTP/1.1\r\n`;
    for (const [name, value] of Object.entries(headers)) {
      for (const one of ([] as unknown[]).concat(value)) text += `${name}: ${String(one)}\r\n`;
    }
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
      for (const agent of agents.values()) agent.destroy();
      server.closeAllConnections();
    },
  };
}
