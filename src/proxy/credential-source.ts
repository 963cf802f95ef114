import { type FSWatcher, watch } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Clock } from '../clock.ts';
import type { ProxyCredentialsConfig } from '../config/index.ts';
import { MutualError, toMutualError } from '../errors.ts';
import {
  createPeerVerifier,
  encodePem,
  isSameKey,
  type ParsedCertificate,
  parseBundlePem,
  parseCertificate,
} from '../pki/index.ts';
import type { MeshCredentials } from '../tls/index.ts';
import { createWorkloadIdentity, renewalDelayMs } from '../workload/index.ts';
import {
  certificatesToPem,
  describeInChain,
  keyToPem,
  parseBundleFile,
  parseChainFile,
  parseKeyFile,
  readCredentialBytes,
} from './credential-files.ts';
import type { ProxyLog } from './proxy-log.ts';

export interface CredentialStatus {
  readonly result: 'none' | 'ok' | 'failed';
  readonly atMs?: number;
  readonly error?: { code: string; message: string };
  readonly nextRenewalMs?: number;
}

/** Where a proxy's certificate comes from: the identity service, or files on disk. */
export interface CredentialSource {
  start(): void;
  current(): MeshCredentials | undefined;
  subscribe(listener: (credentials: MeshCredentials) => void): void;
  status(): CredentialStatus;
  /** Reload now (SIGHUP); a no-op for the identity service, which renews on its own. */
  reload(): void;
  close(): void;
}

export interface CredentialDeps {
  readonly clock: Clock;
  readonly log: ProxyLog;
  readonly onResult: (result: 'issued' | 'reloaded' | 'failed') => void;
}

export function createCredentialSource(
  config: ProxyCredentialsConfig,
  deps: CredentialDeps,
): CredentialSource {
  return config.kind === 'files' ? fileCredentials(config, deps) : identityServiceCredentials(config, deps);
}

function identityServiceCredentials(
  config: Extract<ProxyCredentialsConfig, { kind: 'identity-service' }>,
  deps: CredentialDeps,
): CredentialSource {
  let status: CredentialStatus = { result: 'none' };
  const listeners: ((credentials: MeshCredentials) => void)[] = [];
  let identity: ReturnType<typeof createWorkloadIdentity> | undefined;
  let isClosed = false;
  const trustDomain = new URL(config.spiffeId).host;
  return {
    start() {
      void (async () => {
        // The PEM the injector put in the environment, or the file; either must hold usable roots.
        const initialBundlePem =
          config.identityBundlePem ??
          (await readCredentialFile(config.identityBundleFile ?? '', '--identity-bundle'));
        // Closed while the file was read (a listener failed to bind): a renewal loop started now
        // would keep the process alive with nothing listening.
        if (isClosed) return;
        parseBundlePem(initialBundlePem, '', config.identityBundleFile ?? 'the identity bundle PEM');
        identity = createWorkloadIdentity({
          spiffeId: config.spiffeId,
          identityUrl: config.identityUrl,
          identityServerId: config.identityServerId ?? `spiffe://${trustDomain}/ns/mutual-system/sa/identity`,
          readToken: async () => (await readCredentialFile(config.tokenFile, '--token-file')).trim(),
          initialBundlePem,
          clock: deps.clock,
          onEvent: (event) => {
            if (event.kind === 'issued') {
              const current = identity?.current();
              status = {
                result: 'ok',
                atMs: deps.clock.now(),
                nextRenewalMs:
                  current &&
                  deps.clock.now() +
                    renewalDelayMs(current.notBeforeMs, current.notAfterMs, deps.clock.now()),
              };
              deps.onResult('issued');
              deps.log.info('certificate issued', {
                spiffeId: config.spiffeId,
                notAfter: new Date(event.notAfterMs).toISOString(),
              });
            } else if (event.kind === 'renewal-failed') {
              status = {
                ...status,
                result: 'failed',
                atMs: deps.clock.now(),
                error: { code: event.code, message: event.message },
              };
              deps.onResult('failed');
              deps.log.warn('certificate renewal failed', {
                code: event.code,
                error: event.message,
                retryInMs: event.retryInMs,
              });
            } else {
              deps.log.info('trust bundle updated', { roots: event.roots });
            }
          },
        });
        identity.subscribe((credentials) => {
          for (const listener of listeners) listener(credentials);
        });
        identity.start();
      })().catch((error: unknown) => {
        status = recordFailure(deps, error, 'error', 'cannot start certificate renewal');
      });
    },
    current: () => identity?.current(),
    subscribe: (listener) => void listeners.push(listener),
    status: () => status,
    reload() {},
    close() {
      isClosed = true;
      identity?.close();
    },
  };
}

