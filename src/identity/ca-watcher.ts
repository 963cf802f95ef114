import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { dirname } from 'node:path';
import type { Clock } from '../clock.ts';
import { MutualError, toMutualError } from '../errors.ts';
import type { CertificateAuthority, TrustBundle } from '../pki/index.ts';
import { type CaFilePaths, readTextFile } from '../store/index.ts';
import { assertIssuerUnderAnchors, loadAnchors, loadIssuer } from './ca-validation.ts';

/** The issuer and the anchors in force; replaced together, never half-way. */
export interface CaState {
  readonly issuer: CertificateAuthority;
  readonly bundle: TrustBundle;
}

/** One decision about changed files: logged as an event and counted in a metric. */
export interface CaReloadEvent {
  readonly what: 'issuer' | 'trust-anchors';
  readonly result: 'accepted' | 'refused';
  readonly message: string;
  /** The error code of a refusal (the reason), e.g. MUTUAL_PKI_KEY_MISMATCH. */
  readonly code?: string;
}

export interface CaWatcherOptions {
  readonly files: CaFilePaths;
  readonly clock: Clock;
  /** Changes closer together than this are read once (a writer rarely replaces all files at once). */
  readonly debounceMs?: number;
  /** Files are also re-read this often, in case a change notification was missed; 0 turns it off. */
  readonly pollIntervalMs?: number;
  readonly onChange: (state: CaState, changed: { issuer: boolean; bundle: boolean }) => void;
  readonly onEvent: (event: CaReloadEvent) => void;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: MutualError };

/**
 * Loads the issuer and the trust anchors and checks the issuer chains to a current anchor; throws
 * when they are unusable, so a service never starts without a valid CA.
 */
export async function loadCaFiles(files: CaFilePaths, nowMs: number): Promise<CaState> {
  const [issuerCertificatePem, issuerKeyPem, anchorsText] = await Promise.all([
    readTextFile(files.issuerCertificate, 'issuer certificate'),
    readTextFile(files.issuerKey, 'issuer key'),
    readTextFile(files.trustAnchors, 'trust anchors'),
  ]);
  const issuer = loadIssuer(
    { issuerCertificatePem, issuerKeyPem },
    { nowMs, source: files.issuerCertificate, keySource: files.issuerKey },
  );
  const bundle = loadAnchors(anchorsText, { trustDomain: issuer.trustDomain, source: files.trustAnchors });
  assertIssuerUnderAnchors(issuer, bundle, nowMs, files.issuerCertificate);
  return { issuer, bundle };
}

/**
 * Watches the issuer and anchor files (their directories, so atomic rename-replace and the
 * `..data` symlink swap of Kubernetes Secret and ConfigMap mounts are seen) and swaps in a changed
 * issuer or anchor set only after checking it: the issuer is a CA whose key matches, not expired,
 * under a current anchor; the anchors still cover the issuer in use. Anything else is refused with
 * an event while the previous state keeps serving (ghostunnel's certloader, Linkerd's pain).
 */
