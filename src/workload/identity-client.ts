import { request } from 'node:https';
import { isMutualError, MutualError } from '../errors.ts';
import { MESH_TLS_GROUPS } from '../tls/index.ts';

export interface CertifyResult {
  readonly spiffeId: string;
  readonly certificateChain: string;
  readonly trustBundle: string;
  readonly expiresAt: string;
}

export interface IdentityClientOptions {
  /** e.g. https://127.0.0.1:8443 */
  readonly url: string;
  /** The identity service's SPIFFE ID; anything else is refused. */
  readonly serverId: string;
  /** PEM roots to verify the identity service with; a function so bundle updates apply. */
  readonly trustBundlePem: () => string;
  readonly timeoutMs?: number;
}

const MAX_RESPONSE_BYTES = 1024 * 1024;

/** A small client for the identity service's API, verifying the service by its SPIFFE ID. */
export function createIdentityClient(options: IdentityClientOptions) {
  function call(
    method: string,
    path: string,
    body?: string,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
    timeoutMs = options.timeoutMs ?? 10_000,
  ) {
    return new Promise<{
      status: number;
      text: string;
      headers: Record<string, string | string[] | undefined>;
    }>((resolve, reject) => {
      const url = new URL(path, options.url);
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: `${url.pathname}${url.search}`,
          method,
          // Calls are minutes apart; a pooled keep-alive socket would only hold a stopping process open.
          agent: false,
          ...(signal ? { signal } : {}),
          ca: options.trustBundlePem(),
          minVersion: 'TLSv1.3',
          ecdhCurve: MESH_TLS_GROUPS,
          checkServerIdentity: (_host, certificate) => {
            const uris = (certificate.subjectaltname ?? '')
              .split(', ')
              .filter((name) => name.startsWith('URI:'));
            return uris.length === 1 && uris[0] === `URI:${options.serverId}`
              ? undefined
              : new MutualError(
                  'MUTUAL_PKI_SPIFFE_ID_MISMATCH',
                  `the identity service presented ${uris.join(', ') || 'no URI SAN'}, expected ${options.serverId}`,
                );
          },
          headers: { 'content-type': 'application/json', ...headers },
          timeout: timeoutMs,
        },
        (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) response.destroy(new Error('response too large'));
            else chunks.push(chunk);
          });
          response.on('end', () =>
            resolve({
              status: response.statusCode ?? 0,
              text: Buffer.concat(chunks).toString('utf8'),
              headers: response.headers,
            }),
          );
          response.on('error', reject);
        },
      );
      req.on('timeout', () =>
        req.destroy(new Error(`no answer from ${options.url} within ${timeoutMs / 1000} s`)),
      );
      req.on('error', (error) =>
        reject(
          isMutualError(error)
            ? error
            : new MutualError(
                'MUTUAL_IDENTITY_UNAVAILABLE',
                `cannot reach the identity service at ${options.url}: ${error.message}`,
                {
                  cause: error,
                },
              ),
        ),
      );
      req.end(body);
    });
  }

  return {
    /** `timeoutMs`: how long the service may stay silent (default: the client's, 10 s). */
    async certify(token: string, csr: string, timeoutMs?: number): Promise<CertifyResult> {
      const response = await call(
        'POST',
        '/v1/certify',
        JSON.stringify({ token, csr }),
        {},
        undefined,
        timeoutMs ?? options.timeoutMs ?? 10_000,
      );
      let json: { error?: { code?: string; message?: string } } & Partial<CertifyResult>;
      try {
        json = JSON.parse(response.text);
      } catch {
        throw new MutualError(
          'MUTUAL_IDENTITY_UNAVAILABLE',
          `the identity service answered ${response.status} without JSON`,
        );
      }
      if (response.status !== 200) {
        const code = (json.error?.code ?? 'MUTUAL_IDENTITY_UNAVAILABLE') as ConstructorParameters<
          typeof MutualError
        >[0];
        const retryAfterMs = retryAfterMsOf(response.headers['retry-after']);
        throw new MutualError(code, `identity service refused: ${json.error?.message ?? response.status}`, {
          detail: { status: response.status, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
        });
      }
      return json as CertifyResult;
    },
    /** Long-polls the bundle: resolves with the new PEM and ETag, or undefined when unchanged. */
    async fetchBundle(
      etag: string | undefined,
      waitS: number,
      signal?: AbortSignal,
    ): Promise<{ pem: string; etag: string } | undefined> {
      // The service holds the poll silent for up to waitS: a socket timeout shorter than that
      // would cut every poll, so the watch would reconnect and back off instead of waiting.
      const response = await call(
        'GET',
        `/v1/bundle?wait=${waitS}`,
        undefined,
        etag ? { 'if-none-match': etag } : {},
        signal,
        waitS * 1000 + (options.timeoutMs ?? 10_000),
      );
      if (response.status === 304) return undefined;
      if (response.status !== 200) {
        throw new MutualError('MUTUAL_IDENTITY_UNAVAILABLE', `bundle request answered ${response.status}`);
      }
      return { pem: response.text, etag: String(response.headers.etag ?? '') };
    },
  };
}

export type IdentityClient = ReturnType<typeof createIdentityClient>;

/**
 * Retry-After in seconds (what the identity service sends) as milliseconds; undefined when absent
 * or in another form (an HTTP date), in which case the client's own backoff applies.
 */
export function retryAfterMsOf(value: string | string[] | undefined): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  return text && /^\d{1,6}$/.test(text) ? Number(text) * 1000 : undefined;
}
