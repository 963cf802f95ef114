// The dashboard's HTTP server: the page and its assets, the read-only JSON API and a server-sent
// event stream. Snapshots are taken at most every `refreshMs` and kept for `windowMs`, which gives
// the rates and the "recent" denials.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../clock.ts';
import { type ErrorCode, MutualError } from '../errors.ts';
import { createCaFileReader } from './ca-files.ts';
import { createDashboardChecks } from './checks.ts';
import { collectSnapshot, type Snapshot } from './collect.ts';
import { PAGE_HTML } from './page-html.ts';
import { PAGE_SCRIPT } from './page-script.ts';
import { PAGE_STYLE } from './page-style.ts';
import { addToHistory } from './snapshot-history.ts';
import { certificatesView, checksView, edgesView, overviewView, policyView } from './views.ts';

export interface DashboardConfig {
  readonly stateDir: string;
  readonly host: string;
  readonly port: number;
  /** Skip the Host-header check that keeps other web sites (DNS rebinding) from reading the API. */
  readonly isRemoteAllowed?: boolean;
  readonly refreshMs?: number;
  /** Rates, recent denials and the checks' traffic window cover this much time (default 60 s). */
  readonly windowMs?: number;
  /** `mutual check` results are reused this long (default 5 s): some checks do TLS handshakes. */
  readonly checksTtlMs?: number;
  /** Added to the fix commands the checks print, e.g. ` --state-dir st`. */
  readonly stateFlag?: string;
}

export interface Dashboard {
  readonly url: string;
  close(): Promise<void>;
  destroy(): void;
}

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // Another site may not embed the API's answers (<script src>, <img>) nor keep a handle on the page.
  'cross-origin-resource-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'cache-control': 'no-store',
};

const ASSETS: Record<string, { type: string; body: string }> = {
  '/': { type: 'text/html; charset=utf-8', body: PAGE_HTML },
  '/app.js': { type: 'text/javascript; charset=utf-8', body: PAGE_SCRIPT },
  '/app.css': { type: 'text/css; charset=utf-8', body: PAGE_STYLE },
  '/favicon.svg': {
    type: 'image/svg+xml',
    body: '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path fill="#15935b" d="M12 2 4 5v6c0 5 3.4 9.4 8 11 4.6-1.6 8-6 8-11V5z"/></svg>',
  },
};

/** Host names that only this machine resolves to: localhost, 127.0.0.0/8, [::1]. */
function isLoopbackName(name: string): boolean {
  return name === 'localhost' || name === '[::1]' || /^127(\.\d{1,3}){3}$/.test(name);
}

