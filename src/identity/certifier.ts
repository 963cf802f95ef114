import type { Clock } from '../clock.ts';
import { isMutualError, MutualError } from '../errors.ts';
import { canonicalIp } from '../ip/index.ts';
import { sampledLog } from '../log/index.ts';
import {
  admitCsr,
  bundleToPem,
  type CertificateAuthority,
  createSvidSigner,
  type SvidSigner,
  type TrustBundle,
} from '../pki/index.ts';
import type { AuditEntry, AuditLog } from './audit-log.ts';
import type { AuthenticatedCaller, TokenAuthenticator } from './join-token.ts';
import {
  createRateLimiter,
  DEFAULT_AUTH_FAILURE_LIMIT,
  DEFAULT_RATE_LIMIT,
  type RateLimit,
} from './rate-limiter.ts';

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
  /** Failed authentications per client address (DEFAULT_AUTH_FAILURE_LIMIT says why these numbers). */
  readonly authFailureLimit?: RateLimit;
  /** How many client addresses the failed-authentication limit tracks at most; default 10,000. */
  readonly maxTrackedAddresses?: number;
  /** Called with the outcome of every request, for metrics. */
  readonly onOutcome?: (result: 'issued' | 'refused', reason: string) => void;
}

/** Thrown when a caller must wait; carries the seconds for Retry-After. */
export class RateLimitedError extends MutualError {
  readonly retryAfterS: number;
  constructor(
    code: 'MUTUAL_IDENTITY_RATE_LIMITED' | 'MUTUAL_IDENTITY_AUTH_FAILURES_LIMITED',
    message: string,
    retryAfterS: number,
  ) {
    super(code, message, { detail: { retryAfterS } });
    this.retryAfterS = retryAfterS;
  }
}

/** The client's address from a requester written `address:port`, canonical (IPv4-mapped IPv6 as IPv4). */
export function sourceAddressOf(requester: string): string {
  const colon = requester.lastIndexOf(':');
  const address = colon === -1 ? requester : requester.slice(0, colon);
  return canonicalIp(address) ?? address;
}

/**
 * Issuance as a straight list of named checks: the client's address within its limit of failed
 * authentications (before the token is looked at) → token valid → identity from the token →
 * within its rate limit → CSR has exactly one URI SAN equal to that identity, signed by its key →
 * sign with a skew-padded window clamped to the issuer's expiry. Every outcome is audited.
 */