export async function createCaWatcher(options: CaWatcherOptions) {
  const { files, clock } = options;
  let state = await loadCaFiles(files, clock.now());
  const trustDomain = state.issuer.trustDomain;
  let seen = await fingerprints();
  let isClosed = false;
  let debounce: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const watchers = new Map<string, FSWatcher>();

  async function fingerprints() {
    const read = async (path: string) => {
      try {
        return createHash('sha256')
          .update(await readTextFile(path, 'CA file'))
          .digest('hex');
      } catch {
        return 'unreadable';
      }
    };
    const [certificate, key, anchors] = await Promise.all([
      read(files.issuerCertificate),
      read(files.issuerKey),
      read(files.trustAnchors),
    ]);
    return { issuer: `${certificate}:${key}`, anchors };
  }

  async function attempt<T>(run: () => Promise<T>): Promise<Outcome<T>> {
    try {
      return { ok: true, value: await run() };
    } catch (error) {
      return { ok: false, error: toMutualError(error) };
    }
  }

  async function reloadNow(): Promise<void> {
    const now = await fingerprints();
    const isIssuerChanged = now.issuer !== seen.issuer;
    const isAnchorsChanged = now.anchors !== seen.anchors;
    if (!isIssuerChanged && !isAnchorsChanged) return;
    seen = now;
    const nowMs = clock.now();
    const newIssuer = isIssuerChanged
      ? await attempt(async () => {
          const [issuerCertificatePem, issuerKeyPem] = await Promise.all([
            readTextFile(files.issuerCertificate, 'issuer certificate'),
            readTextFile(files.issuerKey, 'issuer key'),
          ]);
          return loadIssuer(
            { issuerCertificatePem, issuerKeyPem },
            { nowMs, trustDomain, source: files.issuerCertificate, keySource: files.issuerKey },
          );
        })
      : undefined;
    const newBundle = isAnchorsChanged
      ? await attempt(async () =>
          loadAnchors(await readTextFile(files.trustAnchors, 'trust anchors'), {
            trustDomain,
            source: files.trustAnchors,
            previous: state.bundle,
          }),
        )
      : undefined;
    // Prefer both changes, then either one alone; a pair is usable when the issuer is under the anchors.
    const issuers = [...(newIssuer?.ok ? [newIssuer.value] : []), state.issuer];
    const bundles = [...(newBundle?.ok ? [newBundle.value] : []), state.bundle];
    let chosen: CaState = state;
    const chainErrors = new Map<CertificateAuthority, MutualError>();
    search: for (const issuer of issuers) {
      for (const bundle of bundles) {
        if (issuer === state.issuer && bundle === state.bundle) continue;
        const checked = await attempt(async () =>
          assertIssuerUnderAnchors(issuer, bundle, nowMs, files.issuerCertificate),
        );
        if (checked.ok) {
          chosen = { issuer, bundle };
          break search;
        }
        if (!chainErrors.has(issuer)) chainErrors.set(issuer, checked.error);
      }
    }
    if (isIssuerChanged) {
      if (newIssuer?.ok && chosen.issuer === newIssuer.value) {
        emit('issuer', 'accepted', `now signing with ${chosen.issuer.certificate.subject}`);
      } else {
        const error = newIssuer?.ok ? chainErrors.get(newIssuer.value) : newIssuer?.error;
        emit('issuer', 'refused', refusalMessage(error, 'the issuer'), error?.code);
      }
    }
    if (isAnchorsChanged) {
      if (newBundle?.ok && chosen.bundle === newBundle.value) {
        emit(
          'trust-anchors',
          'accepted',
          `now trusting ${chosen.bundle.rootsDer.length} root(s), bundle sequence ${chosen.bundle.sequence}`,
        );
      } else {
        const error = newBundle?.ok
          ? new MutualError(
              'MUTUAL_IDENTITY_CA_RELOAD_REFUSED',
              `${files.trustAnchors}: the new anchors do not cover the issuer in use (${state.issuer.certificate.subject}); switch the issuer to one under a new root before removing the old root`,
            )
          : newBundle?.error;
        emit('trust-anchors', 'refused', refusalMessage(error, 'the trust anchors'), error?.code);
      }
    }
    if (chosen !== state) {
      const changed = { issuer: chosen.issuer !== state.issuer, bundle: chosen.bundle !== state.bundle };
      state = chosen;
      options.onChange(state, changed);
    }
  }

  function refusalMessage(error: MutualError | undefined, what: string): string {
    return `${error?.message ?? `${what} could not be checked`}; the previous ${what.replace(/^the /, '')} keep${what.endsWith('s') ? '' : 's'} serving`;
  }

  function emit(
    what: CaReloadEvent['what'],
    result: CaReloadEvent['result'],
    message: string,
    code?: string,
  ) {
    options.onEvent({ what, result, message, ...(code ? { code } : {}) });
  }

  /** Reloads after the debounce; reloads never overlap. */
  function schedule() {
    if (isClosed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      running = running.then(reloadNow).catch(() => {});
    }, options.debounceMs ?? 200);
    debounce.unref();
  }

  function watchDirectories() {
    for (const dir of new Set(Object.values(files).map((path) => dirname(path)))) {
      if (watchers.has(dir)) continue;
      try {
        const watcher = watch(dir, { persistent: false }, schedule);
        watcher.on('error', () => {
          // The directory went away (or was replaced); polling finds it again.
          watcher.close();
          watchers.delete(dir);
        });
        watchers.set(dir, watcher);
      } catch {
        // Not there yet: the poll retries.
      }
    }
  }

  watchDirectories();
  const pollIntervalMs = options.pollIntervalMs ?? 30_000;
  const poll =
    pollIntervalMs > 0
      ? setInterval(() => {
          watchDirectories();
          schedule();
        }, pollIntervalMs)
      : undefined;
  poll?.unref();

  return {
    current: (): CaState => state,
    /** Re-reads the files now (after the debounce has settled, and in order with other reloads). */
    reload(): Promise<void> {
      running = running.then(reloadNow).catch(() => {});
      return running;
    },
    close() {
      isClosed = true;
      clearTimeout(debounce);
      clearInterval(poll);
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
    },
  };
}

export type CaWatcher = Awaited<ReturnType<typeof createCaWatcher>>;
