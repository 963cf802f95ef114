// The admin endpoint every Mutual daemon serves: /live (the process answers), /ready (it can do
// its job), /metrics (Prometheus). Plain HTTP, bound to loopback unless configured otherwise (in
// Kubernetes every pod can reach it), so no request may take the daemon down.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from '../metrics/index.ts';

export interface AdminDeps {
  readonly registry: Registry;
  /** Why the daemon is not ready, or undefined when it is. */
  readonly notReadyReason: () => string | undefined;
  /** Extra endpoints, keyed by `METHOD /path`, e.g. the proxy's `GET /identity`. */
  readonly routes?: Readonly<Record<string, (request: IncomingMessage, response: ServerResponse) => void>>;
}

/** The path of a request target, or undefined when it is not one (`//[`, `http://[`: Node passes those on). */
export function requestPath(target: string | undefined): string | undefined {
  try {
    return new URL(target ?? '/', 'http://admin').pathname;
  } catch {
    return undefined;
  }
}

/** A connection to an admin port with no byte either way for this long is closed. */
export const ADMIN_IDLE_TIMEOUT_MS = 10_000;

export function createAdminServer(deps: AdminDeps): Server {
  const routes = deps.routes ?? {};
  const text = (
    response: ServerResponse,
    status: number,
    body: string,
    headers: Record<string, string> = {},
  ) => {
    if (response.headersSent || response.destroyed) return;
    response.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(body);
  };
  const handle = (request: IncomingMessage, response: ServerResponse) => {
    const path = requestPath(request.url);
    if (path === undefined) {
      text(response, 400, `bad request target ${JSON.stringify(request.url)}: ask for a path, e.g. /ready\n`);
      return;
    }
    const route = routes[`${request.method} ${path}`];
    if (route) {
      route(request, response);
      return;
    }
    const routeMethods = Object.keys(routes)
      .filter((key) => key.slice(key.indexOf(' ') + 1) === path)
      .map((key) => key.slice(0, key.indexOf(' ')));
    if (routeMethods.length > 0) {
      text(response, 405, `use ${routeMethods.join(' or ')} for ${path}\n`, {
        allow: routeMethods.join(', '),
      });
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      text(response, 405, `use GET for ${path}\n`, { allow: 'GET, HEAD' });
      return;
    }
    if (path === '/live') {
      text(response, 200, 'live\n');
    } else if (path === '/ready') {
      const reason = deps.notReadyReason();
      text(
        response,
        reason === undefined ? 200 : 503,
        reason === undefined ? 'ready\n' : `not ready: ${reason}\n`,
      );
    } else if (path === '/metrics') {
      deps.registry.metrics().then(
        (body) => text(response, 200, body, { 'content-type': deps.registry.contentType }),
        (error: Error) => text(response, 500, `metrics failed: ${error.message}\n`),
      );
    } else {
      text(response, 404, 'not found: try /live, /ready or /metrics\n');
    }
  };
  // Node looks for connections past headersTimeout every connectionsCheckingInterval (30 s by
  // default): a slowloris client (slowhttptest -H, a header line every few seconds) held its
  // connection 30-35 s instead of the 5 s below. Checked each second instead.
  const server = createServer({ connectionsCheckingInterval: 1_000 }, (request, response) => {
    try {
      handle(request, response);
    } catch (error) {
      // A bug in one answer costs that request, not the daemon.
      text(response, 500, `internal error: ${(error as Error).message}\n`);
    }
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  // Node's headersTimeout only starts with a request's first byte: a connection that never sends
  // one was held forever (2,000 silent ones: +15 MB and 2,000 descriptors, still open after 40 s),
  // and in Kubernetes this port listens on 0.0.0.0. Any socket silent this long is closed.
  server.timeout = ADMIN_IDLE_TIMEOUT_MS;
  return server;
}
