// The webhook's serving certificate and key, read from disk (a mounted kubernetes.io/tls Secret)
// and watched: a changed pair is checked (PEM, key matches, certificate parses) before it replaces
// the one in use; a bad pair is refused with an event and the old one keeps serving.
import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { dirname } from 'node:path';
import { createSecureContext } from 'node:tls';
import { MutualError, toMutualError } from '../../errors.ts';
import { parseCertificatesPem } from '../../pki/index.ts';
import { readTextFile } from '../../store/index.ts';

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

export interface CertificateReloadEvent {
  readonly result: 'accepted' | 'refused';
  readonly message: string;
  readonly code?: string;
}

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

/**
 * Watches the directories of both files, so atomic rename-replace and the `..data` symlink swap
 * of Secret volumes are seen, and polls as a fallback.
 */
export function watchServingCertificate(options: CertificateWatcherOptions): { close(): void } {
  let current = options.initial;
  let lastRefused = '';
  let debounce: NodeJS.Timeout | undefined;
  let isClosed = false;
  let running = Promise.resolve();
  const reload = async () => {
    let next: ServingCertificate;
    try {
      next = await loadServingCertificate(options.files);
    } catch (error) {
      const refusal = toMutualError(error);
      // A half-written pair is seen once per distinct problem, not on every poll.
      if (refusal.message !== lastRefused && !isClosed) {
        lastRefused = refusal.message;
        options.onEvent({ result: 'refused', message: refusal.message, code: refusal.code });
      }
      return;
    }
    lastRefused = '';
    if (isClosed || next.fingerprint === current.fingerprint) return;
    current = next;
    options.onChange(next);
    options.onEvent({
      result: 'accepted',
      message: `new serving certificate from ${options.files.certFile}, valid until ${new Date(next.notAfterMs).toISOString()}`,
    });
  };
  const schedule = () => {
    if (isClosed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      running = running.then(reload);
    }, options.debounceMs ?? 200);
    debounce.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set([dirname(options.files.certFile), dirname(options.files.keyFile)])) {
    try {
      const watcher = watch(dir, schedule);
      watcher.on('error', () => {});
      watchers.push(watcher);
    } catch {
      // The poll below still sees changes.
    }
  }
  const pollMs = options.pollIntervalMs ?? 30_000;
  const poll = pollMs > 0 ? setInterval(schedule, pollMs) : undefined;
  poll?.unref();
  return {
    close() {
      isClosed = true;
      clearTimeout(debounce);
      clearInterval(poll);
      for (const watcher of watchers) watcher.close();
    },
  };
}