export function createCertifier(deps: CertifierDeps) {
  const limiter = createRateLimiter(deps.rateLimit ?? DEFAULT_RATE_LIMIT, deps.clock);
  const failureLimit = deps.authFailureLimit ?? DEFAULT_AUTH_FAILURE_LIMIT;
  const failures = createRateLimiter(failureLimit, deps.clock, {
    maxKeys: deps.maxTrackedAddresses ?? 10_000,
  });
  // One template signer per issuer: a rotated issuer gets fresh templates.
  let signer: { issuer: CertificateAuthority; sign: SvidSigner } | undefined;
  const signerFor = (issuer: CertificateAuthority): SvidSigner => {
    if (signer?.issuer !== issuer) signer = { issuer, sign: createSvidSigner(issuer) };
    return signer.sign;
  };
  // Anyone can fail handshakes in a loop: the first of each kind is audited with its client, the
  // rest summed up, so the audit log stays bounded while every signing decision keeps its line.
  // A line that cannot be written (disk full) is dropped: the client was refused all the same, and
  // certify requests fail on their own audit line. Thrown from the summary timer, it would end the process.
  const recordDroppable = (entry: AuditEntry) => {
    try {
      deps.audit.record(entry);
    } catch {}
  };
  const summaryEntry =
    (what: string) =>
    (counts: ReadonlyMap<string, number>, total: number, seconds: number, unlisted: number): AuditEntry => ({
      time: new Date(deps.clock.now()).toISOString(),
      identity: '',
      result: 'refused',
      message: `${total} more ${what} in the last ${seconds} s, audited only in this count: ${[...counts]
        .map(([kind, count]) => `${count} ${kind}`)
        .join(', ')}${unlisted ? `, ${unlisted} of other kinds` : ''}`,
      requester: '',
      counts: Object.fromEntries(unlisted ? [...counts, ['other', unlisted]] : counts),
    });
  const handshakeRefusals = sampledLog<string, AuditEntry>({
    log: recordDroppable,
    summary: summaryEntry('failed TLS handshakes'),
  });
  // Requests refused without any identity behind them (bad JSON, wrong content type, too large or
  // too slow, an address penalised for bad tokens) and an identity's requests past its rate limit
  // are as cheap to repeat: sampled the same way, by kind (the code and what or whom it was about).
  const repeatedRefusals = sampledLog<string, AuditEntry>({
    log: recordDroppable,
    summary: summaryEntry('refused requests'),
  });
  /** The audit entry of a client refused before any identity was asked for. */
  const refusalEntry = (error: MutualError, requester: string) => ({
    time: new Date(deps.clock.now()).toISOString(),
    identity: '',
    result: 'refused' as const,
    reason: error.code,
    message: error.message,
    requester,
  });
  return {
    /**
     * Audits a refused handshake (TLS failed, plain HTTP, too slow) of kind `kind`: the first of
     * each kind in an interval with its client and message, the rest in one summary line.
     * Counted in the metrics every time.
     */
    recordHandshakeRefusal(error: MutualError, requester: string, kind: string): void {
      deps.onOutcome?.('refused', error.code);
      handshakeRefusals.report(kind, () => refusalEntry(error, requester));
    },
    /**
     * Audits a request refused at the edge, before the certifier saw it (bad JSON, too large, too
     * slow, wrong content type), of kind `kind` (what was wrong: 'content type', 'body' ...): the
     * first of each kind in an interval with its client and message, the rest in one summary line.
     * Counted in the metrics every time.
     */
    recordRefusal(error: MutualError, requester: string, kind: string): void {
      deps.onOutcome?.('refused', error.code);
      repeatedRefusals.report(`${error.code} ${kind}`, () => refusalEntry(error, requester));
    },
    /** Client addresses the failed-authentication limit tracks now (bounded; for tests and metrics). */
    trackedAddresses: () => failures.size(),
    /** `requester` is `address:port`; the address is what failed authentications are counted by. */
    async certify(request: CertifyRequest, requester: string): Promise<CertifyResponse> {
      let identity = '';
      let method: string | undefined;
      let tokenId: string | undefined;
      try {
        // Before the token is looked at: an address that sent too many bad tokens waits, and
        // costs no signature check and no TokenReview. Every request from it waits, good token
        // or not: telling them apart would take the very check being saved. A token is taken
        // now (so concurrent requests cannot all slip past) and given back unless the token
        // turns out invalid: good tokens, and an API server that could not judge one, cost nothing.
        const source = sourceAddressOf(requester);
        const waitS = failures.take(source);
        if (waitS > 0) {
          throw new RateLimitedError(
            'MUTUAL_IDENTITY_AUTH_FAILURES_LIMITED',
            `too many requests with invalid tokens came from ${source} (${failureLimit.burst} at once, then ${failureLimit.perSecond} a second); no request from it is checked for ${waitS}s: fix the token it sends, then retry after Retry-After`,
            waitS,
          );
        }
        let caller: AuthenticatedCaller;
        try {
          // Whitespace around a token (a token file's newline) is no part of it: a JWT has none.
          caller = await deps.authenticator.authenticate(request.token.trim());
        } catch (error) {
          if (!isMutualError(error, 'MUTUAL_IDENTITY_TOKEN_INVALID')) failures.giveBack(source);
          throw error;
        }
        failures.giveBack(source);
        identity = caller.identity.id.uri;
        method = caller.method;
        tokenId = caller.tokenId || undefined;
        const retryAfterS = limiter.take(identity);
        if (retryAfterS > 0) {
          throw new RateLimitedError(
            'MUTUAL_IDENTITY_RATE_LIMITED',
            `${identity} asked for certificates too often; retry in ${retryAfterS}s`,
            retryAfterS,
          );
        }
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
        const entry: AuditEntry = {
          time: new Date(deps.clock.now()).toISOString(),
          identity,
          result: 'refused',
          reason,
          message,
          requester,
          ...(method ? { method } : {}),
          ...(tokenId ? { tokenId } : {}),
        };
        // Waiting out a limit is sampled (a client can ask again at once, forever); every other
        // refusal was a decision on a token or a CSR and keeps its own line.
        if (reason === 'MUTUAL_IDENTITY_AUTH_FAILURES_LIMITED') {
          repeatedRefusals.report(`${reason} from ${sourceAddressOf(requester)}`, () => entry);
        } else if (reason === 'MUTUAL_IDENTITY_RATE_LIMITED') {
          repeatedRefusals.report(`${reason} for ${identity}`, () => entry);
        } else {
          deps.audit.record(entry);
        }
        deps.onOutcome?.('refused', reason);
        throw error;
      }
    },
  };
}

export type Certifier = ReturnType<typeof createCertifier>;
