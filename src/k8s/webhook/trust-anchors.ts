// The mesh's trust anchors as the injector writes them into every proxy's environment: read from
// the mutual-trust-anchors ConfigMap mounted into the injector (or a file given to `mutual
// inject`), checked as PEM roots, and followed as the ConfigMap changes.
import { createHash } from 'node:crypto';
import { isMutualError, MutualError, toMutualError } from '../../errors.ts';
import { bundleToPem, parseBundlePem, parseCertificate } from '../../pki/index.ts';
import { parseSpiffeId } from '../../spiffe/index.ts';
import { readTextFile } from '../../store/index.ts';
import { type FileReloadEvent, watchFiles } from './watched-files.ts';

export interface TrustAnchors {
  /** Each root once, as PEM: what the proxies get. */
  readonly pem: string;
  readonly roots: number;
  readonly fingerprint: string;
}

/**
 * `trustDomain`, when given: the domain the injected proxies ask certificates for. Anchors made for
 * other domains only (their SPIFFE ID URI SAN, as `mutual ca create` writes) are refused: the
 * identity service under them would refuse every pod's certificate request.
 */
export async function loadTrustAnchors(file: string, trustDomain?: string): Promise<TrustAnchors> {
  let text: string;
  try {
    text = await readTextFile(file, 'trust anchors file');
  } catch (error) {
    throw new MutualError('MUTUAL_K8S_TRUST_ANCHORS_INVALID', toMutualError(error).message, { cause: error });
  }
  try {
    const bundle = parseBundlePem(text, '', file);
    if (trustDomain !== undefined) requireAnchorsFor(trustDomain, bundle.rootsDer, file);
    const pem = bundleToPem(bundle);
    const fingerprint = createHash('sha256').update(pem).digest('hex');
    return { pem, roots: bundle.rootsDer.length, fingerprint };
  } catch (error) {
    if (isMutualError(error, 'MUTUAL_K8S_TRUST_ANCHORS_INVALID')) throw error;
    throw new MutualError(
      'MUTUAL_K8S_TRUST_ANCHORS_INVALID',
      `the mesh's trust anchors are not usable: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** The trust domains roots name in a SPIFFE ID URI SAN (as `mutual ca create` writes them). */
export function anchorTrustDomains(rootsDer: readonly Buffer[]): string[] {
  const domains = new Set<string>();
  for (const der of rootsDer) {
    for (const uri of parseCertificate(der).uris) {
      try {
        domains.add(parseSpiffeId(uri).trustDomain);
      } catch {
        // Not a SPIFFE ID: says nothing about the trust domain.
      }
    }
  }
  return [...domains];
}

/** Refuses roots that name trust domains, none of them `trustDomain`; roots naming none (a company CA, cert-manager's) pass. */
export function requireAnchorsFor(trustDomain: string, rootsDer: readonly Buffer[], file: string): void {
  const domains = anchorTrustDomains(rootsDer);
  if (domains.length === 0 || domains.includes(trustDomain.toLowerCase())) return;
  throw new MutualError(
    'MUTUAL_K8S_TRUST_ANCHORS_INVALID',
    `the trust anchors in ${file} are for ${domains.join(', ')}, not for the trust domain ${trustDomain}: the identity service under them refuses certificates for spiffe://${trustDomain}/..., so meshed pods would never be ready; give --trust-domain ${domains[0]} (or the anchors of the ${trustDomain} mesh)`,
  );
}

/** Follows the file (a ConfigMap update included); a bad change is refused and the old anchors stay. */
export function watchTrustAnchors(options: {
  readonly file: string;
  readonly initial: TrustAnchors;
  readonly onChange: (anchors: TrustAnchors) => void;
  readonly onEvent: (event: FileReloadEvent) => void;
  readonly pollIntervalMs?: number;
  readonly trustDomain?: string;
}): { close(): void } {
  return watchFiles({
    files: [options.file],
    initial: options.initial,
    load: () => loadTrustAnchors(options.file, options.trustDomain),
    fingerprint: (anchors) => anchors.fingerprint,
    describe: (anchors) =>
      `new trust anchors from ${options.file} (${anchors.roots} root${anchors.roots === 1 ? '' : 's'}); pods created from now on get them`,
    onChange: options.onChange,
    onEvent: options.onEvent,
    ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
  });
}
