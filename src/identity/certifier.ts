import type { Clock } from '../clock.ts';
import { isMutualError, MutualError } from '../errors.ts';
import {
  admitCsr,
  bundleToPem,
  type CertificateAuthority,
  createSvidSigner,
  type SvidSigner,
  type TrustBundle,
} from '../pki/index.ts';
import type { AuditLog } from './audit-log.ts';
import type { TokenAuthenticator } from './join-token.ts';
import { createRateLimiter, DEFAULT_RATE_LIMIT, type RateLimit } from './rate-limiter.ts';

export interface CertifyRequest {
  readonly token: string;
  readonly csr: string;
}

export interface CertifyResponse {
  readonly spiffeId: string;
  readonly serialNumber: string;
  /** PEM: the leaf, then the issuer. */
  readonly certificateChain: string;
  /** PEM: every root the workload should trust. */
  readonly trustBundle: string;
  readonly expiresAt: string;
}

export interface CertifierDeps {
  readonly authenticator: TokenAuthenticator;
  /** The issuer and bundle in force now; they change on rotation without a restart. */
  readonly currentIssuer: () => CertificateAuthority | undefined;
  readonly currentBundle: () => TrustBundle;
  readonly audit: AuditLog;
  readonly clock: Clock;
  readonly lifetimeMs: number;
  readonly skewMs: number;
  readonly rateLimit?: RateLimit;
  /** Called with the outcome of every request, for metrics. */
  readonly onOutcome?: (result: 'issued' | 'refused', reason: string) => void;
}

/** Thrown when a caller must wait; carries the seconds for Retry-After. */
export class RateLimitedError extends MutualError {
  readonly retryAfterS: number;
  constructor(identity: string, retryAfterS: number) {
    super(
      'MUTUAL_IDENTITY_RATE_LIMITED',
      `${identity} asked for certificates too often; retry in ${retryAfterS}s`,
    );
    this.retryAfterS = retryAfterS;
  }
}

/**
 * Issuance as a straight list of named checks: token valid → identity from the token →
 * within its rate limit → CSR has exactly one URI SAN equal to that identity, signed by its key →
 * sign with a skew-padded window clamped to the issuer's expiry. Every outcome is audited.
 */
export function createCertifier(deps: CertifierDeps) {
  const limiter = createRateLimiter(deps.rateLimit ?? DEFAULT_RATE_LIMIT, deps.clock);
  // One template signer per issuer: a rotated issuer gets fresh templates.
  let signer: { issuer: CertificateAuthority; sign: SvidSigner } | undefined;
  const signerFor = (issuer: CertificateAuthority): SvidSigner => {
    if (signer?.issuer !== issuer) signer = { issuer, sign: createSvidSigner(issuer) };
    return signer.sign;
  };
  return {
    /**
     * Audits a request refused at the edge, before the certifier saw it (bad JSON, too large, too
     * slow, wrong content type), so the audit log holds every refusal, not only the certifier's.
     */
    recordRefusal(error: MutualError, requester: string): void {
      deps.audit.record({
        time: new Date(deps.clock.now()).toISOString(),
        identity: '',
        result: 'refused',
        reason: error.code,
        message: error.message,
        requester,
      });
      deps.onOutcome?.('refused', error.code);
    },
    async certify(request: CertifyRequest, requester: string): Promise<CertifyResponse> {
      let identity = '';
      let method: string | undefined;
      let tokenId: string | undefined;
      try {
        // Whitespace around a token (a token file's newline) is no part of it: a JWT has none.
        const caller = await deps.authenticator.authenticate(request.token.trim());
        identity = caller.identity.id.uri;
        method = caller.method;
        tokenId = caller.tokenId || undefined;
        const retryAfterS = limiter.take(identity);
        if (retryAfterS > 0) throw new RateLimitedError(identity, retryAfterS);
        const admitted = await admitCsr(request.csr, identity);
        const issuer = deps.currentIssuer();
        if (!issuer) throw new MutualError('MUTUAL_IDENTITY_UNAVAILABLE', 'no valid issuer is loaded');
        const svid = await signerFor(issuer).issue({
          spiffeId: identity,
          publicKey: admitted.publicKey,
          clock: deps.clock,
          lifetimeMs: deps.lifetimeMs,
          skewMs: deps.skewMs,
        });
        const expiresAt = new Date(svid.notAfterMs).toISOString();
        deps.audit.record({
          time: new Date(deps.clock.now()).toISOString(),
          identity,
          result: 'issued',
          serialNumber: svid.serialNumber,
          notAfter: expiresAt,
          requester,
          method,
          ...(tokenId ? { tokenId } : {}),
        });
        deps.onOutcome?.('issued', 'ok');
        return {
          spiffeId: identity,
          serialNumber: svid.serialNumber,
          certificateChain: svid.chainPem,
          trustBundle: bundleToPem(deps.currentBundle()),
          expiresAt,
        };
      } catch (error) {
        const reason = isMutualError(error) ? error.code : 'MUTUAL_INTERNAL';
        // What was wrong, as the caller was told: which token check failed (expired, forged
        // signature, alg none...) or which name a CSR asked for. Messages never quote the token.
        const message = isMutualError(error) ? error.message : `internal error: ${String(error)}`;
        deps.audit.record({
          time: new Date(deps.clock.now()).toISOString(),
          identity,
          result: 'refused',
          reason,
          message,
          requester,
          ...(method ? { method } : {}),
          ...(tokenId ? { tokenId } : {}),
        });
        deps.onOutcome?.('refused', reason);
        throw error;
      }
    },
  };
}

export type Certifier = ReturnType<typeof createCertifier>;
