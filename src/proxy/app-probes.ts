// The app's kubelet probes, answered on the admin port (Istio's probe rewrite). The injector points
// each HTTP(S), gRPC and TCP probe of an app container at /app-health/<container>/<livez|readyz|startupz>
// and hands the original probes over as JSON; here each such path makes the original check against
// the app on 127.0.0.1 within the probe's timeout: the GET, over TLS for HTTPS with the app's
// certificate unverified as the kubelet's (answering with the app's status code),
// the gRPC health check (200 when SERVING, else 503) or the TCP connect (200 when accepted). The
// proxy's own connections skip the iptables redirection, so STRICT never stands between the kubelet
// and the app.
import { type IncomingMessage, request, type ServerResponse } from 'node:http';
import { type ClientHttp2Stream, connect as connectHttp2, constants as http2Constants } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { connect as connectTcp } from 'node:net';
import { ADMIN_IDLE_TIMEOUT_MS } from '../admin/index.ts';
import type { AppProbe } from '../config/index.ts';

export type AdminRoute = (request: IncomingMessage, response: ServerResponse) => void;

/** Read at most this much of the app's answer, as the kubelet does; the rest is not waited for. */
const MAX_BODY_BYTES = 10 * 1024;

export interface AppProbeResult {
  /** The app's status code, or 503 when it did not answer in time or could not be reached. */
  readonly status: number;
  /** What happened, naming what was probed: `127.0.0.1:8080/healthz answered 503`. */
  readonly message: string;
  /** The same without naming what was probed, for a caller that does (`answered 503`). */
  readonly reason: string;
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

/** The original probe (see AppProbe's kinds) within its timeout. Never rejects. */
export function probeApp(probe: AppProbe, userAgent = 'mutual-proxy-probe'): Promise<AppProbeResult> {
  if (probe.kind === 'grpc') return grpcHealthCheck(probe, userAgent);
  if (probe.kind === 'tcp') return tcpConnect(probe);
  return httpGet(probe, userAgent);
}

/** Passed on to tls.connect by https.request's agent (which its types do not say). */
const HTTP1_ALPN = { ALPNProtocols: ['http/1.1'] } as object;

function httpGet(probe: AppProbe, userAgent: string): Promise<AppProbeResult> {
  const isHttps = probe.scheme === 'HTTPS';
  const target = `${isHttps ? 'https://' : ''}127.0.0.1:${probe.port}${probe.path}`;
  const outcome = (status: number, reason: string): AppProbeResult => ({
    status,
    reason,
    message: `${target} ${reason}`,
  });
  return new Promise((resolve) => {
    let isSettled = false;
    // How far it got, for a timeout or an error to say where it stopped.
    let stage: 'connecting' | 'handshaking' | 'waiting' = 'connecting';
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
    const options = {
      host: '127.0.0.1',
      port: probe.port,
      path: probe.path,
      method: 'GET',
      headers,
      agent: false,
    } as const;
    // HTTPS as the kubelet makes it (k8s.io/kubernetes pkg/probe/http): the app's certificate is
    // not verified, no client certificate, no SNI (an IP address, whatever a Host header says),
    // HTTP/1.1.
    const outgoing = isHttps
      ? httpsRequest({ ...options, rejectUnauthorized: false, servername: '', ...HTTP1_ALPN })
      : request(options);
    outgoing.once('socket', (socket) => {
      socket.once('connect', () => {
        stage = isHttps ? 'handshaking' : 'waiting';
      });
      socket.once('secureConnect', () => {
        stage = 'waiting';
      });
    });
    const timer = setTimeout(
      () =>
        settle(
          outcome(
            503,
            stage === 'handshaking'
              ? `did not complete the TLS handshake within ${probe.timeoutMs} ms`
              : `did not answer within ${probe.timeoutMs} ms`,
          ),
        ),
      probe.timeoutMs,
    );
    outgoing.on('response', (answer) => {
      const status = answer.statusCode ?? 502;
      // Node's parser takes any three digits; below 100 there is no status to pass on (and
      // writeHead would throw), and the kubelet counts it as a failure anyway.
      const done = () =>
        settle(
          status < 100
            ? outcome(503, `answered ${status}, which is not an HTTP status`)
            : outcome(status, `answered ${status}`),
        );
      let size = 0;
      answer.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) done();
      });
      answer.on('end', done);
      answer.on('error', done);
    });
    outgoing.on('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? error.message;
      if (stage !== 'handshaking') return settle(outcome(503, `not reachable: ${code}`));
      // OpenSSL's reason (`wrong version number`) says more than EPROTO.
      const why = /SSL routines:[^:]*:([^:]+)/.exec(error.message)?.[1] ?? code;
      // What came back was not TLS: most likely plain HTTP, on a port the probe says is HTTPS.
      const isPlain = /wrong version number|packet length too long|http request/.test(why);
      settle(
        outcome(
          503,
          isPlain
            ? `did not answer the TLS handshake in TLS (${why}): the probe's scheme is HTTPS, and the app seems to serve plain HTTP on that port (scheme: HTTP probes it so)`
            : `failed the TLS handshake (${why})`,
        ),
      );
    });
    outgoing.end();
  });
}

