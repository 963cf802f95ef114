import type { Clock } from '../clock.ts';
import { MutualError, toMutualError } from '../errors.ts';
import {
  createCsr,
  createPeerVerifier,
  generateKeyPair,
  parseBundlePem,
  parseCertificatesPem,
  privateKeyToPem,
} from '../pki/index.ts';
import type { MeshCredentials } from '../tls/index.ts';
import { createIdentityClient, type IdentityClient } from './identity-client.ts';
import { backoffDelayMs, certifyTimeoutMs, renewalDelayMs, retryDelayMs } from './renewal.ts';

/** What the proxy serves with: the same shape node:tls contexts are built from. */
export type WorkloadCredentials = MeshCredentials;

export interface WorkloadIdentityConfig {
  readonly spiffeId: string;
  readonly identityUrl: string;
  readonly identityServerId: string;
  /** Read on every request: projected ServiceAccount tokens are rotated on disk. */
  readonly readToken: () => Promise<string>;
  /** Roots to trust the identity service with until it hands out a bundle. */
  readonly initialBundlePem: string;
  readonly clock: Clock;
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /** How long one bundle long-poll waits; 0 turns bundle watching off. */
  readonly bundleWaitS?: number;
  readonly onEvent?: (event: WorkloadEvent) => void;
}

export type WorkloadEvent =
  | { kind: 'issued'; notAfterMs: number }
  | { kind: 'renewal-failed'; code: string; message: string; retryInMs: number }
  | { kind: 'bundle-updated'; roots: number };

/**
 * The workload side of identity: a fresh key for every certificate, a CSR, certify with retries,
 * renewal at 70% of the lifetime, and the old certificate kept while renewal fails. Ready only
 * once the first certificate has been checked (chains to the bundle, carries our own ID).
 */
export function createWorkloadIdentity(config: WorkloadIdentityConfig) {
  let credentials: WorkloadCredentials | undefined;
  let bundlePem = config.initialBundlePem;
  let bundleEtag: string | undefined;
  let isClosed = false;
  let renewTimer: NodeJS.Timeout | undefined;
  let failures = 0;
  let lastError: MutualError | undefined;
  const listeners = new Set<(credentials: WorkloadCredentials) => void>();
  let resolveReady: (credentials: WorkloadCredentials) => void = () => {};
  const ready = new Promise<WorkloadCredentials>((resolve) => {
    resolveReady = resolve;
  });
  const client: IdentityClient = createIdentityClient({
    url: config.identityUrl,
    serverId: config.identityServerId,
    trustBundlePem: () => bundlePem,
  });

  function publish(next: WorkloadCredentials) {
    credentials = next;
    resolveReady(next);
    for (const listener of listeners) listener(next);
  }

  async function obtain(): Promise<WorkloadCredentials> {
    const keys = await generateKeyPair();
    const csr = await createCsr({ privateKey: keys.privateKey, spiffeId: config.spiffeId });
    const result = await client.certify(
      await config.readToken(),
      csr,
      certifyTimeoutMs(credentials?.notAfterMs, config.clock.now()),
    );
    // Check before use: a wrong or broken certificate must never replace a working one.
    const bundle = parseBundlePem(result.trustBundle, '', 'trust bundle from the identity service');
    const chain = parseCertificatesPem(
      result.certificateChain,
      'certificate chain from the identity service',
    );
    const verdict = createPeerVerifier({ anchors: bundle.rootsDer, clock: config.clock }).verifySvid(
      chain.map((certificate) => certificate.der),
      { expectedId: config.spiffeId },
    );
    if (!verdict.ok) {
      throw new MutualError(
        verdict.code,
        `the identity service returned an unusable certificate: ${verdict.message}`,
      );
    }
    return {
      spiffeId: config.spiffeId,
      privateKeyPem: privateKeyToPem(keys.privateKey),
      certificateChainPem: result.certificateChain,
      trustBundlePem: result.trustBundle,
      notBeforeMs: chain[0]!.notBeforeMs,
      notAfterMs: chain[0]!.notAfterMs,
    };
  }

  async function renew() {
    if (isClosed) return;
    let delayMs: number;
    try {
      const next = await obtain();
      if (isClosed) return;
      bundlePem = next.trustBundlePem;
      failures = 0;
      lastError = undefined;
      publish(next);
      config.onEvent?.({ kind: 'issued', notAfterMs: next.notAfterMs });
      delayMs = renewalDelayMs(next.notBeforeMs, next.notAfterMs, config.clock.now());
    } catch (error) {
      lastError = toMutualError(error);
      // A 429's Retry-After (a limit on this identity, or on bad tokens from this address) is
      // honoured within the backoff's bounds: retrying sooner would only be refused again.
      const retryAfterMs = lastError.detail.retryAfterMs;
      delayMs = retryDelayMs(
        failures++,
        config.retryBaseMs ?? 1000,
        config.retryMaxMs ?? 30_000,
        typeof retryAfterMs === 'number' ? retryAfterMs : undefined,
      );
      config.onEvent?.({
        kind: 'renewal-failed',
        code: lastError.code,
        message: lastError.message,
        retryInMs: delayMs,
      });
    }
    if (!isClosed) renewTimer = setTimeout(renew, delayMs);
  }

  // Aborts the bundle long-poll in flight on close: it would hold a stopping process open for up to its wait.
  const bundleWatch = new AbortController();

  async function watchBundle() {
    const waitS = config.bundleWaitS ?? 30;
    let attempt = 0;
    while (!isClosed && waitS > 0) {
      try {
        const update = await client.fetchBundle(bundleEtag, waitS, bundleWatch.signal);
        attempt = 0;
        if (update && update.pem !== bundlePem) {
          const bundle = parseBundlePem(update.pem, '', 'trust bundle update');
          bundlePem = update.pem;
          if (credentials) publish({ ...credentials, trustBundlePem: update.pem });
          config.onEvent?.({ kind: 'bundle-updated', roots: bundle.rootsDer.length });
        }
        if (update) bundleEtag = update.etag;
      } catch {
        if (isClosed) return;
        await new Promise((resolve) => setTimeout(resolve, backoffDelayMs(attempt++, 1000, 30_000)).unref());
      }
    }
  }

  return {
    start() {
      void renew();
      void watchBundle();
    },
    /** Resolves with the first checked credentials. */
    ready: () => ready,
    current: () => credentials,
    /** Why the last renewal failed, while it keeps failing. */
    lastError: () => lastError,
    subscribe(listener: (credentials: WorkloadCredentials) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      isClosed = true;
      if (renewTimer) clearTimeout(renewTimer);
      bundleWatch.abort();
    },
  };
}

export type WorkloadIdentity = ReturnType<typeof createWorkloadIdentity>;
