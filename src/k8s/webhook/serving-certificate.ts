// The webhook's serving certificate and key, read from disk (a mounted kubernetes.io/tls Secret)
// and watched: a changed pair is checked (PEM, key matches, certificate parses) before it replaces
// the one in use; a bad pair is refused with an event and the old one keeps serving.
import { createHash } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { MutualError, toMutualError } from '../../errors.ts';
import { parseCertificatesPem } from '../../pki/index.ts';
import { readTextFile } from '../../store/index.ts';
import { type FileReloadEvent, watchFiles } from './watched-files.ts';

export interface ServingCertificate {
  readonly cert: string;
  readonly key: string;
  readonly notAfterMs: number;
  /** SHA-256 of both files: equal pairs are not reloaded. */
  readonly fingerprint: string;
}

export interface ServingCertificateFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

export type CertificateReloadEvent = FileReloadEvent;

export async function loadServingCertificate(files: ServingCertificateFiles): Promise<ServingCertificate> {
  let cert: string;
  let key: string;
  try {
    [cert, key] = await Promise.all([
      readTextFile(files.certFile, 'webhook certificate'),
      readTextFile(files.keyFile, 'webhook key'),
    ]);
  } catch (error) {
    throw new MutualError('MUTUAL_K8S_WEBHOOK_CERT_INVALID', toMutualError(error).message, { cause: error });
  }
  try {
    const [leaf] = parseCertificatesPem(cert, files.certFile);
    if (!leaf) throw new Error(`${files.certFile} holds no certificate`);
    // OpenSSL refuses a key that does not belong to the certificate here.
    createSecureContext({ cert, key });
    const fingerprint = createHash('sha256').update(cert).update('\0').update(key).digest('hex');
    return { cert, key, notAfterMs: leaf.notAfterMs, fingerprint };
  } catch (error) {
    throw new MutualError(
      'MUTUAL_K8S_WEBHOOK_CERT_INVALID',
      `${files.certFile} and ${files.keyFile} are not a usable certificate and key: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

export interface CertificateWatcherOptions {
  readonly files: ServingCertificateFiles;
  readonly initial: ServingCertificate;
  readonly onChange: (certificate: ServingCertificate) => void;
  readonly onEvent: (event: CertificateReloadEvent) => void;
  /** Changes closer together than this are read once (a Secret update swaps both files). */
  readonly debounceMs?: number;
  /** Also re-read this often, in case a notification was missed; 0 turns it off. */
  readonly pollIntervalMs?: number;
}

/** Watches both files (rename-replace and Secret volume updates included) and polls as a fallback. */
export function watchServingCertificate(options: CertificateWatcherOptions): { close(): void } {
  return watchFiles({
    ...options,
    files: [options.files.certFile, options.files.keyFile],
    load: () => loadServingCertificate(options.files),
    fingerprint: (certificate) => certificate.fingerprint,
    describe: (next) =>
      `new serving certificate from ${options.files.certFile}, valid until ${new Date(next.notAfterMs).toISOString()}`,
  });
}
