// Before an issuer serves (at start, and on every reload) it signs two throwaway certificates, as
// it will sign workloads', and both verifiers a mesh runs judge them: Mutual's own (what a sidecar
// checks of the server it calls) and OpenSSL's, in a TLS handshake over an in-memory pipe (what a
// sidecar checks of its client, and what workloads check of the identity service). A CA that
// either refuses never starts: otherwise the service would hand out certificates no peer accepts.
import { once } from 'node:events';
import { duplexPair } from 'node:stream';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { MutualError } from '../errors.ts';
import {
  bundleToPem,
  type CertificateAuthority,
  createPeerVerifier,
  decodePemOfType,
  generateKeyPair,
  issueSvid,
  privateKeyToPem,
  type TrustBundle,
  type VerifyFailure,
} from '../pki/index.ts';
import { MESH_TLS_GROUPS } from '../tls/index.ts';

const PROBE_LIFETIME_MS = 60 * 60 * 1000;
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Validity is judged by Mutual's verifier at the service's clock; OpenSSL only knows the wall clock. */
const OPENSSL_VALIDITY_ERRORS = new Set(['CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED']);

/**
 * Throws MUTUAL_PKI_ISSUER_UNVERIFIABLE, naming the certificate and the rule, when a certificate
 * this issuer signs now would be refused by a peer trusting `bundle`.
 */
export async function assertIssuesVerifiable(
  issuer: CertificateAuthority,
  bundle: TrustBundle,
  options: { nowMs: number; source: string },
): Promise<void> {
  const clock = { now: () => options.nowMs };
  const sign = async (name: string) => {
    const keys = await generateKeyPair();
    const svid = await issueSvid(issuer, {
      spiffeId: `spiffe://${issuer.trustDomain}/ns/mutual-system/sa/${name}`,
      publicKey: keys.publicKey,
      clock,
      lifetimeMs: PROBE_LIFETIME_MS,
      skewMs: 0,
    });
    return { key: privateKeyToPem(keys.privateKey), cert: svid.chainPem };
  };
  const [client, server] = await Promise.all([sign('issuer-probe-client'), sign('issuer-probe-server')]);
  const verifier = createPeerVerifier({ anchors: bundle.rootsDer, clock });
  for (const usage of ['server', 'client'] as const) {
    const chain = decodePemOfType(server.cert, ['CERTIFICATE'], 'probe').map((block) => block.der);
    const verdict = verifier.verifySvid(chain, { usage, atMs: options.nowMs });
    if (!verdict.ok) throw unverifiable(issuer, options.source, 'Mutual', verdict);
  }
  const anchorsPem = bundleToPem(bundle);
  const refusal = await opensslRefusal(client, server, anchorsPem);
  if (refusal !== undefined) {
    throw unverifiable(issuer, options.source, `OpenSSL (${refusal.side})`, {
      code: refusal.code,
      message: describeOpensslError(refusal.code),
    });
  }
}

interface Credentials {
  readonly key: string;
  readonly cert: string;
}

