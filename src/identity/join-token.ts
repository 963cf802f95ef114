import { createHash, type KeyObject, randomUUID } from 'node:crypto';
import { compactVerify, decodeJwt, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { Clock } from '../clock.ts';
import { MutualError } from '../errors.ts';
import { isValidPathSegment, type MeshIdentity, meshIdentity } from '../spiffe/index.ts';
import type { TokenRevocationList } from './token-revocations.ts';

/** The audience every Mutual identity token is for; Kubernetes projected tokens use the same. */
export const IDENTITY_AUDIENCE = 'identity.mutual.dev';
/** The `iss` of every join token; tokens from anyone else go to another authenticator. */
export const JOIN_TOKEN_ISSUER = 'mutual-identity';
const ISSUER = JOIN_TOKEN_ISSUER;
const MAX_TOKEN_LENGTH = 8 * 1024;
const MAX_TOKEN_TTL_MS = 365 * 24 * 60 * 60 * 1000;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** The identity a token proves, taken from the verified token and nothing else. */
export interface AuthenticatedCaller {
  readonly identity: MeshIdentity;
  /** How it was proven, for the audit log: 'join-token' or 'kubernetes'. */
  readonly method: string;
  /** A stable handle on the token (hash of its ID), never the token itself. */
  readonly tokenId: string;
}

export interface TokenAuthenticator {
  /** Resolves the caller, or throws MUTUAL_IDENTITY_TOKEN_INVALID saying why. */
  authenticate(token: string): Promise<AuthenticatedCaller>;
}

/**
 * Local join tokens for a mesh without Kubernetes: ES256 JWTs bound to one namespace and service
 * account, signed with a key only the identity service (and `mutual identity token create`) holds.
 * The subject is written like a Kubernetes ServiceAccount username, so both authenticators map
 * identities the same way.
 */
export function createJoinTokenIssuer(options: { signingKey: KeyObject; clock: Clock }) {
  return {
    async mint(request: { namespace: string; serviceAccount: string; ttlMs: number }): Promise<string> {
      assertServiceAccountFlags(request.namespace, request.serviceAccount);
      if (!(request.ttlMs > 0) || request.ttlMs > MAX_TOKEN_TTL_MS) {
        throw new MutualError(
          'MUTUAL_CLI_USAGE',
          `token lifetime must be between 1s and 365d, got ${request.ttlMs} ms`,
        );
      }
      const nowS = Math.floor(options.clock.now() / 1000);
      return new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
        .setIssuer(ISSUER)
        .setAudience(IDENTITY_AUDIENCE)
        .setSubject(`system:serviceaccount:${request.namespace}:${request.serviceAccount}`)
        .setIssuedAt(nowS)
        .setNotBefore(nowS)
        .setExpirationTime(nowS + Math.ceil(request.ttlMs / 1000))
        .setJti(randomUUID())
        .sign(options.signingKey);
    },
  };
}

export function createJoinTokenAuthenticator(options: {
  verificationKey: KeyObject;
  trustDomain: string;
  clock: Clock;
  /** Tolerated clock difference between the minting and the checking machine. */
  skewMs?: number;
  /** Tokens revoked with `mutual identity token revoke`; none when absent. */
  revocations?: TokenRevocationList;
}): TokenAuthenticator {
  return {
    async authenticate(token: string): Promise<AuthenticatedCaller> {
      if (typeof token !== 'string' || token.length === 0)
        throw tokenInvalid('missing', 'no token was given');
      if (token.length > MAX_TOKEN_LENGTH)
        throw tokenInvalid('malformed', `the token is longer than ${MAX_TOKEN_LENGTH} characters`);
      if (!JWT_SHAPE.test(token)) {
        // Checked before the signature: jose decodes base64url leniently, so a stray space or a
        // "Bearer " prefix would otherwise read as a forged signature or a bad algorithm.
        throw tokenInvalid(
          'malformed',
          /^bearer\s/i.test(token)
            ? 'the token starts with "Bearer ": send the token alone, without the prefix'
            : 'the token is not a well-formed JWT (three base64url parts joined by "."): send the token exactly as `mutual identity token create` printed it, with nothing added',
        );
      }
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(token, options.verificationKey, {
          algorithms: ['ES256'],
          issuer: ISSUER,
          audience: IDENTITY_AUDIENCE,
          currentDate: new Date(options.clock.now()),
          clockTolerance: Math.round((options.skewMs ?? 30_000) / 1000),
          requiredClaims: ['exp', 'sub', 'jti'],
        }));
      } catch (error) {
        throw classifyJoseError(error);
      }
      const identity = identityFromServiceAccount(String(payload.sub), options.trustDomain);
      const tokenId = joinTokenId(String(payload.jti));
      const revoked = await options.revocations?.find({
        tokenId,
        namespace: identity.namespace,
        serviceAccount: identity.serviceAccount,
        issuedAtMs: typeof payload.iat === 'number' ? payload.iat * 1000 : 0,
      });
      if (revoked) {
        const what =
          'tokenId' in revoked
            ? `token ${tokenId} was revoked`
            : `every token for ${identity.namespace}/${identity.serviceAccount} minted before ${revoked.issuedBefore} was revoked`;
        throw tokenInvalid(
          'revoked',
          `${what} (\`mutual identity token revoke\`${revoked.revokedAt ? ` at ${revoked.revokedAt}` : ''}${revoked.reason ? `: ${revoked.reason}` : ''}); give the workload a new token from \`mutual identity token create\``,
        );
      }
      return { identity, method: 'join-token', tokenId };
    },
  };
}