/** Settles once with the first result, or with the timeout's; `cleanup` runs once either way. */
function withTimeout(
  probe: AppProbe,
  target: string,
  start: (settle: (result: AppProbeResult) => void) => () => void,
): Promise<AppProbeResult> {
  return new Promise((resolve) => {
    let isSettled = false;
    let cleanup = () => {};
    const settle = (result: AppProbeResult) => {
      if (isSettled) return;
      isSettled = true;
      clearTimeout(timer);
      cleanup();
      resolve(result);
    };
    const reason = `did not answer within ${probe.timeoutMs} ms`;
    const timer = setTimeout(
      () => settle({ status: 503, reason, message: `${target} ${reason}` }),
      probe.timeoutMs,
    );
    cleanup = start(settle);
    if (isSettled) cleanup();
  });
}

/** The kubelet's TCP probe: the app accepted a connection on 127.0.0.1:<port>, nothing sent. */
function tcpConnect(probe: AppProbe): Promise<AppProbeResult> {
  const target = `127.0.0.1:${probe.port}`;
  return withTimeout(probe, target, (settle) => {
    const socket = connectTcp({ host: '127.0.0.1', port: probe.port });
    const outcome = (status: number, reason: string) => ({ status, reason, message: `${target} ${reason}` });
    socket.on('connect', () => settle(outcome(200, 'accepted the connection')));
    socket.on('error', (error: NodeJS.ErrnoException) =>
      settle(outcome(503, `not reachable: ${error.code ?? error.message}`)),
    );
    return () => socket.destroy();
  });
}

// The kubelet's gRPC probe (k8s.io/kubernetes pkg/probe/grpc): grpc.health.v1.Health/Check in
// plaintext HTTP/2, success only for SERVING. The two messages, written by hand (proto3 wire format):
//   HealthCheckRequest  { string service = 1; }         → 0x0a <varint length> <UTF-8 bytes>, or empty for ""
//   HealthCheckResponse { ServingStatus status = 1; }   → 0x08 <varint>; absent means UNKNOWN (0)
// each in a gRPC frame: 1 byte "compressed" (0: we offer no encoding), 4 bytes big-endian length.
const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];
const GRPC_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** The framed HealthCheckRequest for `service`. */
export function encodeHealthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  const message =
    name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), varint(name.length), name]);
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** The status of a framed HealthCheckResponse, or a reason it cannot be read. */
export function decodeHealthCheckResponse(body: Buffer): { status: number } | { error: string } {
  if (body.length < 5) return { error: 'no response message' };
  if (body[0] !== 0) return { error: 'a compressed response, though none was offered' };
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length)
    return { error: `a response frame of ${length} bytes in ${body.length - 5}` };
  let status = 0;
  let at = 5;
  const readVarint = (): number | undefined => {
    let value = 0;
    for (let shift = 0; shift < 35 && at < body.length; shift += 7) {
      const byte = body[at++] as number;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
    return undefined;
  };
  while (at < body.length) {
    const tag = readVarint();
    if (tag === undefined) return { error: 'a malformed response message' };
    const wireType = tag & 7;
    let skip = 0;
    if (wireType === 0) {
      const value = readVarint();
      if (value === undefined) return { error: 'a malformed response message' };
      if (tag >>> 3 === 1) status = value;
    } else if (wireType === 2) {
      const length = readVarint();
      if (length === undefined) return { error: 'a malformed response message' };
      skip = length;
    } else if (wireType === 1) skip = 8;
    else if (wireType === 5) skip = 4;
    else return { error: 'a malformed response message' };
    at += skip;
    if (at > body.length) return { error: 'a malformed response message' };
  }
  return { status };
}

