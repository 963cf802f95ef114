// `mutual inject serve`: the admission webhooks. HTTPS (TLS 1.2+) POST /inject takes an
// AdmissionReview and answers with the injection as a JSON Patch; POST /validate answers whether a
// policy is one the destination service would apply (policy-review.ts); an admin listener serves
// /live /ready /metrics. The serving certificate is watched and swapped without dropping a
// connection; the trust anchors written into every proxy are watched the same way.
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createAdminServer } from '../../admin/index.ts';
import type { ListenAddress } from '../../config/index.ts';
import { type ErrorCode, errorCatalog, isMutualError, MutualError } from '../../errors.ts';
import { readRequestBody } from '../../http-body.ts';
import { listenDualStack } from '../../listen-on.ts';
import { sampledLog } from '../../log/index.ts';
import { Counter, createRegistry, Gauge } from '../../metrics/index.ts';
import { limitConnections, shedLog } from '../../net/index.ts';
import { limitPeerKeyUpdates, MESH_TLS_GROUPS, PEER_KEY_UPDATES_ALLOWED } from '../../tls/index.ts';
import { CONTROL_PLANE } from '../constants.ts';
import type { InjectDefaults } from '../inject/index.ts';
import { printable, reviewAdmission } from './admission-review.ts';
import { handshakeFailures } from './handshake-failures.ts';
import { answerClientError, checkBodyFraming } from './http-refusals.ts';
import { plainHttpRefusals } from './plain-http.ts';
import { reviewPolicyAdmission } from './policy-review.ts';
import {
  loadServingCertificate,
  type ServingCertificateFiles,
  watchServingCertificate,
} from './serving-certificate.ts';
import { loadTrustAnchors, watchTrustAnchors } from './trust-anchors.ts';

/**
 * The API server takes request bodies up to 3 MiB; the pod in a review is that object again as
 * JSON (bigger than the protobuf a controller sends), so the cap leaves room for twice that. A
 * lower cap answered 413 for real pods, and under failurePolicy Ignore those started unmeshed.
 */
export const MAX_ADMISSION_REVIEW_BYTES = 8 * 1024 * 1024;
const TLS_MIN_VERSION = 'TLSv1.2';
/**
 * TLS 1.2 suites: forward secret and AEAD only, the three Go's client (the API server) prefers.
 * Node's default list also offers CBC, CCM and ARIA suites, which testssl.sh reports as obsolete
 * (LUCKY13) and the API server never picks. TLS 1.3 suites are set apart and unchanged.
 */
const TLS12_CIPHERS =
  'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305';
/**
 * The API server keeps a few connections alive per replica; 512 leaves room for bursts and holds
 * about 40 MiB of TLS state (some 75 KiB each) within the injector's 256 MiB.
 */
export const DEFAULT_MAX_CONNECTIONS = 512;
/** Node's default; the API server's client reconnects (or retries on a closed idle connection). */
export const DEFAULT_IDLE_TIMEOUT_MS = 5_000;

export interface InjectorWebhookConfig {
  readonly listen: ListenAddress;
  /** Off when undefined. */
  readonly adminListen?: ListenAddress;
  readonly tls: ServingCertificateFiles;
  /** The mesh's trust anchors (PEM roots; the mounted mutual-trust-anchors ConfigMap), watched. */
  readonly trustAnchorsFile: string;
  readonly inject: InjectDefaults;
  /** Handshake, headers and body deadline per request; the API server gives up after 10 s by default. */
  readonly clientTimeoutMs?: number;
  /** Open connections at most; at the cap the oldest one doing nothing useful is closed (src/net/connection-limit.ts). */
  readonly maxConnections?: number;
  /** How long a connection is kept open between requests. */
  readonly idleTimeoutMs?: number;
  /** How often the certificate and anchors files are re-read besides change notifications. */
  readonly certPollIntervalMs?: number;
  /** One line per decision and per certificate or anchors reload. */
  readonly log?: (line: string) => void;
}

export interface InjectorWebhook {
  readonly url: string;
  readonly adminUrl?: string;
  /** Stop accepting, let requests in flight finish. */
  close(): Promise<void>;
  /** Stop now, closing open connections. */
  destroy(): void;
}

function statusFor(code: ErrorCode): number {
  if (code === 'MUTUAL_K8S_ADMISSION_REVIEW_TOO_LARGE') return 413;
  if (code === 'MUTUAL_K8S_ADMISSION_REVIEW_INVALID' || code === 'MUTUAL_CLI_USAGE') return 400;
  return 500;
}