export async function createDashboard(config: DashboardConfig, deps: { clock: Clock }): Promise<Dashboard> {
  const refreshMs = config.refreshMs ?? 2000;
  const windowMs = config.windowMs ?? 60_000;
  const history: Snapshot[] = [];
  let pending: Promise<Snapshot> | undefined;
  // Kept across snapshots: the CA files are parsed again only when they change.
  const caFiles = createCaFileReader();
  const checks = createDashboardChecks({
    stateFlag: config.stateFlag ?? ` --state-dir ${config.stateDir}`,
    clock: deps.clock,
    ttlMs: config.checksTtlMs ?? 5000,
    trafficWindowMs: windowMs,
  });

  const latest = (): Promise<Snapshot> => {
    const last = history.at(-1);
    if (last && deps.clock.now() - last.atMs < refreshMs) return Promise.resolve(last);
    pending ??= collectSnapshot(config.stateDir, { ...deps, caFiles })
      .then((snapshot) => {
        addToHistory(history, snapshot, windowMs);
        return snapshot;
      })
      .finally(() => {
        pending = undefined;
      });
    return pending;
  };
  /**
   * The oldest snapshot of the window that is not `now` itself. One from before a gap in sampling
   * (no page was open) is older than half a window past it: rates over it would be a long average
   * labelled as recent, so until a new snapshot there is none.
   */
  const before = (now: Snapshot) =>
    history.find(
      (snapshot) =>
        snapshot !== now && snapshot.atMs < now.atMs && snapshot.atMs >= now.atMs - windowMs * 1.5,
    );

  const views = async (url: URL) => {
    const now = await latest();
    const earlier = before(now);
    const checked = await checks.latest(now, history);
    return {
      overview: overviewView(now, earlier, checked),
      edges: edgesView(now, earlier, url.searchParams.get('namespace') || undefined),
      certificates: certificatesView(now),
      policy: policyView(now, earlier),
      checks: checksView(checked),
    };
  };

  const streams = new Set<ServerResponse>();
  let timer: NodeJS.Timeout | undefined;
  const push = async () => {
    try {
      const all = await views(new URL('http://x/'));
      for (const stream of streams) stream.write(`event: update\ndata: ${JSON.stringify(all)}\n\n`);
    } catch (error) {
      for (const stream of streams)
        stream.write(`event: failure\ndata: ${JSON.stringify(errorBody(error))}\n\n`);
    }
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const send = (status: number, type: string, body: string, extra: Record<string, string> = {}) => {
      if (response.headersSent || response.destroyed) return;
      response.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, ...extra });
      response.end(request.method === 'HEAD' ? undefined : body);
    };
    const sendJson = (status: number, value: unknown) =>
      send(status, 'application/json; charset=utf-8', `${JSON.stringify(value, null, 2)}\n`);
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      return send(
        405,
        'application/json; charset=utf-8',
        `${JSON.stringify(apiError('MUTUAL_DASHBOARD_READ_ONLY', 'the dashboard is read-only: only GET and HEAD are answered'))}\n`,
        { allow: 'GET, HEAD' },
      );
    }
    const hostName = (request.headers.host ?? '').replace(/:\d+$/, '');
    if (!config.isRemoteAllowed && !isLoopbackName(hostName)) {
      return sendJson(
        421,
        apiError(
          'MUTUAL_DASHBOARD_HOST_REFUSED',
          `Host ${JSON.stringify(request.headers.host ?? '')} is not this machine: open the dashboard at http://127.0.0.1:PORT/, or start it with --allow-remote`,
        ),
      );
    }
    let url: URL;
    try {
      url = new URL(request.url ?? '/', 'http://dashboard');
    } catch {
      // Node passes on targets such as //[ that are not URLs.
      return sendJson(
        400,
        apiError(
          'MUTUAL_DASHBOARD_NOT_FOUND',
          `${JSON.stringify(request.url)} is not a path: open / or one of /api/overview, /api/edges, /api/certificates, /api/policy, /api/checks, /api/stream`,
        ),
      );
    }
    const asset = ASSETS[url.pathname];
    if (asset) return send(200, asset.type, asset.body);
    try {
      switch (url.pathname) {
        case '/api/overview':
          return sendJson(200, (await views(url)).overview);
        case '/api/edges':
          return sendJson(200, (await views(url)).edges);
        case '/api/certificates':
          return sendJson(200, (await views(url)).certificates);
        case '/api/policy':
          return sendJson(200, (await views(url)).policy);
        case '/api/checks':
          return sendJson(200, (await views(url)).checks);
        case '/api/stream': {
          response.writeHead(200, {
            ...SECURITY_HEADERS,
            'content-type': 'text/event-stream; charset=utf-8',
            connection: 'keep-alive',
          });
          response.write(`retry: ${refreshMs}\n\n`);
          streams.add(response);
          request.on('close', () => {
            streams.delete(response);
            if (streams.size === 0 && timer) {
              clearInterval(timer);
              timer = undefined;
            }
          });
          timer ??= setInterval(push, refreshMs);
          await push();
          return;
        }
        default:
          return sendJson(
            404,
            apiError(
              'MUTUAL_DASHBOARD_NOT_FOUND',
              `no such page: ${url.pathname}; the API is /api/overview, /api/edges, /api/certificates, /api/policy, /api/checks and /api/stream`,
            ),
          );
      }
    } catch (error) {
      return sendJson(503, errorBody(error));
    }
  };
  // node:http's defaults let a slowloris client (slowhttptest -H) or a silent connection hold a
  // socket 60-90 s (headersTimeout 60 s, checked every 30 s); the page's requests are small GETs.
  const server = createServer({ connectionsCheckingInterval: 1_000 }, (request, response) => {
    // Whatever goes wrong answers this request; it never becomes an unhandled rejection.
    handle(request, response).catch((error: unknown) => {
      if (response.headersSent) return response.destroy();
      response
        .writeHead(500, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8' })
        .end(`${JSON.stringify(errorBody(error))}\n`);
    });
  });
  server.headersTimeout = DASHBOARD_HEADERS_TIMEOUT_MS;
  server.requestTimeout = 2 * DASHBOARD_HEADERS_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (cause: NodeJS.ErrnoException) =>
      reject(
        new MutualError(
          'MUTUAL_DASHBOARD_LISTEN_FAILED',
          `cannot listen on ${config.host}:${config.port} (${cause.code ?? cause.message}): choose another with --listen HOST:PORT (port 0 picks a free one)`,
          { cause },
        ),
      ),
    );
    server.listen(config.port, config.host, resolve);
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const stop = () => {
    if (timer) clearInterval(timer);
    for (const stream of streams) stream.end();
    streams.clear();
  };
  return {
    url: `http://${host}:${address.port}/`,
    close() {
      stop();
      return new Promise((resolve) => server.close(() => resolve()));
    },
    destroy() {
      stop();
      server.closeAllConnections();
      server.close();
    },
  };
}

/** How long a request head may take; the dashboard's own requests are small GETs. */
export const DASHBOARD_HEADERS_TIMEOUT_MS = 10_000;

function apiError(code: ErrorCode, message: string) {
  return { error: { code, message } };
}

function errorBody(error: unknown) {
  return error instanceof MutualError
    ? apiError(error.code, error.message)
    : apiError('MUTUAL_DASHBOARD_COLLECT_FAILED', (error as Error).message);
}