/** What `mutual identity token revoke` needs to know about a token it is given. */
export interface JoinTokenDescription {
  readonly tokenId: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
}

/**
 * Reads a join token signed with `verificationKey` without judging its times: an expired token can
 * still be named. One signed with another key is refused, since revoking it here would change nothing.
 */
export async function describeJoinToken(
  token: string,
  verificationKey: KeyObject,
): Promise<JoinTokenDescription> {
  const trimmed = token.trim();
  const notOurs = (why: string) =>
    new MutualError('MUTUAL_IDENTITY_TOKEN_INVALID', `${why}; nothing was revoked`, {
      detail: { reason: 'malformed' },
    });
  if (!JWT_SHAPE.test(trimmed) || trimmed.length > MAX_TOKEN_LENGTH) {
    throw notOurs('that is not a join token as `mutual identity token create` prints it');
  }
  try {
    await compactVerify(trimmed, verificationKey, { algorithms: ['ES256'] });
  } catch {
    throw notOurs(
      "the token was not signed with this state directory's join-token key (another --state-dir, or another mesh)",
    );
  }
  const payload = decodeJwt(trimmed);
  if (payload.iss !== ISSUER || typeof payload.jti !== 'string' || typeof payload.exp !== 'number') {
    throw notOurs('the token lacks the issuer, jti or exp every join token has');
  }
  const account = serviceAccountOf(String(payload.sub));
  if (!account) {
    throw notOurs(`the token subject ${JSON.stringify(payload.sub)} is not system:serviceaccount:<ns>:<sa>`);
  }
  return {
    tokenId: joinTokenId(payload.jti),
    ...account,
    issuedAtMs: typeof payload.iat === 'number' ? payload.iat * 1000 : 0,
    expiresAtMs: payload.exp * 1000,
  };
}

/** The handle on a join token that audit lines and `token revoke --id` use: its jti, hashed. */
export function joinTokenId(jti: string): string {
  return createHash('sha256').update(jti).digest('hex').slice(0, 16);
}

/** `system:serviceaccount:NS:SA` → spiffe://<td>/ns/NS/sa/SA; anything else is refused. */
export function identityFromServiceAccount(username: string, trustDomain: string): MeshIdentity {
  const account = serviceAccountOf(username);
  if (!account) {
    throw tokenInvalid(
      'subject',
      `the token subject ${JSON.stringify(username)} is not system:serviceaccount:<ns>:<sa>`,
    );
  }
  try {
    return meshIdentity(trustDomain, account.namespace, account.serviceAccount);
  } catch (error) {
    throw tokenInvalid(
      'subject',
      `the token subject ${JSON.stringify(username)} does not make a valid SPIFFE ID`,
      error,
    );
  }
}

/** `system:serviceaccount:NS:SA` → its namespace and service account; undefined for anything else. */
function serviceAccountOf(username: string): { namespace: string; serviceAccount: string } | undefined {
  const parts = username.split(':');
  if (parts.length !== 4 || parts[0] !== 'system' || parts[1] !== 'serviceaccount') return undefined;
  return { namespace: parts[2]!, serviceAccount: parts[3]! };
}

/** `--ns` and `--sa` as a token names them: refused (MUTUAL_CLI_USAGE) where no SPIFFE ID can hold them. */
export function assertServiceAccountFlags(namespace: string, serviceAccount: string): void {
  for (const [flag, value] of [
    ['--ns', namespace],
    ['--sa', serviceAccount],
  ] as const) {
    if (!isValidPathSegment(value)) {
      throw new MutualError(
        'MUTUAL_CLI_USAGE',
        `${flag} ${JSON.stringify(value)} cannot be part of a SPIFFE ID: use letters, digits, ".", "-" and "_"`,
      );
    }
  }
}

function classifyJoseError(error: unknown): MutualError {
  if (error instanceof joseErrors.JWTExpired)
    return tokenInvalid('expired', 'the token has expired; mint a new one');
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    const claim = error.claim;
    if (claim === 'nbf' || claim === 'iat')
      return tokenInvalid('not-yet-valid', 'the token is not valid yet (check clocks)');
    if (claim === 'aud')
      return tokenInvalid('audience', `the token is not for audience ${IDENTITY_AUDIENCE}`);
    return tokenInvalid('claims', `the token claim "${claim}" is wrong: ${error.reason}`);
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) {
    return tokenInvalid(
      'signature',
      'the token signature does not verify: it was not minted by this identity service',
    );
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed)
    return tokenInvalid('algorithm', 'the token is not signed with ES256');
  return tokenInvalid('malformed', 'the token is not a well-formed JWT');
}

function tokenInvalid(reason: string, message: string, cause?: unknown): MutualError {
  return new MutualError('MUTUAL_IDENTITY_TOKEN_INVALID', message, {
    detail: { reason },
    ...(cause ? { cause } : {}),
  });
}
