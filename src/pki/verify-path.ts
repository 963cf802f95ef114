// RFC 5280 path building and validation: from the peer's leaf, through the intermediates it
// sent, to a trust anchor. Depth-first with backtracking, so a bad candidate (expired cross-sign,
// wrong key under a reused name) does not hide a good path. Pure: the time comes in as `atMs`.

import { checkIssuer, isAllowedSignatureAlgorithm, verifiesWith } from './cert-profile.ts';
import { describeCertificate, type ParsedCertificate } from './certificate.ts';
import { checkNameConstraints } from './name-constraints.ts';
import { type VerifyFailure, verifyFailure } from './verify-failure.ts';

export const DEFAULT_MAX_CHAIN_DEPTH = 8;
/** Hard ceilings against hostile inputs, whatever maxChainDepth says. */
const MAX_PATH_CERTIFICATES = 16;
const MAX_SIGNATURE_CHECKS = 128;

export interface TrustAnchors {
  readonly certificates: readonly ParsedCertificate[];
  readonly bySubject: ReadonlyMap<string, readonly ParsedCertificate[]>;
  readonly fingerprints: ReadonlySet<string>;
}

export interface PathOptions {
  readonly atMs: number;
  readonly skewMs: number;
  /** How many intermediates (self-issued ones not counted, as for pathLenConstraint) may sit between leaf and anchor. */
  readonly maxChainDepth: number;
}

export type PathResult = { readonly ok: true; readonly path: readonly ParsedCertificate[] } | VerifyFailure;

export function createTrustAnchors(certificates: readonly ParsedCertificate[]): TrustAnchors {
  const bySubject = new Map<string, ParsedCertificate[]>();
  for (const cert of certificates) {
    bySubject.set(cert.subjectNameKey, [...(bySubject.get(cert.subjectNameKey) ?? []), cert]);
  }
  return {
    certificates,
    bySubject,
    fingerprints: new Set(certificates.map((cert) => cert.fingerprintSha256)),
  };
}

/** The validity window check, shared with the verifier's cache. */
export function checkValidity(
  cert: ParsedCertificate,
  atMs: number,
  skewMs: number,
): VerifyFailure | undefined {
  if (atMs + skewMs < cert.notBeforeMs) {
    return verifyFailure(
      'MUTUAL_PKI_CERT_NOT_YET_VALID',
      `${describeCertificate(cert)} is not valid until ${new Date(cert.notBeforeMs).toISOString()} (checked at ${new Date(atMs).toISOString()})`,
    );
  }
  if (atMs - skewMs > cert.notAfterMs) {
    return verifyFailure(
      'MUTUAL_PKI_CERT_EXPIRED',
      `${describeCertificate(cert)} expired at ${new Date(cert.notAfterMs).toISOString()} (checked at ${new Date(atMs).toISOString()})`,
    );
  }
  return undefined;
}

/**
 * Finds a valid path leaf → … → anchor. The leaf's own profile (SVID or Web PKI rules) is the
 * caller's job; this checks its validity window and everything above it. On failure it reports
 * the failure found deepest along any candidate path, or CHAIN_UNTRUSTED if no issuer was found.
 */
export function validatePath(
  leaf: ParsedCertificate,
  intermediates: readonly ParsedCertificate[],
  anchors: TrustAnchors,
  options: PathOptions,
): PathResult {
  const leafTime = checkValidity(leaf, options.atMs, options.skewMs);
  if (leafTime !== undefined) return leafTime;
  const pool = dedupe(intermediates.filter((cert) => !anchors.fingerprints.has(cert.fingerprintSha256)));
  let best: { depth: number; failure: VerifyFailure } | undefined;
  // The longest path of good signatures found: where the chain stops, for the message.
  let reached: readonly ParsedCertificate[] = [leaf];
  let signatureChecks = 0;
  const record = (depth: number, failure: VerifyFailure) => {
    if (best === undefined || depth > best.depth) best = { depth, failure };
  };

  const extend = (path: ParsedCertificate[]): ParsedCertificate[] | undefined => {
    const child = path[path.length - 1]!;
    for (const { cert, isAnchor } of candidates(child, pool, anchors)) {
      if (path.some((inPath) => inPath.fingerprintSha256 === cert.fingerprintSha256)) continue;
      if (signatureChecks++ >= MAX_SIGNATURE_CHECKS) {
        record(Number.MAX_SAFE_INTEGER, invalidChain('path building gave up: too many candidate issuers'));
        return undefined;
      }
      if (!verifiesWith(child, cert)) {
        // Only a claimed issuer (matching key identifier) makes a bad signature news; a
        // same-named CA with another key is just not the issuer.
        const akid = child.authorityKeyIdentifier?.keyIdentifier;
        if (akid !== undefined && akid === cert.subjectKeyIdentifier) {
          record(
            path.length,
            verifyFailure(
              'MUTUAL_PKI_SIGNATURE_INVALID',
              `the signature of ${describeCertificate(child)} does not verify with the key of ${describeCertificate(cert)}`,
            ),
          );
        }
        continue;
      }
      const failure = checkEdge(path, cert, isAnchor, options);
      if (failure !== undefined) {
        record(path.length, failure);
        continue;
      }
      const next = [...path, cert];
      if (next.length > reached.length) reached = next;
      if (isAnchor) {
        const constraints = checkNameConstraints(next);
        if (constraints === undefined) return next;
        record(next.length, constraints);
        continue;
      }
      const found = extend(next);
      if (found !== undefined) return found;
    }
    return undefined;
  };

  const path = extend([leaf]);
  if (path !== undefined) return { ok: true, path };
  return (
    best?.failure ??
    verifyFailure(
      'MUTUAL_PKI_CHAIN_UNTRUSTED',
      `no chain from ${describeCertificate(leaf)} (issuer "${leaf.issuer}") to a trusted anchor${whereChainStops(reached, pool.length)}`,
    )
  );
}

