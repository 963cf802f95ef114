import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { dirname } from 'node:path';
import type { Clock } from '../clock.ts';
import { MutualError, toMutualError } from '../errors.ts';
import type { CertificateAuthority, TrustBundle } from '../pki/index.ts';
import { type CaFilePaths, readTextFile } from '../store/index.ts';
import {
  anchorsCovering,
  assertIssuerUnderAnchors,
  loadAnchors,
  loadIssuer,
  subjectOf,
} from './ca-validation.ts';
import { assertIssuesVerifiable } from './issuer-probe.ts';

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
  /** The trust domain, for issuers that do not name theirs in a spiffe:// URI SAN. */
  readonly trustDomain?: string;
  /** Changes closer together than this are read once (a writer rarely replaces all files at once). */
  readonly debounceMs?: number;
  /** Files are also re-read this often, in case a change notification was missed; 0 turns it off. */
  readonly pollIntervalMs?: number;
  /**
   * How long a certificate signed now stays valid (lifetime plus skew). A root under which
   * certificates may still be valid is kept until they have expired: dropping it from the
   * anchors is refused until then (and applied by itself afterwards). Unset: not tracked.
   */
  readonly issuedLifetimeMs?: number;
  readonly onChange: (state: CaState, changed: { issuer: boolean; bundle: boolean }) => void;
  readonly onEvent: (event: CaReloadEvent) => void;
}

/** An anchor change the watcher holds back, and what it knows about it (GET /ca on the admin port). */
export interface HeldAnchors {
  /** When it is applied by itself (the last certificate under a dropped root has expired). */
  readonly untilMs: number;
  /** The roots of the held bundle, DER. */
  readonly rootsDer: readonly Buffer[];
  /** The roots in force it would drop. */
  readonly droppingDer: readonly Buffer[];
  readonly message: string;
}

/** What the watcher has in force and what it decided last, for the admin port. */
export interface CaWatcherStatus {
  readonly state: CaState;
  readonly files: CaFilePaths;
  readonly held: HeldAnchors | undefined;
  /** Roots kept for certificates of earlier issuers, and until when. */
  readonly rootsInUse: ReadonlyArray<{ der: Buffer; untilMs: number; why: string }>;
  /** The last decision about each kind of file since the start, with when. */
  readonly lastReload: Readonly<Partial<Record<CaReloadEvent['what'], CaReloadEvent & { atMs: number }>>>;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: MutualError };

/** A root some certificate still in use may chain to, and until when. */
interface RootInUse {
  readonly der: Buffer;
  readonly untilMs: number;
  /** Whose certificates: the issuer that signed them, or what we could not know. */
  readonly why: string;
}

/**
 * Loads the issuer and the trust anchors, checks the issuer chains to a current anchor and that
 * peers would accept what it signs; throws when they are unusable, so a service never starts
 * without a valid CA.
 */