/** A mutual TLS handshake in memory; the first verification error either side reports, if any. */
async function opensslRefusal(
  client: Credentials,
  server: Credentials,
  anchorsPem: string,
): Promise<{ side: string; code: string } | undefined> {
  const [serverEnd, clientEnd] = duplexPair();
  const common = { ca: anchorsPem, minVersion: 'TLSv1.3', ecdhCurve: MESH_TLS_GROUPS } as const;
  // A tls.Server (never listening) given the pipe as a connection: only a server's connection
  // handler records the client's verification result.
  const tlsServer = createServer({ ...common, ...server, requestCert: true, rejectUnauthorized: false });
  const serverSide = once(tlsServer, 'secureConnection') as Promise<[TLSSocket]>;
  tlsServer.emit('connection', serverEnd);
  const clientSocket = connect({
    ...common,
    ...client,
    socket: clientEnd,
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
  });
  let serverSocket: TLSSocket | undefined;
  const timer = setTimeout(() => {
    const error = new Error('the probe handshake timed out');
    serverEnd.destroy(error);
    clientSocket.destroy(error);
    tlsServer.emit('error', error);
  }, HANDSHAKE_TIMEOUT_MS);
  try {
    [[serverSocket]] = await Promise.all([
      Promise.race([serverSide, once(tlsServer, 'tlsClientError').then(([error]) => Promise.reject(error))]),
      once(clientSocket, 'secureConnect'),
    ]);
    const errors = [
      { side: 'a client checking the server', error: clientSocket.authorizationError },
      { side: 'a server checking the client', error: serverSocket.authorizationError },
    ];
    for (const { side, error } of errors) {
      const code = error === undefined || error === null ? undefined : String(error);
      if (code !== undefined && !OPENSSL_VALIDITY_ERRORS.has(code)) return { side, code };
    }
    return undefined;
  } catch (error) {
    return { side: 'the TLS handshake', code: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
    serverSocket?.destroy();
    serverEnd.destroy();
    clientSocket.destroy();
  }
}

/** OpenSSL's verification error codes (as Node reports them) in words, with the usual cause. */
const OPENSSL_ERRORS: Record<string, string> = {
  INVALID_PURPOSE:
    'unsuitable certificate purpose: a CA certificate in the chain has an extendedKeyUsage without serverAuth or clientAuth',
  PATH_LENGTH_EXCEEDED: 'path length constraint exceeded: a CA allows fewer intermediates below it',
  PERMITTED_VIOLATION: 'a name in the certificate is outside the permitted name constraints of a CA',
  EXCLUDED_VIOLATION: 'a name in the certificate is excluded by the name constraints of a CA',
  CA_MD_TOO_WEAK: 'a CA certificate in the chain is signed with a digest too weak (SHA-1 or MD5)',
  EE_KEY_TOO_SMALL: 'a key in the chain is too small',
  CA_KEY_TOO_SMALL: 'a CA key in the chain is too small',
  INVALID_CA: 'a certificate in the chain is not a valid CA (basicConstraints or keyUsage)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the chain does not reach a trust anchor',
  UNABLE_TO_GET_ISSUER_CERT: 'the chain does not reach a trust anchor',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the chain does not reach a trust anchor',
  SELF_SIGNED_CERT_IN_CHAIN: 'the chain ends at a self-signed root that is not among the anchors',
  CERT_SIGNATURE_FAILURE: 'a signature in the chain does not verify',
};

function describeOpensslError(code: string): string {
  const words = OPENSSL_ERRORS[code];
  return words === undefined ? code : `${words} (${code})`;
}

/** What to change, for the reasons a CA made elsewhere most often has. */
function fixFor(code: string, message: string, trustDomain: string): string {
  if (code === 'MUTUAL_PKI_NAME_CONSTRAINT_VIOLATED' || /VIOLATION$/.test(code)) {
    return `re-issue the CA with name constraints that permit the trust domain's IDs (OpenSSL: nameConstraints=critical,permitted;URI:${trustDomain}), or none`;
  }
  if (/pathLenConstraint/.test(message) || code === 'PATH_LENGTH_EXCEEDED') {
    return 'sign the issuer directly under the root, or re-issue the CA above it with a larger pathlen (basicConstraints=critical,CA:TRUE,pathlen:N)';
  }
  if (/authorityKeyIdentifier/.test(message)) {
    return 're-sign the certificate with authorityKeyIdentifier=keyid among its extensions (OpenSSL 1.1 adds none unless asked)';
  }
  if (/trust anchor .*(keyUsage|basicConstraints|subjectKeyIdentifier)/.test(message)) {
    return 're-issue the root with basicConstraints=critical,CA:TRUE, keyUsage=critical,keyCertSign,cRLSign and subjectKeyIdentifier=hash, and replace it in the anchors';
  }
  if (/algorithm|MD_TOO_WEAK/.test(`${code} ${message}`)) {
    return 're-sign the certificate with SHA-256 or stronger (openssl x509 -sha256)';
  }
  if (code === 'INVALID_PURPOSE') {
    return 'give that CA extendedKeyUsage=serverAuth,clientAuth, or no extendedKeyUsage at all';
  }
  return '`mutual cert verify --bundle ANCHORS --cert CHAIN` on a certificate it signs shows the same reason';
}

function unverifiable(
  issuer: CertificateAuthority,
  source: string,
  verifier: string,
  failure: Pick<VerifyFailure, 'message'> & { code: string },
): MutualError {
  return new MutualError(
    'MUTUAL_PKI_ISSUER_UNVERIFIABLE',
    `${source}: certificates signed by ${issuer.certificate.subject} under these anchors would be refused by every peer; ${verifier} says: ${failure.message}. Fix: ${fixFor(failure.code, failure.message, issuer.trustDomain)}`,
    { detail: { verifier, reason: failure.code } },
  );
}
