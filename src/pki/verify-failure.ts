// Why a certificate or chain was rejected, as data: the proxy feeds `code` to metrics and
// denial logs, and shows `message` (which names the certificate) to people.
import type { ErrorCode } from '../errors.ts';

export type VerifyReasonCode = Extract<
  ErrorCode,
  | 'MUTUAL_PKI_CERT_EXPIRED'
  | 'MUTUAL_PKI_CERT_NOT_YET_VALID'
  | 'MUTUAL_PKI_CHAIN_UNTRUSTED'
  | 'MUTUAL_PKI_SIGNATURE_INVALID'
  | 'MUTUAL_PKI_CHAIN_INVALID'
  | 'MUTUAL_PKI_CA_AS_LEAF'
  | 'MUTUAL_PKI_KEY_USAGE_INVALID'
  | 'MUTUAL_PKI_NOT_SVID'
  | 'MUTUAL_PKI_NAME_CONSTRAINT_VIOLATED'
  | 'MUTUAL_PKI_TRUST_DOMAIN_REJECTED'
  | 'MUTUAL_PKI_SPIFFE_ID_MISMATCH'
  | 'MUTUAL_PKI_PEER_NAME_MISMATCH'
  | 'MUTUAL_PKI_CERT_MALFORMED'
>;

export interface VerifyFailure {
  readonly ok: false;
  readonly code: VerifyReasonCode;
  /** Readable: names the certificate (subject, serial) and the rule it broke. */
  readonly message: string;
}

export function verifyFailure(code: VerifyReasonCode, message: string): VerifyFailure {
  return { ok: false, code, message };
}
