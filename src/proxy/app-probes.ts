// The app's kubelet probes, answered on the admin port (Istio's probe rewrite). The injector points
// each HTTP probe of an app container at /app-health/<container>/<livez|readyz|startupz> and hands
// the original probes over as JSON; here each such path makes the original GET to the app on
// 127.0.0.1 within the probe's timeout and answers with the app's status code. The proxy's own
// connections skip the iptables redirection, so STRICT never stands between the kubelet and the app.
import { type IncomingMessage, request, type ServerResponse } from 'node:http';
import { ADMIN_IDLE_TIMEOUT_MS } from '../admin/index.ts';
import type { AppProbe } from '../config/index.ts';

export type AdminRoute = (request: IncomingMessage, response: ServerResponse) => void;

/** Read at most this much of the app's answer, as the kubelet does; the rest is not waited for. */
const MAX_BODY_BYTES = 10 * 1024;

export interface AppProbeResult {
  /** The app's status code, or 503 when it did not answer in time or could not be reached. */
  readonly status: number;
  readonly message: string;
}

/** `GET <path>` routes for the admin server, one per rewritten probe. */
export function appProbeRoutes(probes: ReadonlyMap<string, AppProbe>): Record<string, AdminRoute> {
  const routes: Record<string, AdminRoute> = {};
  for (const [path, probe] of probes) {
    routes[`GET ${path}`] = (incoming, response) => {
      const userAgent = incoming.headers['user-agent'];
      // The admin port closes a socket silent for ADMIN_IDLE_TIMEOUT_MS; a probe may wait longer.
      if (probe.timeoutMs >= ADMIN_IDLE_TIMEOUT_MS) incoming.socket.setTimeout(probe.timeoutMs + 1000);
      void probeApp(probe, typeof userAgent === 'string' ? userAgent : undefined).then((result) => {
        // The status only: a Location header would send the kubelet to a path we do not serve.
        response
          .writeHead(result.status, { 'content-type': 'text/plain', 'cache-control': 'no-store' })
          .end(`${result.message}\n`);
      });
    };
  }
  return routes;
}

/** The original probe: GET http://127.0.0.1:<port><path> with its headers, within its timeout. Never rejects. */
export function probeApp(probe: AppProbe, userAgent = 'mutual-proxy-probe'): Promise<AppProbeResult> {
  const target = `127.0.0.1:${probe.port}${probe.path}`;
  return new Promise((resolve) => {
    let isSettled = false;
    const settle = (result: AppProbeResult) => {
      if (isSettled) return;
      isSettled = true;
      clearTimeout(timer);
      outgoing.destroy();
      resolve(result);
    };
    // The kubelet sends its own User-Agent and Accept unless the probe sets them.
    const headers: Record<string, string> = { 'user-agent': userAgent, accept: '*/*', connection: 'close' };
    for (const [name, value] of probe.headers) headers[name.toLowerCase()] = value;
    const outgoing = request({
      host: '127.0.0.1',
      port: probe.port,
      path: probe.path,
      method: 'GET',
      headers,
      agent: false,
    });
    const timer = setTimeout(
      () => settle({ status: 503, message: `${target} did not answer within ${probe.timeoutMs} ms` }),
      probe.timeoutMs,
    );
    outgoing.on('response', (answer) => {
      const status = answer.statusCode ?? 502;
      // Node's parser takes any three digits; below 100 there is no status to pass on (and
      // writeHead would throw), and the kubelet counts it as a failure anyway.
      const done = () =>
        settle(
          status < 100
            ? { status: 503, message: `${target} answered ${status}, which is not an HTTP status` }
            : { status, message: `${target} answered ${status}` },
        );
      let size = 0;
      answer.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) done();
      });
      answer.on('end', done);
      answer.on('error', done);
    });
    outgoing.on('error', (error: NodeJS.ErrnoException) =>
      settle({ status: 503, message: `${target} not reachable: ${error.code ?? error.message}` }),
    );
    outgoing.end();
  });
}
