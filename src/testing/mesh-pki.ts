// Test support: a real PKI on disk (anchor → issuer → SVIDs) and `mutual proxy run` as a real
// process on ports from 0. Used by the proxy, policy and mesh end-to-end tests.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Clock, fixedClock, systemClock } from '../clock.ts';
import {
  type CertificateAuthority,
  createIssuer,
  createTrustAnchor,
  generateKeyPair,
  issueSvid,
  privateKeyToPem,
} from '../pki/index.ts';

export interface WorkloadFiles {
  readonly spiffeId: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly bundleFile: string;
  readonly notAfterMs: number;
}

/** A workload's files as node:tls options: a client that holds that SVID. */
export async function readTlsCredentials(
  files: WorkloadFiles,
): Promise<{ key: Buffer; cert: Buffer; ca: Buffer }> {
  const [key, cert, ca] = await Promise.all([
    readFile(files.keyFile),
    readFile(files.certFile),
    readFile(files.bundleFile),
  ]);
  return { key, cert, ca };
}

export interface TestPki {
  readonly trustDomain: string;
  readonly bundleFile: string;
  readonly anchor: CertificateAuthority;
  readonly issuer: CertificateAuthority;
  /** Issues an SVID for `ns/<ns>/sa/<sa>` into `<dir>/<name>/`; `atMs` issues it in the past or future. */
  workload(
    name: string,
    options?: {
      ns?: string;
      sa?: string;
      lifetimeMs?: number;
      atMs?: number;
      spiffeId?: string;
      /** DNS SANs beside the ID, for clients that check host names (gRPC, curl). */
      dnsNames?: readonly string[];
    },
  ): Promise<WorkloadFiles>;
}

export async function createTestPki(dir: string, trustDomain = 'cluster.local'): Promise<TestPki> {
  const clock: Clock = systemClock;
  // Back-dated a week, so tests can also issue certificates that have already expired.
  const caClock = fixedClock(clock.now() - 7 * 86_400_000);
  const anchor = await createTrustAnchor({ trustDomain, clock: caClock, lifetimeMs: 365 * 86_400_000 });
  const issuer = await createIssuer(anchor, { trustDomain, clock: caClock, lifetimeMs: 90 * 86_400_000 });
  const bundleFile = join(dir, 'bundle.pem');
  await mkdir(dir, { recursive: true });
  await writeFile(bundleFile, anchor.certificatePem);
  return {
    trustDomain,
    bundleFile,
    anchor,
    issuer,
    async workload(name, options = {}) {
      const spiffeId =
        options.spiffeId ?? `spiffe://${trustDomain}/ns/${options.ns ?? 'demo'}/sa/${options.sa ?? name}`;
      const keys = await generateKeyPair();
      const svid = await issueSvid(issuer, {
        spiffeId,
        publicKey: keys.publicKey,
        clock: options.atMs === undefined ? clock : fixedClock(options.atMs),
        lifetimeMs: options.lifetimeMs,
        skewMs: options.atMs === undefined ? undefined : 0,
        ...(options.dnsNames ? { dnsNames: options.dnsNames } : {}),
      });
      const out = join(dir, name);
      await mkdir(out, { recursive: true });
      const files = {
        spiffeId,
        certFile: join(out, 'cert.pem'),
        keyFile: join(out, 'key.pem'),
        bundleFile,
        notAfterMs: svid.notAfterMs,
      };
      await writeFile(files.certFile, svid.chainPem);
      await writeFile(files.keyFile, privateKeyToPem(keys.privateKey), { mode: 0o600 });
      return files;
    },
  };
}

export interface ProxyProcess {
  readonly child: ChildProcess;
  readonly adminUrl: string;
  /** Listening addresses in the order of the flags: explicit inbound, transparent inbound, upstreams, transparent outbound. */
  readonly inbound: readonly { host: string; port: number }[];
  readonly outbound: readonly { host: string; port: number }[];
  output(): string;
  metrics(): Promise<string>;
  /** Resolves once /ready answers 200; throws after 10 s. */
  untilReady(): Promise<void>;
  stop(): Promise<void>;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

/**
 * A test whose set-up failed half-way never stops the sidecars it had started; `npm test`
 * (--test-force-exit) ends the file anyway, and they go with it instead of running on.
 */
const runningSidecars = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of runningSidecars) child.kill('SIGKILL');
});

/** Starts `mutual proxy run` with `args` (add `--admin-listen 127.0.0.1:0`), resolves when it listens. */
export async function startProxyProcess(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<ProxyProcess> {
  const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'mutual.js'), 'proxy', 'run', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
  runningSidecars.add(child);
  child.once('exit', () => runningSidecars.delete(child));
  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const started = await Promise.race([
    new Promise<boolean>((resolve) => {
      const check = () => {
        if (/admin +http:\/\/\S+\n/.test(output)) {
          child.stdout!.off('data', check);
          resolve(true);
        }
      };
      child.stdout!.on('data', check);
    }),
    exited.then(() => false),
    // unref: once the proxy has started, this timer must not hold the test process open.
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 15_000).unref()),
  ]);
  if (!started) {
    child.kill('SIGKILL');
    throw new Error(`mutual proxy run did not start:\n${output}`);
  }
  const address = (text: string) => {
    const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text)!;
    return { host: match[1]!, port: Number(match[2]) };
  };
  const inbound = [...output.matchAll(/inbound +(\S+) →/g)].map((m) => address(m[1]!));
  const outbound = [...output.matchAll(/outbound +(\S+) →/g)].map((m) => address(m[1]!));
  const adminUrl = /admin +(http:\/\/\S+)/.exec(output)![1]!;
  return {
    child,
    adminUrl,
    inbound,
    outbound,
    output: () => output,
    metrics: async () => (await fetch(`${adminUrl}/metrics`)).text(),
    untilReady: () => waitUntil(async () => (await fetch(`${adminUrl}/ready`)).ok, `${adminUrl}/ready`),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

/** The value of one Prometheus sample whose labels include all of `labels`; 0 when absent. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

/** Polls `check` every 100 ms until it holds; throws naming `what` after 10 s. */
export async function waitUntil(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}
