import { createHash, type KeyObject, randomUUID } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { Clock } from '../clock.ts';
import { MutualError } from '../errors.ts';
import { isValidPathSegment, type MeshIdentity, meshIdentity } from '../spiffe/index.ts';

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
      for (const [flag, value] of [
        ['--ns', request.namespace],
        ['--sa', request.serviceAccount],
      ] as const) {
        if (!isValidPathSegment(value)) {
          throw new MutualError(
            'MUTUAL_CLI_USAGE',
            `${flag} ${JSON.stringify(value)} cannot be part of a SPIFFE ID: use letters, digits, ".", "-" and "_"`,
          );
        }
      }
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
      const tokenId = createHash('sha256').update(String(payload.jti)).digest('hex').slice(0, 16);
      return { identity, method: 'join-token', tokenId };
    },
  };
}

/** `system:serviceaccount:NS:SA` → spiffe://<td>/ns/NS/sa/SA; anything else is refused. */
export function identityFromServiceAccount(username: string, trustDomain: string): MeshIdentity {
  const parts = username.split(':');
  if (parts.length !== 4 || parts[0] !== 'system' || parts[1] !== 'serviceaccount') {
    throw tokenInvalid(
      'subject',
      `the token subject ${JSON.stringify(username)} is not system:serviceaccount:<ns>:<sa>`,
    );
  }
  try {
    return meshIdentity(trustDomain, parts[2]!, parts[3]!);
  } catch (error) {
    throw tokenInvalid(
      'subject',
      `the token subject ${JSON.stringify(username)} does not make a valid SPIFFE ID`,
      error,
    );
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