export async function startInjectorWebhook(config: InjectorWebhookConfig): Promise<InjectorWebhook> {
  const log = config.log ?? (() => {});
  const clientTimeoutMs = config.clientTimeoutMs ?? 10_000;
  const registry = createRegistry();
  const admissions = new Counter({
    name: 'mutual_injector_admissions_total',
    help: 'AdmissionReviews answered, by result (injected, skipped, refused, ignored, error) and reason.',
    labelNames: ['result', 'reason'],
    registers: [registry],
  });
  const reloads = new Counter({
    name: 'mutual_injector_certificate_reloads_total',
    help: 'Changed serving certificate files checked, by result (accepted, refused: the old one keeps serving).',
    labelNames: ['result'],
    registers: [registry],
  });
  const policyAdmissions = new Counter({
    name: 'mutual_injector_policy_admissions_total',
    help: 'Policy AdmissionReviews answered on /validate, by result (allowed, refused, ignored: not checked, error: no review) and reason (for refused, the error code).',
    labelNames: ['result', 'reason'],
    registers: [registry],
  });
  const anchorReloads = new Counter({
    name: 'mutual_injector_trust_anchors_reloads_total',
    help: 'Changed trust anchors files checked, by result (accepted, refused: the old anchors stay in use).',
    labelNames: ['result'],
    registers: [registry],
  });
  let certificate = await loadServingCertificate(config.tls);
  let anchors = await loadTrustAnchors(config.trustAnchorsFile, config.inject.trustDomain);
  new Gauge({
    name: 'mutual_injector_trust_anchors_roots',
    help: 'Roots in the trust anchors the injector writes into new pods.',
    registers: [registry],
    collect() {
      this.set(anchors.roots);
    },
  });
  new Gauge({
    name: 'mutual_injector_certificate_expiry_timestamp_seconds',
    help: 'When the serving certificate in use expires (Unix time).',
    registers: [registry],
    collect() {
      this.set(certificate.notAfterMs / 1000);
    },
  });

  // The answer being written on each connection, which a refusal from Node must not cut off.
  const inFlight = new WeakMap<Duplex, ServerResponse>();
  // Anyone who reaches the port can cause these: the first of each code is logged, the rest summed up.
  const refusals = sampledLog<ErrorCode>({
    log,
    summary: (counts, total, seconds) =>
      `inject: ${total} more requests refused in the last ${seconds} s: ${[...counts].map(([code, count]) => `${count} [${code}]`).join(', ')}\n`,
  });
  const server = createServer(
    {
      cert: certificate.cert,
      key: certificate.key,
      minVersion: TLS_MIN_VERSION,
      ciphers: TLS12_CIPHERS,
      ecdhCurve: MESH_TLS_GROUPS,
      handshakeTimeout: clientTimeoutMs,
      connectionsCheckingInterval: Math.max(250, Math.min(1000, clientTimeoutMs / 4)),
    },
    (request, response) => {
      inFlight.set(request.socket, response);
      response.once('close', () => inFlight.delete(request.socket));
      handle(request, response).catch((error: unknown) => {
        const code: ErrorCode = isMutualError(error) ? error.code : 'MUTUAL_INTERNAL';
        const isValidate = pathOf(request) === CONTROL_PLANE.injector.validatePath;
        (isValidate ? policyAdmissions : admissions).inc({ result: 'error', reason: code });
        refusals.report(
          code,
          () =>
            `${isValidate ? 'validate' : 'inject'}: ${request.method} ${printable(request.url ?? '')} refused [${code}]: ${(error as Error).message}\n`,
        );
        sendError(response, error);
      });
    },
  );
  server.headersTimeout = clientTimeoutMs;
  server.requestTimeout = clientTimeoutMs * 2;
  server.keepAliveTimeout = config.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const shed = new Counter({
    name: 'mutual_injector_connections_shed_total',
    help: 'Connections closed at the --max-connections cap to make room for a new one, by what the closed one was doing (handshake, headers: no request yet, idle, body: still arriving, new: nothing else could go, so the new one did).',
    labelNames: ['state'],
    registers: [registry],
  });
  const maxConnections = config.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const shedLines = shedLog({
    log,
    prefix: 'inject',
    maxConnections,
    flag: '--max-connections',
    advice:
      "A client is opening connections it does not use, or the limit is too low for the API server's traffic; mutual_injector_connections_shed_total counts them",
  });
  const connections = limitConnections(server, {
    maxConnections,
    onShed: (state, remote) => {
      shed.inc({ state });
      shedLines.report(state, remote);
    },
  });
  new Gauge({
    name: 'mutual_injector_connections_open',
    help: 'Connections open to the webhook (HTTPS), TLS handshakes included.',
    registers: [registry],
    collect() {
      this.set(connections.open());
    },
  });
  const keyUpdateFloods = new Counter({
    name: 'mutual_injector_key_update_floods_total',
    help: `TLS 1.3 clients closed for sending more than ${PEER_KEY_UPDATES_ALLOWED} KeyUpdates beyond one per MiB of data, which the webhook would answer in memory.`,
    registers: [registry],
  });
  const floodLines = sampledLog<'key_update_flood'>({
    log,
    summary: (_counts, total, seconds) =>
      `inject: ${total} more connections closed for a TLS KeyUpdate flood in the last ${seconds} s\n`,
  });
  // Anyone who reaches the port completes a handshake: one who asks for KeyUpdates without end
  // and never reads would keep the webhook busy answering them (src/tls/key-updates.ts).
  server.on('secureConnection', (socket) =>
    limitPeerKeyUpdates(socket, 'server', () => {
      keyUpdateFloods.inc();
      floodLines.report(
        'key_update_flood',
        () =>
          `inject: ${socket.remoteAddress} sent more than ${PEER_KEY_UPDATES_ALLOWED} TLS KeyUpdates on one connection, more than its data could need; the connection was closed\n`,
      );
    }),
  );
  const plainHttp = plainHttpRefusals({ log });
  const handshakes = handshakeFailures({
    log,
    counter: new Counter({
      name: 'mutual_injector_tls_handshakes_failed_total',
      help: 'TLS handshakes at the webhook port that failed, by OpenSSL error code (ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: the client does not trust the serving certificate).',
      labelNames: ['code'],
      registers: [registry],
    }),
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    // `curl http://` to this port: told so in plain HTTP (logged there), not an empty reply.
    const plain = plainHttp.refuse(error, socket);
    if (plain !== undefined) {
      admissions.inc({ result: 'error', reason: plain.code });
      return;
    }
    if (handshakes.refuse(error, socket)) return;
    const refused = answerClientError(error, socket, inFlight.get(socket), clientTimeoutMs);
    if (refused === undefined) return;
    admissions.inc({ result: 'error', reason: refused.code });
    refusals.report(
      refused.code,
      () => `inject: request refused before it was read [${refused.code}]: ${refused.message}\n`,
    );
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = pathOf(request);
    const { path: podPath, namespacePath, validatePath } = CONTROL_PLANE.injector;
    if (path !== podPath && path !== namespacePath && path !== validatePath) {
      throw new MutualError(
        'MUTUAL_K8S_ADMISSION_REVIEW_INVALID',
        `no endpoint ${printable(path)}: the webhook answers POST ${podPath}, POST ${namespacePath} and POST ${validatePath}`,
        { detail: { status: 404 } },
      );
    }
    if (request.method !== 'POST') {
      throw new MutualError(
        'MUTUAL_K8S_ADMISSION_REVIEW_INVALID',
        `use POST for ${path}, not ${request.method}`,
        { detail: { status: 405 } },
      );
    }
    // Stages: body framed as JSON → within size and time → envelope checked → the shared inject → patch out.
    checkBodyFraming(request);
    const body = await readBody(request, clientTimeoutMs);
    if (path === validatePath) {
      // Policies: the destination service's parser and checks decide; nothing is patched.
      const decision = reviewPolicyAdmission(body);
      policyAdmissions.inc({ result: decision.result, reason: decision.reason });
      if (decision.result === 'refused')
        log(
          `validate: ${decision.policy} refused [${decision.reason}]: ${printable(decision.message ?? '', 2048)}\n`,
        );
      else if (decision.result === 'allowed' || decision.reason === 'unchanged') {
        const warnings = decision.review.response.warnings?.length ?? 0;
        log(
          `validate: ${decision.policy} allowed (${decision.reason}${warnings > 0 ? `, ${warnings} warning${warnings === 1 ? '' : 's'}` : ''})\n`,
        );
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(decision.review));
      return;
    }
    const options = { ...config.inject, trustAnchorsPem: anchors.pem };
    const decision = reviewAdmission(body, options, path === namespacePath ? 'namespace' : 'pod');
    admissions.inc({ result: decision.result, reason: decision.reason });
    if (decision.result !== 'ignored')
      log(`inject: pod ${decision.pod} ${decision.result} (${decision.reason})\n`);
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(decision.review));
  }

  const watcher = watchServingCertificate({
    files: config.tls,
    initial: certificate,
    ...(config.certPollIntervalMs === undefined ? {} : { pollIntervalMs: config.certPollIntervalMs }),
    onChange(next) {
      certificate = next;
      // setSecureContext replaces every option of the context, so the floor and groups are given again.
      server.setSecureContext({
        cert: next.cert,
        key: next.key,
        minVersion: TLS_MIN_VERSION,
        ciphers: TLS12_CIPHERS,
        ecdhCurve: MESH_TLS_GROUPS,
      });
    },
    onEvent(event) {
      reloads.inc({ result: event.result });
      log(`certificate reload ${event.result}${event.code ? ` [${event.code}]` : ''}: ${event.message}\n`);
    },
  });

  const anchorsWatcher = watchTrustAnchors({
    file: config.trustAnchorsFile,
    trustDomain: config.inject.trustDomain,
    initial: anchors,
    ...(config.certPollIntervalMs === undefined ? {} : { pollIntervalMs: config.certPollIntervalMs }),
    onChange(next) {
      anchors = next;
    },
    onEvent(event) {
      anchorReloads.inc({ result: event.result });
      log(`trust anchors reload ${event.result}${event.code ? ` [${event.code}]` : ''}: ${event.message}\n`);
    },
  });

  let admin: HttpServer | undefined;
  try {
    // Each on 0.0.0.0 (as installed) takes [::] too: in an IPv6-only cluster the API server calls
    // the webhook, and the kubelet probes it, at the pod's IPv6 address.
    const failure = { code: 'MUTUAL_K8S_WEBHOOK_LISTEN_FAILED', what: 'webhook, --listen' } as const;
    await listenDualStack(server, config.listen, failure);
    if (config.adminListen) {
      admin = createAdminServer({
        registry,
        notReadyReason: () => (server.listening ? undefined : 'not listening'),
      });
      const adminFailure = { ...failure, what: 'admin, --admin-listen' };
      await listenDualStack(admin, config.adminListen, adminFailure);
    }
  } catch (error) {
    watcher.close();
    anchorsWatcher.close();
    shedLines.close();
    plainHttp.close();
    handshakes.close();
    refusals.close();
    server.close();
    admin?.close();
    throw error;
  }
  const urlOf = (scheme: string, listening: { address(): AddressInfo | string | null }) => {
    const address = listening.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `${scheme}://${host}:${address.port}`;
  };
  return {
    url: `${urlOf('https', server)}${CONTROL_PLANE.injector.path}`,
    ...(admin ? { adminUrl: urlOf('http', admin) } : {}),
    async close() {
      watcher.close();
      anchorsWatcher.close();
      shedLines.close();
      plainHttp.close();
      handshakes.close();
      refusals.close();
      server.closeIdleConnections();
      await Promise.all([
        new Promise<void>((resolve) => server.close(() => resolve())),
        admin ? new Promise<void>((resolve) => admin?.close(() => resolve())) : undefined,
      ]);
    },
    destroy() {
      watcher.close();
      anchorsWatcher.close();
      shedLines.close();
      plainHttp.close();
      handshakes.close();
      refusals.close();
      server.closeAllConnections();
      server.close();
      admin?.closeAllConnections();
      admin?.close();
    },
  };
}

