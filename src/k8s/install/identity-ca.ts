// The identity CA `mutual install` puts into the cluster: generated fresh, brought from files
// (checked the way the identity service checks a reload), or only its anchors when cert-manager
// owns the issuer Secret.
import { resolve } from 'node:path';
import type { Clock } from '../../clock.ts';
import { isMutualError, MutualError } from '../../errors.ts';
// The same checks the identity service applies to its CA files.
import { assertIssuerUnderAnchors, assertIssuesVerifiable, loadIssuer } from '../../identity/index.ts';
import {
  bundleToPem,
  createIssuer,
  createTrustAnchor,
  createTrustBundle,
  parseBundle,
  privateKeyToPem,
} from '../../pki/index.ts';
import { readTextFile, writeCaDirectory } from '../../store/index.ts';
import { DEFAULT_TRUST_DOMAIN } from '../constants.ts';
import { anchorTrustDomains, requireAnchorsFor } from '../webhook/trust-anchors.ts';
import type { IdentityCaSource } from './install-options.ts';

export interface IdentityCa {
  readonly trustDomain: string;
  /** The roots, PEM: the trust anchors ConfigMap. */
  readonly trustAnchorsPem: string;
  /** The issuer certificate (then its chain) and key, PEM: the issuer Secret; absent when managed outside. */
  readonly issuer?: { readonly certificatePem: string; readonly keyPem: string; readonly notAfterMs: number };
  /** Where a generated CA was also written (with the anchor key). */
  readonly writtenTo?: string;
}

export async function resolveIdentityCa(
  source: IdentityCaSource,
  options: { trustDomain: string | undefined; clock: Clock; cwd: string },
): Promise<IdentityCa> {
  switch (source.kind) {
    case 'generated':
      return generate(source, options);
    case 'files':
      return fromFiles(source, options);
    case 'external': {
      const path = resolve(options.cwd, source.trustAnchorsFile);
      const text = await readTextFile(path, '--identity-trust-anchors-file');
      // No issuer to read the domain from: the anchors' own, when they name exactly one.
      const named = anchorTrustDomains(parseBundle(text, DEFAULT_TRUST_DOMAIN, path).rootsDer);
      const trustDomain = options.trustDomain ?? (named.length === 1 ? named[0]! : DEFAULT_TRUST_DOMAIN);
      const bundle = parseBundle(text, trustDomain, path);
      requireAnchorsFor(trustDomain, bundle.rootsDer, path);
      return { trustDomain, trustAnchorsPem: bundleToPem(bundle) };
    }
  }
}

async function generate(
  source: Extract<IdentityCaSource, { kind: 'generated' }>,
  options: { trustDomain: string | undefined; clock: Clock; cwd: string },
): Promise<IdentityCa> {
  const trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const anchor = await createTrustAnchor({
    trustDomain,
    clock: options.clock,
    lifetimeMs: source.anchorLifetimeMs,
  });
  const issuer = await createIssuer(anchor, {
    trustDomain,
    clock: options.clock,
    lifetimeMs: source.issuerLifetimeMs,
  });
  const writtenTo = source.outDir === undefined ? undefined : resolve(options.cwd, source.outDir);
  if (writtenTo !== undefined) await writeCaDirectory(writtenTo, anchor, issuer, '--identity-ca-out');
  const bundle = createTrustBundle(trustDomain, [Buffer.from(anchor.certificate.rawData)]);
  return {
    trustDomain,
    trustAnchorsPem: bundleToPem(bundle),
    issuer: {
      certificatePem: issuer.certificatePem,
      keyPem: privateKeyToPem(issuer.keys.privateKey),
      notAfterMs: issuer.notAfterMs,
    },
    ...(writtenTo === undefined ? {} : { writtenTo }),
  };
}

/**
 * A CA of the user's own, refused unless the identity service would accept it: the issuer is a
 * CA (keyCertSign where it has keyUsage), its key matches, it is valid now, its trust domain is the one asked for,
 * it chains to a current root of the anchors file, and the certificates it signs are accepted by
 * Mutual's verifier and OpenSSL's (the identity service's start-up probe).
 */
async function fromFiles(
  source: Extract<IdentityCaSource, { kind: 'files' }>,
  options: { trustDomain: string | undefined; clock: Clock; cwd: string },
): Promise<IdentityCa> {
  const anchorsPath = resolve(options.cwd, source.trustAnchorsFile);
  const certificatePath = resolve(options.cwd, source.issuerCertificateFile);
  const keyPath = resolve(options.cwd, source.issuerKeyFile);
  const nowMs = options.clock.now();
  const texts = {
    issuerCertificatePem: await readTextFile(certificatePath, '--identity-issuer-certificate-file'),
    issuerKeyPem: await readTextFile(keyPath, '--identity-issuer-key-file'),
  };
  let issuer: ReturnType<typeof loadIssuer>;
  try {
    issuer = loadIssuer(texts, {
      nowMs,
      source: certificatePath,
      keySource: keyPath,
      // An issuer with no spiffe:// URI SAN (made for Linkerd, Istio or cert-manager) signs for
      // --trust-domain, as the identity service is told in the manifests.
      ...(options.trustDomain === undefined ? {} : { trustDomain: options.trustDomain }),
    });
  } catch (error) {
    const certified = isMutualError(error) ? error.detail?.certifiedTrustDomain : undefined;
    if (options.trustDomain === undefined || typeof certified !== 'string') throw error;
    throw new MutualError(
      'MUTUAL_PKI_ISSUER_INVALID',
      `--trust-domain ${options.trustDomain} contradicts ${certificatePath}, an issuer for trust domain ${certified}: leave --trust-domain out (it defaults to the issuer's), or give an issuer of ${options.trustDomain}`,
      { cause: error },
    );
  }
  const bundle = parseBundle(
    await readTextFile(anchorsPath, '--identity-trust-anchors-file'),
    issuer.trustDomain,
    anchorsPath,
  );
  try {
    assertIssuerUnderAnchors(issuer, bundle, nowMs, certificatePath);
  } catch (error) {
    if (!isMutualError(error, 'MUTUAL_IDENTITY_CA_RELOAD_REFUSED')) throw error;
    throw new MutualError(
      'MUTUAL_K8S_INSTALL_ISSUER_UNANCHORED',
      `${error.message.replace(/; add its root to the anchors first$/, '')} in ${anchorsPath}; refusing to install a CA whose certificates no proxy would trust`,
      { cause: error, detail: error.detail },
    );
  }
  await assertIssuesVerifiable(issuer, bundle, { nowMs, source: certificatePath });
  return {
    trustDomain: issuer.trustDomain,
    trustAnchorsPem: bundleToPem(bundle),
    issuer: {
      certificatePem: [issuer.certificatePem, ...issuer.chainPem].join(''),
      keyPem: privateKeyToPem(issuer.keys.privateKey),
      notAfterMs: issuer.notAfterMs,
    },
  };
}
