// Test support for the injector webhook: its serving certificate from a test PKI, the webhook
// in-process or as a real `mutual inject serve`, its metrics, and the AdmissionReview the API
// server sends for a Pod.
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { systemClock } from '../../src/clock.ts';
import {
  DEFAULT_INJECT_OPTIONS,
  type InjectorWebhook,
  type InjectorWebhookConfig,
  startInjectorWebhook,
} from '../../src/k8s/index.ts';
import { generateKeyPair, issueSvid, privateKeyToPem } from '../../src/pki/index.ts';
import { type TestPki, waitUntil } from '../../src/testing/mesh-pki.ts';
import { repoRoot } from '../e2e/run-mutual.ts';

/** The DNS name the API server calls the webhook by. */
export const SERVICE_NAME = 'mutual-injector.mutual-system.svc';

export interface WebhookFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly anchorsFile: string;
}

/** Writes the webhook's serving SVID (injector identity, SERVICE_NAME) and `pki`'s trust anchor. */
export async function writeWebhookFiles(pki: TestPki, files: WebhookFiles): Promise<void> {
  const keys = await generateKeyPair();
  const svid = await issueSvid(pki.issuer, {
    spiffeId: 'spiffe://cluster.local/ns/mutual-system/sa/injector',
    publicKey: keys.publicKey,
    clock: systemClock,
    dnsNames: [SERVICE_NAME],
  });
  await writeFile(files.certFile, svid.chainPem);
  await writeFile(files.keyFile, privateKeyToPem(keys.privateKey));
  await writeFile(files.anchorsFile, pki.anchor.certificatePem);
}

/** The webhook in-process on 127.0.0.1 ports from 0, admin included; `config` adds or overrides. */
export function startWebhook(
  files: WebhookFiles,
  config: Partial<InjectorWebhookConfig> = {},
): Promise<InjectorWebhook> {
  return startInjectorWebhook({
    listen: { host: '127.0.0.1', port: 0 },
    adminListen: { host: '127.0.0.1', port: 0 },
    tls: { certFile: files.certFile, keyFile: files.keyFile },
    trustAnchorsFile: files.anchorsFile,
    inject: DEFAULT_INJECT_OPTIONS,
    ...config,
  });
}

export interface InjectServeProcess {
  readonly child: ChildProcessByStdio<null, Readable, Readable>;
  readonly port: number;
  readonly adminUrl: string;
  /** All it has written to stderr so far. */
  readonly stderr: string;
}

/**
 * Runs the real `mutual inject serve` on 127.0.0.1 ports from 0 with `files` and `args`, under
 * `ulimit -n <openFiles>` if given; resolves once it listens. The caller kills it.
 */
export async function startInjectServe(
  files: WebhookFiles,
  args: readonly string[] = [],
  { openFiles }: { openFiles?: number } = {},
): Promise<InjectServeProcess> {
  const command = [
    join(repoRoot(), 'bin', 'mutual.js'),
    ...['inject', 'serve', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
    ...['--cert', files.certFile, '--key', files.keyFile, '--trust-anchors-file', files.anchorsFile],
    ...args,
  ];
  // ulimit -n as a Pod's container runtime or an operator could set it.
  const child =
    openFiles === undefined
      ? spawn(process.execPath, command, { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('sh', ['-c', `ulimit -n ${openFiles} && exec "$@"`, 'sh', process.execPath, ...command], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  try {
    await waitUntil(async () => /listening on https:\/\//.test(stdout), `the webhook to listen: ${stderr}`);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    child,
    port: Number(new URL(/listening on (https:\/\/\S+)/.exec(stdout)?.[1] ?? '').port),
    adminUrl: /\(admin (http:\/\/\S+)\)/.exec(stdout)?.[1] ?? '',
    get stderr() {
      return stderr;
    },
  };
}

/** The webhook's /metrics text. */
export async function metrics(adminUrl: string | undefined): Promise<string> {
  return (await fetch(`${adminUrl}/metrics`)).text();
}

/** Pod demo/web, which opts in to injection; `overrides` adds to or replaces its metadata and spec. */
export function pod(overrides: { metadata?: object; spec?: object } = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'web',
      namespace: 'demo',
      annotations: { 'mutual.dev/inject': 'enabled' },
      ...overrides.metadata,
    },
    spec: { containers: [{ name: 'web', image: 'nginx:1.27' }], ...overrides.spec },
  };
}

/** The AdmissionReview the API server sends for creating `object` in demo; `request` adds or overrides. */
export function admissionReview(
  object: unknown,
  request: Record<string, unknown> = {},
  uid: string = crypto.randomUUID(),
): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'demo',
      operation: 'CREATE',
      object,
      ...request,
    },
  });
}