function pathOf(request: IncomingMessage): string {
  try {
    return new URL(request.url ?? '/', 'https://injector').pathname;
  } catch {
    return request.url ?? '/';
  }
}

/** The body, whole, within the size cap and the deadline; a bigger one is drained, not kept. */
function readBody(request: IncomingMessage, timeoutMs: number): Promise<string> {
  return readRequestBody(request, {
    maxBytes: MAX_ADMISSION_REVIEW_BYTES,
    timeoutMs,
    tooLarge: () =>
      new MutualError(
        'MUTUAL_K8S_ADMISSION_REVIEW_TOO_LARGE',
        `the request body is larger than ${MAX_ADMISSION_REVIEW_BYTES} bytes (${MAX_ADMISSION_REVIEW_BYTES / 1024 / 1024} MiB)`,
      ),
    timedOut: () =>
      new MutualError(
        'MUTUAL_K8S_ADMISSION_REVIEW_INVALID',
        `the request body did not arrive within ${timeoutMs} ms`,
        { detail: { status: 408 } },
      ),
  });
}

function sendError(response: ServerResponse, error: unknown): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const code: ErrorCode = isMutualError(error) ? error.code : 'MUTUAL_INTERNAL';
  const message = isMutualError(error) ? error.message : 'internal error';
  const status =
    isMutualError(error) && typeof error.detail.status === 'number' ? error.detail.status : statusFor(code);
  // A client that sent too much, too slowly or without a length does not keep its connection.
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (status === 413 || status === 408 || status === 411) headers.connection = 'close';
  // With its length: an HTTP/1.0 client would otherwise only see the end when the connection closes.
  const body = `${JSON.stringify({ error: { code, message, hint: errorCatalog[code].action } })}\n`;
  headers['content-length'] = String(Buffer.byteLength(body));
  response.writeHead(status, headers);
  response.end(body);
}