/**
 * Which certificate is missing, said the way a user fixes it: a cert.pem holding the leaf alone
 * lacks the intermediate; a chain whose top is no root's child lacks its root in the bundle.
 */
function whereChainStops(reached: readonly ParsedCertificate[], sent: number): string {
  const top = reached[reached.length - 1]!;
  if (reached.length > 1)
    return `: it reaches ${describeCertificate(top)}, whose issuer "${top.issuer}" is not a root of the trust bundle`;
  return sent === 0
    ? `: the leaf came alone, and its issuer is not a root of the trust bundle; send the intermediate "${top.issuer}" after the leaf`
    : `: neither the ${sent} certificate${sent === 1 ? '' : 's'} sent with it nor the roots of the trust bundle are its issuer`;
}

/** Checks `issuer` as the next certificate above `path`. */
function checkEdge(
  path: readonly ParsedCertificate[],
  issuer: ParsedCertificate,
  isAnchor: boolean,
  options: PathOptions,
): VerifyFailure | undefined {
  const child = path[path.length - 1]!;
  if (!isAllowedSignatureAlgorithm(child.signatureAlgorithm)) {
    return invalidChain(
      `${describeCertificate(child)} is signed with a disallowed algorithm ${child.signatureAlgorithm}`,
    );
  }
  const profile = checkIssuer(issuer, isAnchor);
  if (profile !== undefined) return profile;
  const time = checkValidity(issuer, options.atMs, options.skewMs);
  if (time !== undefined) return time;
  // RFC 5280 §6.1.4 (l)/(m): self-issued intermediates do not count against path lengths.
  const below = path.slice(1).filter((cert) => !cert.isSelfIssued).length;
  if (issuer.pathLength !== undefined && below > issuer.pathLength) {
    return invalidChain(
      `${describeCertificate(issuer)} allows ${issuer.pathLength} intermediate CA(s) below it (pathLenConstraint) but has ${below}`,
    );
  }
  const depth = below + (!isAnchor && !issuer.isSelfIssued ? 1 : 0);
  if (depth > options.maxChainDepth || path.length + 1 > MAX_PATH_CERTIFICATES) {
    return invalidChain(`the chain needs more than the allowed ${options.maxChainDepth} intermediate(s)`);
  }
  return undefined;
}

function* candidates(
  child: ParsedCertificate,
  pool: readonly ParsedCertificate[],
  anchors: TrustAnchors,
): Generator<{ cert: ParsedCertificate; isAnchor: boolean }> {
  const akid = child.authorityKeyIdentifier?.keyIdentifier;
  const all = [
    ...(anchors.bySubject.get(child.issuerNameKey) ?? []).map((cert) => ({ cert, isAnchor: true })),
    ...pool
      .filter((cert) => cert.subjectNameKey === child.issuerNameKey)
      .map((cert) => ({ cert, isAnchor: false })),
  ];
  // Key identifier matches first (stable sort keeps anchors ahead of intermediates).
  const rank = (cert: ParsedCertificate) =>
    akid !== undefined && cert.subjectKeyIdentifier === akid ? 0 : 1;
  yield* all.sort((a, b) => rank(a.cert) - rank(b.cert));
}

function dedupe(certs: readonly ParsedCertificate[]): ParsedCertificate[] {
  const seen = new Set<string>();
  return certs.filter((cert) => !seen.has(cert.fingerprintSha256) && seen.add(cert.fingerprintSha256));
}

function invalidChain(message: string): VerifyFailure {
  return verifyFailure('MUTUAL_PKI_CHAIN_INVALID', message);
}