function grpcHealthCheck(probe: AppProbe, userAgent: string): Promise<AppProbeResult> {
  const service = probe.grpcService ?? '';
  const target = `127.0.0.1:${probe.port} (gRPC health of ${service === '' ? 'the server' : JSON.stringify(service)})`;
  return withTimeout(probe, target, (settle) => {
    const fail = (why: string) => settle({ status: 503, reason: why, message: `${target}: ${why}` });
    const session = connectHttp2(`http://127.0.0.1:${probe.port}`);
    session.on('error', (error: NodeJS.ErrnoException) =>
      fail(`not reachable: ${error.code ?? error.message}`),
    );
    // The call starts once connected, so a refused connection reads as such, not as a cancelled stream.
    let stream: ClientHttp2Stream | undefined;
    session.once('connect', () => {
      const call = session.request({
        [http2Constants.HTTP2_HEADER_METHOD]: 'POST',
        [http2Constants.HTTP2_HEADER_PATH]: HEALTH_CHECK_PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
        'user-agent': userAgent,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      let grpcStatus: string | undefined;
      let grpcMessage = '';
      const readStatus = (headers: Record<string, unknown>) => {
        if (typeof headers['grpc-status'] === 'string') grpcStatus = headers['grpc-status'];
        if (typeof headers['grpc-message'] === 'string') grpcMessage = safeDecode(headers['grpc-message']);
      };
      call.on('response', (headers) => {
        const httpStatus = headers[':status'];
        if (httpStatus !== 200) fail(`answered HTTP ${String(httpStatus)}, not gRPC`);
        else readStatus(headers);
      });
      call.on('trailers', readStatus);
      call.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) fail(`answered more than ${MAX_BODY_BYTES} bytes`);
        else chunks.push(chunk);
      });
      call.on('error', (error: NodeJS.ErrnoException) =>
        fail(`the call failed: ${error.code ?? error.message}`),
      );
      call.on('end', () => {
        if (grpcStatus === undefined) return fail('answered without a grpc-status');
        if (grpcStatus !== '0') {
          const code = GRPC_CODES[Number(grpcStatus)] ?? grpcStatus;
          const detail = grpcMessage === '' ? '' : ` (${grpcMessage})`;
          return fail(
            code === 'UNIMPLEMENTED'
              ? `does not implement the gRPC health protocol (grpc.health.v1.Health): ${code}${detail}`
              : `health check failed: ${code}${detail}`,
          );
        }
        const response = decodeHealthCheckResponse(Buffer.concat(chunks));
        if ('error' in response) return fail(`answered ${response.error}`);
        const name = SERVING_STATUS[response.status] ?? String(response.status);
        if (response.status === 1) settle({ status: 200, reason: 'SERVING', message: `${target}: SERVING` });
        else fail(`service unhealthy (responded with ${name})`);
      });
      // After 'end' (settled by then), or a call the server dropped without an answer.
      call.on('close', () => fail('closed the call without an answer'));
      call.end(encodeHealthCheckRequest(service));
      stream = call;
    });
    return () => {
      stream?.destroy();
      session.destroy();
    };
  });
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
