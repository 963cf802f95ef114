// The mesh's trust anchors as the injector writes them into every proxy's environment: read from
// the mutual-trust-anchors ConfigMap mounted into the injector (or a file given to `mutual
// inject`), checked as PEM roots, and followed as the ConfigMap changes.
import { createHash } from 'node:crypto';
import { MutualError, toMutualError } from '../../errors.ts';
import { bundleToPem, parseBundlePem } from '../../pki/index.ts';
import { readTextFile } from '../../store/index.ts';
import { type FileReloadEvent, watchFiles } from './watched-files.ts';

export interface TrustAnchors {
  /** Each root once, as PEM: what the proxies get. */
  readonly pem: string;
  readonly roots: number;
  readonly fingerprint: string;
}

export async function loadTrustAnchors(file: string): Promise<TrustAnchors> {
  let text: string;
  try {
    text = await readTextFile(file, 'trust anchors file');
  } catch (error) {
    throw new MutualError('MUTUAL_K8S_TRUST_ANCHORS_INVALID', toMutualError(error).message, { cause: error });
  }
  try {
    const bundle = parseBundlePem(text, '', file);
    const pem = bundleToPem(bundle);
    const fingerprint = createHash('sha256').update(pem).digest('hex');
    return { pem, roots: bundle.rootsDer.length, fingerprint };
  } catch (error) {
    throw new MutualError(
      'MUTUAL_K8S_TRUST_ANCHORS_INVALID',
      `the mesh's trust anchors are not usable: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** Follows the file (a ConfigMap update included); a bad change is refused and the old anchors stay. */
export function watchTrustAnchors(options: {
  readonly file: string;
  readonly initial: TrustAnchors;
  readonly onChange: (anchors: TrustAnchors) => void;
  readonly onEvent: (event: FileReloadEvent) => void;
  readonly pollIntervalMs?: number;
}): { close(): void } {
  return watchFiles({
    files: [options.file],
    initial: options.initial,
    load: () => loadTrustAnchors(options.file),
    fingerprint: (anchors) => anchors.fingerprint,
    describe: (anchors) =>
      `new trust anchors from ${options.file} (${anchors.roots} root${anchors.roots === 1 ? '' : 's'}); pods created from now on get them`,
    onChange: options.onChange,
    onEvent: options.onEvent,
    ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
  });
}