function fileCredentials(
  config: Extract<ProxyCredentialsConfig, { kind: 'files' }>,
  deps: CredentialDeps,
): CredentialSource {
  let credentials: MeshCredentials | undefined;
  let status: CredentialStatus = { result: 'none' };
  const listeners: ((credentials: MeshCredentials) => void)[] = [];
  const watchers: FSWatcher[] = [];
  let debounce: NodeJS.Timeout | undefined;
  let isLoading = false;
  let isPending = false;
  // Timers set by the last load: a reload when a not-yet-valid certificate becomes valid, and
  // warnings as the certificate in use nears and reaches its expiry (no one renews files here).
  let retryTimer: NodeJS.Timeout | undefined;
  let expiryTimers: NodeJS.Timeout[] = [];
  let isClosed = false;

  const at = (atMs: number, run: () => void): NodeJS.Timeout => {
    // setTimeout takes at most 2^31-1 ms (24.8 days); a later moment is reached in steps.
    const delay = Math.max(0, atMs - deps.clock.now());
    const timer = setTimeout(
      () => (delay > MAX_TIMER_MS ? replaceTimer(timer, at(atMs, run)) : run()),
      Math.min(delay, MAX_TIMER_MS),
    );
    timer.unref();
    return timer;
  };
  const replaceTimer = (old: NodeJS.Timeout, next: NodeJS.Timeout) => {
    if (retryTimer === old) retryTimer = next;
    expiryTimers = expiryTimers.map((timer) => (timer === old ? next : timer));
  };

  /** Warns once 80 % of the lifetime has passed, and again at expiry, unless other files came since. */
  function watchExpiry(loaded: MeshCredentials) {
    for (const timer of expiryTimers) clearTimeout(timer);
    const soonMs = loaded.notBeforeMs + 0.8 * (loaded.notAfterMs - loaded.notBeforeMs);
    const fields = {
      spiffeId: loaded.spiffeId,
      notAfter: new Date(loaded.notAfterMs).toISOString(),
      cert: config.certFile,
    };
    expiryTimers = [
      at(soonMs, () =>
        deps.log.warn('certificate expires soon: replace the files (this proxy does not renew them)', {
          ...fields,
          expiresInS: Math.max(0, Math.round((loaded.notAfterMs - deps.clock.now()) / 1000)),
        }),
      ),
      at(loaded.notAfterMs, () =>
        deps.log.warn(
          'certificate expired: every peer refuses it, /ready answers 503 until new files come',
          fields,
        ),
      ),
    ];
  }

  async function load() {
    if (isLoading) {
      isPending = true;
      return;
    }
    isLoading = true;
    try {
      const next = await loadCredentialFiles(config, deps.clock);
      const isChanged =
        !credentials ||
        next.certificateChainPem !== credentials.certificateChainPem ||
        next.trustBundlePem !== credentials.trustBundlePem ||
        next.privateKeyPem !== credentials.privateKeyPem;
      status = { result: 'ok', atMs: deps.clock.now() };
      clearTimeout(retryTimer);
      if (isChanged) {
        credentials = next;
        if (!isClosed) watchExpiry(next);
        deps.onResult('reloaded');
        deps.log.info('credentials loaded', {
          spiffeId: next.spiffeId,
          notAfter: new Date(next.notAfterMs).toISOString(),
        });
        for (const listener of listeners) listener(next);
      }
    } catch (error) {
      const message = credentials
        ? 'new credentials refused; the old ones keep serving'
        : 'credentials not usable';
      status = recordFailure(deps, error, 'warn', message);
      // Not valid yet (issued by a machine whose clock is ahead, or renewed early by another
      // process): load again once it is, rather than wait for a change that may never come.
      const validFromMs = error instanceof MutualError ? error.detail.validFromMs : undefined;
      clearTimeout(retryTimer);
      if (typeof validFromMs === 'number' && !isClosed) {
        retryTimer = at(validFromMs + 100, () => void load());
      }
    } finally {
      isLoading = false;
      if (isPending) {
        isPending = false;
        void load();
      }
    }
  }

  const schedule = () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => void load(), 150);
  };
  return {
    start() {
      void load();
      // Watch the directories, not the files: editors and Kubernetes replace files by renaming.
      const dirs = new Set(
        [config.certFile, config.keyFile, config.bundleFile].map((file) => dirname(resolve(file))),
      );
      for (const dir of dirs) {
        try {
          watchers.push(watch(dir, schedule));
        } catch (error) {
          deps.log.warn('cannot watch credential directory; reload with SIGHUP', {
            dir,
            error: (error as Error).message,
          });
        }
      }
    },
    current: () => credentials,
    subscribe: (listener) => void listeners.push(listener),
    status: () => status,
    reload: () => void load(),
    close() {
      isClosed = true;
      clearTimeout(debounce);
      clearTimeout(retryTimer);
      for (const timer of expiryTimers) clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
    },
  };
}