export async function loadCaFiles(
  files: CaFilePaths,
  nowMs: number,
  /** For issuers without a spiffe://<trust-domain> URI SAN; one that has one must match it. */
  trustDomain?: string,
): Promise<CaState> {
  const [issuerCertificatePem, issuerKeyPem, anchorsText] = await Promise.all([
    readTextFile(files.issuerCertificate, 'issuer certificate'),
    readTextFile(files.issuerKey, 'issuer key'),
    readTextFile(files.trustAnchors, 'trust anchors'),
  ]);
  const issuer = loadIssuer(
    { issuerCertificatePem, issuerKeyPem },
    {
      nowMs,
      source: files.issuerCertificate,
      keySource: files.issuerKey,
      ...(trustDomain === undefined ? {} : { trustDomain }),
    },
  );
  const bundle = loadAnchors(anchorsText, { trustDomain: issuer.trustDomain, source: files.trustAnchors });
  assertIssuerUnderAnchors(issuer, bundle, nowMs, files.issuerCertificate);
  await assertIssuesVerifiable(issuer, bundle, { nowMs, source: files.issuerCertificate });
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
  let state = await loadCaFiles(files, clock.now(), options.trustDomain);
  const trustDomain = state.issuer.trustDomain;
  let seen = await fingerprints();
  let isClosed = false;
  const rootsInUse: RootInUse[] = [];
  const issuedLifetimeMs = options.issuedLifetimeMs;
  /** Keeps the roots covering `issuer` until what it signed up to `nowMs` has expired. */
  const retire = (issuer: CertificateAuthority, bundle: TrustBundle, nowMs: number, why: string) => {
    if (issuedLifetimeMs === undefined) return;
    // A second of slack for a signature begun just before the switch.
    const untilMs = Math.min(nowMs + issuedLifetimeMs + 1000, issuer.notAfterMs);
    for (const der of anchorsCovering(issuer, bundle.rootsDer)) rootsInUse.push({ der, untilMs, why });
  };
  // Started mid-rotation (a root the issuer is not under): that root may have certificates
  // signed before this start, for all we know.
  {
    const covering = anchorsCovering(state.issuer, state.bundle.rootsDer);
    const others = state.bundle.rootsDer.filter((der) => !covering.some((root) => root.equals(der)));
    if (issuedLifetimeMs !== undefined) {
      for (const der of others) {
        rootsInUse.push({
          der,
          untilMs: clock.now() + issuedLifetimeMs + 1000,
          why: 'an earlier issuer (before this identity service started)',
        });
      }
    }
  }
  /** A refusal of anchors that drop a root still in use; retried on every poll, logged once. */
  let pendingDropMessage: string | undefined;
  let held: HeldAnchors | undefined;
  const lastReload: Partial<Record<CaReloadEvent['what'], CaReloadEvent & { atMs: number }>> = {};
  let retryDrop: NodeJS.Timeout | undefined;
  /**
   * The anchors file (fingerprint) an issuer file on disk was last refused under: when the anchors
   * change, the unchanged issuer file is tried again (its root added after it was copied in).
   */
  let issuerRefusedUnder: string | undefined;

  /** Refuses anchors that drop a root certificates in use may chain to (issuer: the one to sign with). */
  function assertKeepsRootsInUse(issuer: CertificateAuthority, bundle: TrustBundle, nowMs: number) {
    const inUse = [...rootsInUse];
    if (issuer !== state.issuer && issuedLifetimeMs !== undefined) {
      const untilMs = Math.min(nowMs + issuedLifetimeMs + 1000, state.issuer.notAfterMs);
      for (const der of anchorsCovering(state.issuer, state.bundle.rootsDer)) {
        inUse.push({ der, untilMs, why: `the issuer ${state.issuer.certificate.subject}` });
      }
    }
    const dropped = inUse.filter(
      (root) => root.untilMs > nowMs && !bundle.rootsDer.some((der) => der.equals(root.der)),
    );
    if (dropped.length === 0) return;
    const last = dropped.reduce((a, b) => (b.untilMs > a.untilMs ? b : a));
    const untilIso = new Date(Math.ceil(last.untilMs / 1000) * 1000).toISOString();
    throw new MutualError(
      'MUTUAL_IDENTITY_CA_RELOAD_REFUSED',
      `${files.trustAnchors}: the new anchors drop the root ${subjectOf(last.der)}, but certificates signed by ${last.why} under it stay valid until ${untilIso}, and every peer would refuse them; workloads renew onto the new issuer before then. The root stays until ${untilIso}, then this file is applied by itself (to drop a compromised root at once, restart the identity service)`,
      { detail: { reason: 'root-in-use', until: untilIso } },
    );
  }
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
    const isIssuerChanged =
      now.issuer !== seen.issuer || (issuerRefusedUnder !== undefined && now.anchors !== issuerRefusedUnder);
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
    let rootInUseError: MutualError | undefined;
    search: for (const issuer of issuers) {
      for (const bundle of bundles) {
        if (issuer === state.issuer && bundle === state.bundle) continue;
        const checked = await attempt(async () => {
          assertIssuerUnderAnchors(issuer, bundle, nowMs, files.issuerCertificate);
          await assertIssuesVerifiable(issuer, bundle, { nowMs, source: files.issuerCertificate });
        });
        if (!checked.ok) {
          if (!chainErrors.has(issuer)) chainErrors.set(issuer, checked.error);
          continue;
        }
        if (bundle !== state.bundle) {
          const kept = await attempt(async () => assertKeepsRootsInUse(issuer, bundle, nowMs));
          if (!kept.ok) {
            rootInUseError ??= kept.error;
            continue;
          }
        }
        chosen = { issuer, bundle };
        break search;
      }
    }
    if (isIssuerChanged) {
      const isAccepted = newIssuer?.ok === true && chosen.issuer === newIssuer.value;
      issuerRefusedUnder = isAccepted ? undefined : now.anchors;
      if (isAccepted) {
        emit(
          'issuer',
          'accepted',
          `now signing with ${chosen.issuer.certificate.subject}${nextStep(chosen, nowMs)}`,
        );
      } else {
        const error = newIssuer?.ok ? chainErrors.get(newIssuer.value) : newIssuer?.error;
        emit('issuer', 'refused', refusalMessage(error, 'the issuer'), error?.code);
      }
    }
    if (isAnchorsChanged && rootInUseError && !(newBundle?.ok && chosen.bundle === newBundle.value)) {
      // Retried on the next poll; said once.
      seen = { ...seen, anchors: 'waiting for certificates under a dropped root to expire' };
      clearTimeout(retryDrop);
      const untilMs = Date.parse(String(rootInUseError.detail.until));
      retryDrop = setTimeout(schedule, Math.max(0, untilMs - clock.now()) + 100);
      retryDrop.unref();
      if (newBundle?.ok) {
        const heldBundle = newBundle.value;
        held = {
          untilMs,
          rootsDer: heldBundle.rootsDer,
          droppingDer: state.bundle.rootsDer.filter(
            (der) => !heldBundle.rootsDer.some((root) => root.equals(der)),
          ),
          message: rootInUseError.message,
        };
      }
      if (rootInUseError.message !== pendingDropMessage) {
        pendingDropMessage = rootInUseError.message;
        emit(
          'trust-anchors',
          'refused',
          refusalMessage(rootInUseError, 'the trust anchors'),
          rootInUseError.code,
        );
      }
    } else if (isAnchorsChanged) {
      pendingDropMessage = undefined;
      held = undefined;
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
      if (changed.issuer)
        retire(state.issuer, state.bundle, nowMs, `the issuer ${state.issuer.certificate.subject}`);
      state = chosen;
      options.onChange(state, changed);
    }
  }

  /** After an issuer switch to another root: until when the old root must stay in the anchors. */
  function nextStep(next: CaState, nowMs: number): string {
    if (issuedLifetimeMs === undefined) return '';
    const newRoots = anchorsCovering(next.issuer, next.bundle.rootsDer);
    const oldRoots = anchorsCovering(state.issuer, state.bundle.rootsDer).filter(
      (der) => !newRoots.some((root) => root.equals(der)),
    );
    if (oldRoots.length === 0) return '';
    const untilMs = Math.min(nowMs + issuedLifetimeMs + 1000, state.issuer.notAfterMs);
    const untilIso = new Date(Math.ceil(untilMs / 1000) * 1000).toISOString();
    const names = oldRoots.map((der) => subjectOf(der)).join('; ');
    return `, under another root. Certificates from the previous issuer stay valid until ${untilIso}: keep its root (${names}) in the anchors until then; workloads move to the new issuer as they renew. A bundle without it is held until that time`;
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
    const event = { what, result, message, ...(code ? { code } : {}) };
    lastReload[what] = { ...event, atMs: clock.now() };
    options.onEvent(event);
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
    status: (): CaWatcherStatus => ({
      state,
      files,
      held,
      rootsInUse: rootsInUse.filter((root) => root.untilMs > clock.now()),
      lastReload: { ...lastReload },
    }),
    /** Re-reads the files now (after the debounce has settled, and in order with other reloads). */
    reload(): Promise<void> {
      running = running.then(reloadNow).catch(() => {});
      return running;
    },
    close() {
      isClosed = true;
      clearTimeout(debounce);
      clearInterval(poll);
      clearTimeout(retryDrop);
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
    },
  };
}

export type CaWatcher = Awaited<ReturnType<typeof createCaWatcher>>;
