import { request } from 'node:https';
import { MutualError } from '../errors.ts';
import {
  type AuthenticatedCaller,
  IDENTITY_AUDIENCE,
  identityFromServiceAccount,
  JOIN_TOKEN_ISSUER,
  type TokenAuthenticator,
} from './join-token.ts';

/** Where the API server is and how the identity service proves itself to it. */
export interface TokenReviewConfig {
  /** The API server base URL, e.g. https://10.96.0.1:443. */
  readonly url: string;
  /** PEM roots to verify the API server with; the system roots when absent. */
  readonly caPem?: string;
  /** The identity service's own bearer token, read per request (projected tokens rotate on disk). */
  readonly bearerToken?: () => Promise<string>;
  readonly timeoutMs?: number;
}

const TOKEN_REVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews';
const MAX_RESPONSE_BYTES = 256 * 1024;
const MAX_TOKEN_LENGTH = 16 * 1024;

/** The in-cluster paths every pod has (kubelet mounts them from the pod's ServiceAccount). */
export const IN_CLUSTER_FILES = {
  token: '/var/run/secrets/kubernetes.io/serviceaccount/token',
  ca: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
} as const;

/** The API server URL from the environment kubelet sets in every pod, or a coded usage error. */
export function inClusterApiServerUrl(env: Readonly<Record<string, string | undefined>>): string {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      '--token-review-url in-cluster needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, which only exist inside a pod; give the API server URL instead',
    );
  }
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Kubernetes ServiceAccount tokens (projected, audience identity.mutual.dev), judged by the API
 * server: POST an authentication.k8s.io/v1 TokenReview. The caller must be authenticated, for our
 * audience, and a ServiceAccount; system:serviceaccount:NS:SA → spiffe://<td>/ns/NS/sa/SA. When the
 * API server cannot answer, the error is MUTUAL_IDENTITY_TOKEN_REVIEW_UNAVAILABLE (503, retry), never
 * a token refusal.
 */
export function createTokenReviewAuthenticator(
  config: TokenReviewConfig & { trustDomain: string; audience?: string },
): TokenAuthenticator {
  const audience = config.audience ?? IDENTITY_AUDIENCE;
  return {
    async authenticate(token: string): Promise<AuthenticatedCaller> {
      if (typeof token !== 'string' || token.length === 0)
        throw tokenInvalid('missing', 'no token was given');
      if (token.length > MAX_TOKEN_LENGTH) {
        throw tokenInvalid('malformed', `the token is longer than ${MAX_TOKEN_LENGTH} characters`);
      }
      const review = await postTokenReview(config, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, audiences: [audience] },
      });
      const status = review.status ?? {};
      if (status.authenticated !== true) {
        throw tokenInvalid(
          'unauthenticated',
          `the Kubernetes API server did not authenticate the token${status.error ? `: ${status.error}` : ''}`,
        );
      }
      if (!Array.isArray(status.audiences) || !status.audiences.includes(audience)) {
        throw tokenInvalid(
          'audience',
          `the token is not for audience ${audience} (it is for ${JSON.stringify(status.audiences ?? [])}); project a ServiceAccount token with audience ${audience}`,
        );
      }
      const username = String(status.user?.username ?? '');
      const identity = identityFromServiceAccount(username, config.trustDomain);
      return { identity, method: 'kubernetes', tokenId: String(status.user?.uid ?? '').slice(0, 36) };
    },
  };
}

interface TokenReviewObject {
  apiVersion?: string;
  kind?: string;
  status?: {
    authenticated?: boolean;
    user?: { username?: string; uid?: string };
    audiences?: string[];
    error?: string;
  };
}

async function postTokenReview(config: TokenReviewConfig, body: object): Promise<TokenReviewObject> {
  const url = new URL(TOKEN_REVIEW_PATH, config.url);
  let bearer: string | undefined;
  try {
    bearer = config.bearerToken ? (await config.bearerToken()).trim() : undefined;
  } catch (error) {
    throw unavailable(`cannot read the identity service's own API token: ${(error as Error).message}`, error);
  }
  const payload = JSON.stringify(body);
  const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(
      {
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || 443,
        path: url.pathname,
        method: 'POST',
        ...(config.caPem ? { ca: config.caPem } : {}),
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          'content-length': Buffer.byteLength(payload),
          ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
        },
        timeout: config.timeoutMs ?? 5_000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) response.destroy(new Error('the answer is too large'));
          else chunks.push(chunk);
        });
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
        response.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within the timeout')));
    req.on('error', reject);
    req.end(payload);
  }).catch((error: Error) => {
    throw unavailable(`cannot reach the Kubernetes API server at ${config.url}: ${error.message}`, error);
  });
  if (answer.status === 401 || answer.status === 403) {
    throw unavailable(
      `the Kubernetes API server refused the identity service's own credentials (HTTP ${answer.status}); it needs permission to create tokenreviews (ClusterRole system:auth-delegator)`,
    );
  }
  if (answer.status !== 200 && answer.status !== 201) {
    throw unavailable(`the Kubernetes API server answered the TokenReview with HTTP ${answer.status}`);
  }
  let review: TokenReviewObject;
  try {
    review = JSON.parse(answer.text) as TokenReviewObject;
  } catch (error) {
    throw unavailable('the Kubernetes API server answered the TokenReview without JSON', error);
  }
  if (review?.kind !== 'TokenReview' || typeof review.status !== 'object') {
    throw unavailable('the Kubernetes API server answered with something other than a TokenReview status');
  }
  return review;
}

function unavailable(message: string, cause?: unknown): MutualError {
  return new MutualError('MUTUAL_IDENTITY_TOKEN_REVIEW_UNAVAILABLE', message, cause ? { cause } : {});
}

function tokenInvalid(reason: string, message: string): MutualError {
  return new MutualError('MUTUAL_IDENTITY_TOKEN_INVALID', message, { detail: { reason } });
}

/**
 * Join tokens and Kubernetes tokens side by side: a token claiming our own issuer
 * (`mutual-identity`) goes to the join-token check, any other to the TokenReview. The claim is only
 * read to choose; each authenticator verifies the token fully.
 */
export function createChainedAuthenticator(options: {
  joinTokens: TokenAuthenticator;
  kubernetes?: TokenAuthenticator;
}): TokenAuthenticator {
  const { kubernetes, joinTokens } = options;
  if (!kubernetes) return joinTokens;
  return {
    authenticate: (token) => (isJoinToken(token) ? joinTokens : kubernetes).authenticate(token),
  };
}

function isJoinToken(token: string): boolean {
  if (typeof token !== 'string') return true;
  const payload = token.split('.')[1];
  if (payload === undefined) return false;
  try {
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))?.iss === JOIN_TOKEN_ISSUER;
  } catch {
    return false;
  }
}
