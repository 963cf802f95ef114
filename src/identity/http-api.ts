import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { type ErrorCode, errorCatalog, isMutualError, MutualError } from '../errors.ts';
import { bundleToJwks, bundleToPem, type TrustBundle } from '../pki/index.ts';
import { type Certifier, RateLimitedError } from './certifier.ts';

export const MAX_REQUEST_BODY_BYTES = 64 * 1024;
const MAX_LONG_POLL_S = 60;

export interface BundleSource {
  current(): TrustBundle;
  /** Calls `listener` after every change; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
}

export interface IdentityApiDeps {
  readonly certifier: Certifier;
  readonly bundles: BundleSource;
  /** PEM key and chain of the service's own SVID. */
  readonly serverCredentials: { key: string; cert: string };
}

/** Transport codes are chosen here, at the edge; the certifier only knows error codes. */
function statusFor(code: ErrorCode): number {
  if (code === 'MUTUAL_IDENTITY_TOKEN_INVALID') return 401;
  if (code === 'MUTUAL_IDENTITY_RATE_LIMITED') return 429;
  if (code === 'MUTUAL_IDENTITY_REQUEST_TOO_LARGE') return 413;
  if (code === 'MUTUAL_IDENTITY_UNAVAILABLE' || code === 'MUTUAL_PKI_ISSUER_INVALID') return 503;
  if (code === 'MUTUAL_INTERNAL') return 500;
  return 400;
}

export function createIdentityApiServer(deps: IdentityApiDeps): Server {
  const server = createServer(
    { key: deps.serverCredentials.key, cert: deps.serverCredentials.cert, minVersion: 'TLSv1.3' },
    (request, response) => {
      handle(request, response, deps).catch((error: unknown) => sendError(response, error));
    },
  );
  // A slow client gets a 408 instead of holding a socket forever.
  server.headersTimeout = 10_000;
  server.requestTimeout = (MAX_LONG_POLL_S + 15) * 1000;
  server.keepAliveTimeout = 5_000;
  return server;
}

async function handle(
  request: IncomingMessage,
  response: ServerResponse,
  deps: IdentityApiDeps,
): Promise<void> {
  const url = new URL(request.url ?? '/', 'https://identity');
  if (url.pathname === '/v1/certify') {
    if (request.method !== 'POST') return sendMethodNotAllowed(response, 'POST');
    const body = parseCertifyBody(await readBody(request));
    const requester = `${request.socket.remoteAddress ?? 'unknown'}:${request.socket.remotePort ?? 0}`;
    const result = await deps.certifier.certify(body, requester);
    return sendJson(response, 200, result);
  }
  if (url.pathname === '/v1/bundle') {
    if (request.method !== 'GET' && request.method !== 'HEAD') return sendMethodNotAllowed(response, 'GET');
    return serveBundle(request, response, url, deps.bundles);
  }
  sendJson(response, 404, {
    error: { code: 'MUTUAL_IDENTITY_REQUEST_INVALID', message: `no such endpoint ${url.pathname}` },
  });
}

function bundleEtag(bundle: TrustBundle): string {
  const hash = createHash('sha256');
  for (const der of bundle.rootsDer) hash.update(der);
  return `"${bundle.sequence}-${hash.digest('hex').slice(0, 16)}"`;
}

/**
 * GET /v1/bundle[?format=jwks][&wait=SECONDS]: with If-None-Match equal to the current ETag and
 * a wait, the request is held until the bundle changes (long poll) or the wait ends (304).
 */
async function serveBundle(
  request: IncomingMessage,
  response: ServerResponse,
  url: URL,
  bundles: BundleSource,
) {
  const waitS = Math.min(Number(url.searchParams.get('wait') ?? 0) || 0, MAX_LONG_POLL_S);
  const known = request.headers['if-none-match'];
  if (known !== undefined && known === bundleEtag(bundles.current()) && waitS > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, waitS * 1000);
      const unsubscribe = bundles.subscribe(done);
      request.socket.once('close', done);
      function done() {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      }
    });
    if (response.destroyed) return;
  }
  const bundle = bundles.current();
  const etag = bundleEtag(bundle);
  if (known === etag) {
    response.writeHead(304, { etag });
    response.end();
    return;
  }
  const isJwks = url.searchParams.get('format') === 'jwks';
  const body = isJwks ? `${JSON.stringify(bundleToJwks(bundle))}\n` : bundleToPem(bundle);
  response.writeHead(200, {
    etag,
    'content-type': isJwks ? 'application/json' : 'application/x-pem-file',
    'cache-control': 'no-cache',
  });
  response.end(request.method === 'HEAD' ? undefined : body);
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(request.headers['content-length'] ?? 0);
    if (declared > MAX_REQUEST_BODY_BYTES) {
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BODY_BYTES) {
        request.removeAllListeners('data');
        request.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function tooLarge(): MutualError {
  return new MutualError(
    'MUTUAL_IDENTITY_REQUEST_TOO_LARGE',
    `the request body is larger than ${MAX_REQUEST_BODY_BYTES} bytes`,
  );
}

function parseCertifyBody(text: string): { token: string; csr: string } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new MutualError('MUTUAL_IDENTITY_REQUEST_INVALID', 'the request body is not valid JSON');
  }
  const fields = body as Record<string, unknown> | null;
  if (
    typeof fields !== 'object' ||
    fields === null ||
    typeof fields.token !== 'string' ||
    typeof fields.csr !== 'string'
  ) {
    throw new MutualError(
      'MUTUAL_IDENTITY_REQUEST_INVALID',
      'the request must be a JSON object with string fields "token" and "csr"',
    );
  }
  return { token: fields.token, csr: fields.csr };
}

function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  if (response.headersSent) return;
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(`${JSON.stringify(body)}\n`);
}

function sendMethodNotAllowed(response: ServerResponse, allowed: string) {
  sendJson(
    response,
    405,
    { error: { code: 'MUTUAL_IDENTITY_REQUEST_INVALID', message: `use ${allowed} for this endpoint` } },
    { allow: allowed },
  );
}

function sendError(response: ServerResponse, error: unknown) {
  const code: ErrorCode = isMutualError(error) ? error.code : 'MUTUAL_INTERNAL';
  const message = isMutualError(error) ? error.message : 'internal error';
  const headers: Record<string, string> =
    error instanceof RateLimitedError ? { 'retry-after': String(error.retryAfterS) } : {};
  if (code === 'MUTUAL_IDENTITY_REQUEST_TOO_LARGE') headers.connection = 'close';
  sendJson(response, statusFor(code), { error: { code, message, hint: errorCatalog[code].action } }, headers);
}
