// The admin endpoint every Mutual daemon serves: /live (the process answers), /ready (it can do
// its job), /metrics (Prometheus). Plain HTTP, bound to loopback unless configured otherwise.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from '../metrics/index.ts';

export interface AdminDeps {
  readonly registry: Registry;
  /** Why the daemon is not ready, or undefined when it is. */
  readonly notReadyReason: () => string | undefined;
  /** Extra endpoints, keyed by `METHOD /path`, e.g. the proxy's `GET /identity`. */
  readonly routes?: Readonly<Record<string, (request: IncomingMessage, response: ServerResponse) => void>>;
}

export function createAdminServer(deps: AdminDeps): Server {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://admin').pathname;
    const route = deps.routes?.[`${request.method} ${path}`];
    if (route) {
      route(request, response);
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/live') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('live\n');
    } else if (path === '/ready') {
      const reason = deps.notReadyReason();
      response
        .writeHead(reason === undefined ? 200 : 503, { 'content-type': 'text/plain' })
        .end(reason === undefined ? 'ready\n' : `not ready: ${reason}\n`);
    } else if (path === '/metrics') {
      deps.registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': deps.registry.contentType }).end(text),
        () => response.writeHead(500).end(),
      );
    } else {
      response
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('not found: try /live, /ready or /metrics\n');
    }
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  return server;
}
