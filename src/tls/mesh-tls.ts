import { randomBytes, X509Certificate } from 'node:crypto';
import {
  createSecureContext,
  type PeerCertificate,
  type SecureContext,
  type SecureContextOptions,
} from 'node:tls';
import type { Clock } from '../clock.ts';
import { createPeerVerifier, decodePemOfType, encodePem, type PeerVerifier } from '../pki/index.ts';

/** What a proxy serves and connects with: always a matching key, chain and bundle. */
export interface MeshCredentials {
  readonly spiffeId: string;
  readonly privateKeyPem: string;
  /** Leaf then intermediates. */
  readonly certificateChainPem: string;
  /** Trust anchors; several while roots rotate. */
  readonly trustBundlePem: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

/**
 * One generation of TLS material built from credentials. A new certificate or bundle means a
 * new MeshTls (with a new generation number), never a mutation: old connections keep the
 * generation they were made with; new ones get the new.
 */
export interface MeshTls {
  readonly generation: number;
  readonly credentials: MeshCredentials;
  /**
   * Full options for `tls.createServer` / `setSecureContext` (which replaces everything it is
   * given), without the bundle: Mutual's servers verify client chains themselves
   * (`verifyClientChain`) after the handshake. OpenSSL 3.5 under Node 24 keeps ~5.5 KB for good
   * after every handshake in which it verified a chain the client sent with intermediates
   * (bench/README.md, "TLS server memory per handshake"); given no bundle, it verifies nothing
   * that succeeds, and the memory it keeps levels off.
   */
  readonly unverifiedServerOptions: SecureContextOptions;
  /** Our chain's intermediates (DER): a client of the same mesh that sends its leaf alone shares them. */
  readonly ownIssuers: readonly Buffer[];
  /** For `tls.connect({ secureContext })`: context options passed to connect() itself are ignored. */
  readonly clientContext: SecureContext;
  readonly verifier: PeerVerifier;
}

let nextGeneration = 1;

/** The mesh speaks TLS 1.3 only. */
export const MESH_TLS_MIN_VERSION = 'TLSv1.3';

/**
 * The key-exchange groups every Mutual TLS server and client accepts (Node's `ecdhCurve`), as
 * Linkerd and Envoy: the post-quantum hybrid, X25519, P-256, P-384. OpenSSL 3.5's default also
 * takes ffdhe2048/3072, X448 and P-521, which a hostile client picks to make each handshake cost
 * the server up to ~4x the CPU; they are refused with a handshake_failure alert. `*` marks the
 * key shares a client sends (as OpenSSL's default): X25519 beside the hybrid, so a peer without
 * ML-KEM needs no HelloRetryRequest. Give it again to every `setSecureContext`, which replaces all.
 */
export const MESH_TLS_GROUPS = '*X25519MLKEM768:*X25519:P-256:P-384';

export function createMeshTls(credentials: MeshCredentials, clock: Clock): MeshTls {
  // One PEM per root: a joined bundle whose blocks lack a final newline silently loads only the first.
  const roots = decodePemOfType(credentials.trustBundlePem, ['CERTIFICATE'], 'trust bundle');
  const ca = roots.map((block) => encodePem('CERTIFICATE', block.der));
  const base: SecureContextOptions = {
    key: credentials.privateKeyPem,
    cert: credentials.certificateChainPem,
    ca,
    minVersion: MESH_TLS_MIN_VERSION,
    maxVersion: MESH_TLS_MIN_VERSION,
    ecdhCurve: MESH_TLS_GROUPS,
  };
  // Fresh ticket keys with every generation: a ticket issued under an old bundle must not let a
  // client whose root has since been removed resume its way back in.
  const ownIssuers = issuersToCompleteClientChains(credentials.certificateChainPem);
  const ticketKeys = randomBytes(48);
  // Without `ca` Node loads its public roots instead, which never anchor an SVID chain (and no
  // CA names go out in the CertificateRequest, as with Linkerd's and Envoy's servers).
  const { ca: _bundle, ...unverifiedServerOptions } = { ...base, ticketKeys };
  return {
    generation: nextGeneration++,
    credentials,
    unverifiedServerOptions,
    ownIssuers,
    clientContext: createSecureContext(base),
    verifier: createPeerVerifier({ anchors: roots.map((block) => block.der), clock }),
  };
}

/**
 * The intermediates of our own chain, for the server to complete a client that sends only its
 * leaf (`openssl s_client -cert` without `-cert_chain`), as a workload of the same mesh shares our
 * issuer. OpenSSL takes a certificate in the store that is not self-signed as a step towards an
 * anchor, never as one (no X509_V_FLAG_PARTIAL_CHAIN), so the chain must still reach a root of
 * the bundle. Self-signed ones are left out: a root carried in our chain (Istio's cert-chain.pem)
 * but dropped from the bundle must not become trusted again.
 */
function issuersToCompleteClientChains(chainPem: string): Buffer[] {
  return decodePemOfType(chainPem, ['CERTIFICATE'], 'certificate chain')
    .slice(1)
    .filter((block) => {
      const certificate = new X509Certificate(block.der);
      return !certificate.checkIssued(certificate);
    })
    .map((block) => block.der);
}

/** The DER chain a peer presented, leaf first (Node links issuers; a self-signed root links to itself). */
export function peerChainDer(leaf: PeerCertificate | undefined): Buffer[] {
  const chain: Buffer[] = [];
  const seen = new Set<string>();
  let current = leaf as (PeerCertificate & { issuerCertificate?: PeerCertificate }) | undefined;
  while (current?.raw && !seen.has(current.fingerprint256)) {
    seen.add(current.fingerprint256);
    chain.push(current.raw);
    current = current.issuerCertificate;
  }
  return chain;
}

/**
 * The single SPIFFE ID in Node's `subjectaltname` string, or undefined when there is not exactly
 * one URI entry. SPIFFE IDs hold no commas or spaces; anything quoted is refused.
 */
export function spiffeIdFromSubjectAltName(subjectAltName: string | undefined): string | undefined {
  if (!subjectAltName || subjectAltName.includes('"')) return undefined;
  const uris = subjectAltName
    .split(', ')
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
  return uris.length === 1 && uris[0]!.startsWith('spiffe://') ? uris[0] : undefined;
}