/** Reads and checks a static credential set: key matches the leaf, the chain is a valid SVID under the bundle. */
export async function loadCredentialFiles(
  config: { certFile: string; keyFile: string; bundleFile: string },
  clock: Clock,
): Promise<MeshCredentials> {
  const [chainBytes, keyBytes, bundleBytes] = await Promise.all([
    readCredentialBytes(config.certFile, '--cert'),
    readCredentialBytes(config.keyFile, '--key'),
    readCredentialBytes(config.bundleFile, '--bundle'),
  ]);
  const chain = parseChainFile(chainBytes, config.certFile);
  const key = parseKeyFile(keyBytes, config.keyFile);
  const bundle = parseBundleFile(bundleBytes, config.bundleFile);
  const leaf = chain[0];
  if (!leaf)
    throw new MutualError('MUTUAL_PROXY_CREDENTIALS_INVALID', `${config.certFile} holds no certificate`);
  if (!isSameKey(key.publicKey, leaf.publicKey)) {
    const index = chain.findIndex((certificate) => isSameKey(key.publicKey, certificate.publicKey));
    if (index > 0) {
      throw new MutualError(
        'MUTUAL_PROXY_CREDENTIALS_INVALID',
        `${config.certFile} is in the wrong order: the certificate of ${config.keyFile} is ${describeInChain(chain[index]!, index)}, but ${describeInChain(leaf, 0)} comes first; put the leaf first, then its intermediates (cat leaf.pem intermediate.pem > ${config.certFile})`,
        { detail: { reason: 'chain-order' } },
      );
    }
    throw new MutualError(
      'MUTUAL_PROXY_CREDENTIALS_INVALID',
      `${config.keyFile} is not the key of the certificate in ${config.certFile}: pair each certificate with its own key`,
    );
  }
  const verdict = createPeerVerifier({ anchors: bundle.rootsDer, clock }).verifySvid(
    chain.map((certificate) => certificate.der),
    { usage: 'any' },
  );
  if (!verdict.ok) {
    // When it is a matter of time: the moment the last certificate of the chain becomes valid.
    const validFromMs = Math.max(
      ...chain.map((certificate) => certificate.notBeforeMs),
      ...bundle.rootsDer.map((root) => parseCertificate(root).notBeforeMs),
    );
    throw new MutualError(
      'MUTUAL_PROXY_CREDENTIALS_INVALID',
      `${config.certFile} is not usable with the roots in ${config.bundleFile}: ${verdict.message}${fixFor(verdict.code, leaf)}`,
      {
        detail: {
          reason: verdict.code,
          ...(verdict.code === 'MUTUAL_PKI_CERT_NOT_YET_VALID' && validFromMs > clock.now()
            ? { validFromMs }
            : {}),
        },
      },
    );
  }
  return {
    spiffeId: verdict.spiffeId.uri,
    // Re-encoded: certificates only in the chain and bundle, one PKCS#8 key, whatever else the
    // files held (a key beside the chain must never travel as part of it).
    privateKeyPem: keyToPem(key),
    certificateChainPem: certificatesToPem(chain),
    trustBundlePem: bundle.rootsDer.map((der) => encodePem('CERTIFICATE', der)).join(''),
    notBeforeMs: leaf.notBeforeMs,
    notAfterMs: leaf.notAfterMs,
  };
}

/** What to do about a leaf that is no X.509-SVID, as most PKIs issue them (DNS names only). */
function fixFor(code: string, leaf: ParsedCertificate): string {
  if (code !== 'MUTUAL_PKI_NOT_SVID') return '';
  const dnsSpiffe = leaf.dnsNames.find((name) => name.startsWith('spiffe://'));
  const written = dnsSpiffe
    ? `. Its DNS SAN "${dnsSpiffe}" must be a URI SAN instead (cfssl writes each "hosts" entry it does not take for a URI as a DNS name)`
    : '';
  return `${written}. Mutual names each workload by the SPIFFE ID in exactly one URI SAN: issue one with \`mutual cert issue --ca CA_DIR --spiffe-id spiffe://TRUST_DOMAIN/ns/NS/sa/SA --out DIR\`, or have your CA add it, e.g. \`openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -extfile <(printf 'subjectAltName=URI:spiffe://TRUST_DOMAIN/ns/NS/sa/SA\\nkeyUsage=critical,digitalSignature') -out leaf.pem\``;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

async function readCredentialFile(path: string, flag: string): Promise<string> {
  return (await readCredentialBytes(path, flag)).toString('utf8');
}

/** Counts and logs a failed load or start; returns the status that reports it. */
function recordFailure(
  deps: CredentialDeps,
  error: unknown,
  level: 'warn' | 'error',
  message: string,
): CredentialStatus {
  const failure = toMutualError(error);
  deps.onResult('failed');
  deps.log[level](message, { code: failure.code, error: failure.message });
  return {
    result: 'failed',
    atMs: deps.clock.now(),
    error: { code: failure.code, message: failure.message },
  };
}
