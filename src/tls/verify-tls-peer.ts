import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { Clock } from '../clock.ts';
import { MutualError } from '../errors.ts';
import type { VerifyReasonCode } from '../pki/index.ts';
import { type MeshTls, peerChainDer } from './mesh-tls.ts';
import type { HandshakeFailureReason } from './peer-tls.ts';

export type PeerVerdict =
  | { readonly ok: true; readonly peerId: string }
  | { readonly ok: false; readonly reason: HandshakeFailureReason; readonly message: string };

const REASON_BY_CODE: Partial<Record<VerifyReasonCode, HandshakeFailureReason>> = {
  MUTUAL_PKI_CERT_EXPIRED: 'expired',
  MUTUAL_PKI_CERT_NOT_YET_VALID: 'not_yet_valid',
  MUTUAL_PKI_CHAIN_UNTRUSTED: 'unknown_authority',
  MUTUAL_PKI_SIGNATURE_INVALID: 'unknown_authority',
  MUTUAL_PKI_NAME_CONSTRAINT_VIOLATED: 'unknown_authority',
  MUTUAL_PKI_TRUST_DOMAIN_REJECTED: 'unknown_authority',
  MUTUAL_PKI_SPIFFE_ID_MISMATCH: 'wrong_identity',
  MUTUAL_PKI_PEER_NAME_MISMATCH: 'wrong_identity',
};

/**
 * Node's names for OpenSSL's certificate verify results (`authorizationError`, and the `code` of
 * the error a client's handshake fails with), as opposed to protocol errors (`ERR_SSL_…`) and
 * errno codes. Verify results Node has no name for come as UNSPECIFIED (a name constraint
 * violated, a key too weak for the security level).
 */
const OPENSSL_VERIFY_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'UNSPECIFIED',
]);

export function isOpensslVerifyCode(code: string): boolean {
  return OPENSSL_VERIFY_CODES.has(code);
}

/** OpenSSL's verify results (Node's `authorizationError`) as metric reasons. */
export function reasonFromOpenssl(code: string | undefined): HandshakeFailureReason {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'expired';
    case 'CERT_NOT_YET_VALID':
      return 'not_yet_valid';
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_DECRYPT_CERT_SIGNATURE':
    case 'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
    case 'CERT_UNTRUSTED':
      return 'unknown_authority';
    default:
      return 'not_svid';
  }
}

export function reasonFromVerifyCode(code: VerifyReasonCode): HandshakeFailureReason {
  return REASON_BY_CODE[code] ?? 'not_svid';
}

/** The most certificates read from a client's chain: OpenSSL already caps the message at 100 KB. */
const MAX_CLIENT_CHAIN = 10;
/** Issuers learned per generation for resumed sessions: a mesh has a handful. */
const MAX_LEARNED_ISSUERS = 64;

/**
 * Intermediates that have completed a verified client chain, per MeshTls (so per bundle): a
 * resumed TLS session brings back the client's leaf alone, and its chain is rebuilt from these.
 * Only ever a pool to build paths from, never an anchor.
 */
const learnedIssuers = new WeakMap<MeshTls, Map<string, Uint8Array>>();

/**
 * Verifies the client of an inbound mTLS connection made with `MeshTls.unverifiedServerOptions`,
 * before any byte reaches the app: the chain the client sent (leaf, then the intermediates Node
 * links to it), completed with our own intermediates (a leaf sent alone) and those learned from
 * earlier clients (a resumed session, which keeps only the leaf), all checked here against the
 * bundle as the outbound checks servers: the same rules, reasons and messages on both sides.
 */
export function verifyClientChain(socket: TLSSocket, meshTls: MeshTls, clock: Clock): PeerVerdict {
  // getPeerCertificate, not getPeerX509Certificate: under Node 24.21 every X509Certificate a
  // server takes of its peer keeps ~5 KB of native memory for good, and one per connection
  // grew a sidecar without bound (bench/README.md, "TLS server memory per handshake").
  const chain = peerChainDer(socket.getPeerCertificate(true)).slice(0, MAX_CLIENT_CHAIN);
  if (chain.length === 0) {
    return { ok: false, reason: 'no_client_certificate', message: 'the client sent no certificate' };
  }
  let learned = learnedIssuers.get(meshTls);
  if (!learned) {
    learned = new Map();
    learnedIssuers.set(meshTls, learned);
  }
  const verdict = meshTls.verifier.verifySvid([...chain, ...meshTls.ownIssuers, ...learned.values()], {
    usage: 'client',
    atMs: clock.now(),
  });
  if (!verdict.ok) return { ok: false, reason: reasonFromVerifyCode(verdict.code), message: verdict.message };
  // path: leaf, intermediates, anchor.
  for (const issuer of verdict.path.slice(1, -1)) {
    if (learned.size >= MAX_LEARNED_ISSUERS) break;
    if (!learned.has(issuer.fingerprintSha256)) learned.set(issuer.fingerprintSha256, issuer.der);
  }
  return { ok: true, peerId: verdict.spiffeId.uri };
}

/**
 * A `checkServerIdentity` hook that requires the server to be exactly `expectedId`. Node skips
 * this hook on resumed sessions, so callers must key their session cache by the expected ID
 * and the TLS generation.
 */
export function requireServerIdentity(meshTls: MeshTls, expectedId: string, clock: Clock) {
  return (_host: string, certificate: PeerCertificate): Error | undefined => {
    const verdict = meshTls.verifier.verifySvid(peerChainDer(certificate), {
      expectedId,
      usage: 'server',
      atMs: clock.now(),
    });
    if (verdict.ok) return undefined;
    return new MutualError(verdict.code, `server is not ${expectedId}: ${verdict.message}`, {
      detail: { reason: reasonFromVerifyCode(verdict.code) },
    });
  };
}
