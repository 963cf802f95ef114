// The PKI: keys, PEM, CSRs, the trust anchor and issuer, X.509-SVID issuance, trust bundles and
// peer verification. Pure: no network, no files, no clock but the one passed in.

export {
  type CertificateAuthority,
  createIssuer,
  createTrustAnchor,
  DEFAULT_ANCHOR_LIFETIME_MS,
  DEFAULT_ISSUER_LIFETIME_MS,
  loadAuthority,
} from './authority.ts';
export {
  BUNDLE_REFRESH_HINT_S,
  bundleToJwks,
  bundleToPem,
  createTrustBundle,
  parseBundle,
  parseBundleJwks,
  parseBundlePem,
  type SpiffeBundleJwks,
  type TrustBundle,
} from './bundle.ts';
export {
  type CertificateExtensionInfo,
  describeCertificate,
  type GeneralNameEntry,
  type KeyUsageName,
  type ParsedCertificate,
  parseCertificate,
  parseCertificatesPem,
} from './certificate.ts';
export { type AdmittedCsr, admitCsr, createCsr } from './csr.ts';
export {
  DEFAULT_SVID_LIFETIME_MS,
  DEFAULT_SVID_SKEW_MS,
  type IssuedSvid,
  type IssueSvidOptions,
  issueSvid,
  MAX_SVID_LIFETIME_MS,
} from './issue.ts';
export {
  describeKey,
  generateKeyPair,
  isSameKey,
  type KeyAlgorithm,
  type KeyDescription,
  type KeyPair,
  parsePrivateKeyPem,
  privateKeyToPem,
} from './keys.ts';
export { decodePem, decodePemOfType, encodePem, type PemBlock } from './pem.ts';
export { createSvidSigner, DEFAULT_SVID_TEMPLATE_CACHE_SIZE, type SvidSigner } from './svid-template.ts';
export {
  createPeerVerifier,
  type PathVerification,
  type PathVerifyOptions,
  type PeerName,
  type PeerVerifier,
  type PeerVerifierOptions,
  type SvidUsage,
  type SvidVerification,
  type SvidVerifyOptions,
  type VerifyFailure,
  type VerifyReasonCode,
} from './verify-peer.ts';
// The one configured @peculiar/x509 (reflect-metadata, WebCrypto provider), for certificates pki
// does not build itself (the injector webhook's serving certificate).
export { type SigningAlgorithm, signingAlgorithmFor, toCryptoKey, x509 } from './x509-library.ts';
