import { X509Certificate } from 'node:crypto';
import { MutualError } from '../errors.ts';
import {
  type CertificateAuthority,
  createTrustBundle,
  decodePemOfType,
  loadAuthority,
  parseBundle,
  type TrustBundle,
} from '../pki/index.ts';

/** The raw text of the CA files, as read from disk. */
export interface CaTexts {
  readonly issuerCertificatePem: string;
  readonly issuerKeyPem: string;
  readonly trustAnchorsText: string;
}

/**
 * An issuer from files, checked before use: a CA (keyCertSign where it has keyUsage), its key matches, within its
 * validity now, of the expected trust domain.
 */
export function loadIssuer(
  texts: Pick<CaTexts, 'issuerCertificatePem' | 'issuerKeyPem'>,
  options: { nowMs: number; trustDomain?: string; source: string; keySource?: string },
): CertificateAuthority {
  // With a trust domain given, an issuer without a spiffe:// URI SAN (Linkerd's step-made
  // intermediate, Istio's plug-in CA, cert-manager's defaults) signs for that trust domain.
  const issuer = loadAuthority({
    certificatePem: texts.issuerCertificatePem,
    privateKeyPem: texts.issuerKeyPem,
    clock: { now: () => options.nowMs },
    source: options.source,
    ...(options.keySource === undefined ? {} : { keySource: options.keySource }),
    ...(options.trustDomain === undefined ? {} : { trustDomain: options.trustDomain }),
  });
  if (options.trustDomain !== undefined && issuer.trustDomain !== options.trustDomain) {
    throw new MutualError(
      'MUTUAL_PKI_ISSUER_INVALID',
      `${options.source}: the issuer is for trust domain ${issuer.trustDomain}, but this identity service serves ${options.trustDomain}; a trust domain cannot change without a restart`,
    );
  }
  return issuer;
}

/** The anchors, as a bundle whose sequence follows `previous` when the roots differ from it. */
export function loadAnchors(
  text: string,
  options: { trustDomain: string; source: string; previous?: TrustBundle },
): TrustBundle {
  const parsed = parseBundle(text, options.trustDomain, options.source);
  const previous = options.previous;
  if (previous === undefined) return parsed;
  if (isSameRoots(parsed, previous)) return previous;
  return createTrustBundle(
    options.trustDomain,
    parsed.rootsDer,
    Math.max(parsed.sequence, previous.sequence + 1),
  );
}

export function isSameRoots(a: TrustBundle, b: TrustBundle): boolean {
  return (
    a.rootsDer.length === b.rootsDer.length &&
    a.rootsDer.every((der, index) => der.equals(b.rootsDer[index]!))
  );
}

/**
 * Throws unless the issuer chains (through the certificates it carries) to an anchor of `bundle`
 * that is valid now. The issuer itself may be one of the anchors (a one-tier CA).
 */
export function assertIssuerUnderAnchors(
  issuer: CertificateAuthority,
  bundle: TrustBundle,
  nowMs: number,
  source: string,
): void {
  const anchors = bundle.rootsDer.map((der) => new X509Certificate(der));
  const reached = anchorsReached(issuer, anchors, source);
  const isCurrent = (certificate: X509Certificate) =>
    Date.parse(certificate.validFrom) <= nowMs && nowMs <= Date.parse(certificate.validTo);
  if (reached.some(isCurrent)) return;
  const expiredAnchor = reached.at(-1);
  const roots = anchors.map((anchor) => subjectOf(anchor)).join('; ');
  throw new MutualError(
    'MUTUAL_IDENTITY_CA_RELOAD_REFUSED',
    expiredAnchor
      ? `${source}: the issuer ${issuer.certificate.subject} is under the anchor ${subjectOf(expiredAnchor)}, which has expired`
      : `${source}: the issuer ${issuer.certificate.subject} does not chain to any trust anchor (${roots}); add its root to the anchors first`,
    { detail: { reason: expiredAnchor ? 'anchor-expired' : 'not-under-anchor' } },
  );
}

/** The anchors of `rootsDer` the issuer chains to (through the certificates it carries), valid or not. */
export function anchorsCovering(issuer: CertificateAuthority, rootsDer: readonly Buffer[]): Buffer[] {
  const anchors = rootsDer.map((der) => new X509Certificate(der));
  const reached = new Set(anchorsReached(issuer, anchors, 'issuer'));
  return rootsDer.filter((_der, index) => reached.has(anchors[index]!));
}

function anchorsReached(
  issuer: CertificateAuthority,
  anchors: readonly X509Certificate[],
  source: string,
): X509Certificate[] {
  const chain = [
    new X509Certificate(Buffer.from(issuer.certificate.rawData)),
    ...issuer.chainPem.flatMap((pem) =>
      decodePemOfType(pem, ['CERTIFICATE'], source).map((block) => new X509Certificate(block.der)),
    ),
  ];
  const reached: X509Certificate[] = [];
  for (const [index, certificate] of chain.entries()) {
    for (const anchor of anchors) {
      const isAnchorItself = certificate.raw.equals(anchor.raw);
      if (isAnchorItself || (certificate.checkIssued(anchor) && certificate.verify(anchor.publicKey))) {
        if (!reached.includes(anchor)) reached.push(anchor);
      }
    }
    const next = chain[index + 1];
    if (!next || !certificate.checkIssued(next) || !certificate.verify(next.publicKey)) break;
  }
  return reached;
}

/** A certificate's subject on one line, as the messages name roots: `O=Mutual, CN=…`. */
export function subjectOf(certificate: X509Certificate | Buffer): string {
  const parsed = Buffer.isBuffer(certificate) ? new X509Certificate(certificate) : certificate;
  return parsed.subject.replace(/\n/g, ', ');
}
