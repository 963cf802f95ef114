// Test support for the destination tests: a PKI on disk, a destination table file rewritten
// atomically, the service in-process on port 0 (the same startDestinationService the CLI runs),
// and a plain HTTPS/1.1 client with a chosen certificate (or none).
import { readFile, rename, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { systemClock } from '../../src/clock.ts';
import { type DestinationService, startDestinationService } from '../../src/destination/index.ts';
import type { KubeConnection } from '../../src/k8s/kube-client/index.ts';
import { createProxyLog } from '../../src/proxy/index.ts';
import type { WorkloadFiles } from '../../src/testing/mesh-pki.ts';

export async function writeTable(file: string, text: string): Promise<void> {
  await writeFile(`${file}.tmp`, text);
  await rename(`${file}.tmp`, file);
}

export async function startService(
  own: WorkloadFiles,
  sources: { tableFile?: string; kubernetes?: KubeConnection; policyDir?: string },
): Promise<DestinationService & { logs: string[] }> {
  const logs: string[] = [];
  const service = await startDestinationService({
    listen: { host: '127.0.0.1', port: 0 },
    adminListen: { host: '127.0.0.1', port: 0 },
    credentials: { kind: 'files', certFile: own.certFile, keyFile: own.keyFile, bundleFile: own.bundleFile },
    ...sources,
    kubernetesTuning: { watchTimeoutSeconds: 5, backoff: { initialMs: 50, maxMs: 200 } },
    clock: systemClock,
    log: createProxyLog((line) => logs.push(line), systemClock.now),
  });
  return Object.assign(service, { logs });
}

export interface HttpsAnswer {
  readonly status: number;
  readonly body: any;
}

/** GET over HTTPS/1.1 presenting `client` (or no certificate); the server's chain checked against `caFile`. */
export async function get(
  url: string,
  options: { client?: WorkloadFiles; caFile: string },
): Promise<HttpsAnswer> {
  const target = new URL(url);
  const [ca, cert, key] = await Promise.all([
    readFile(options.caFile, 'utf8'),
    options.client ? readFile(options.client.certFile, 'utf8') : undefined,
    options.client ? readFile(options.client.keyFile, 'utf8') : undefined,
  ]);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        ca,
        ...(cert ? { cert, key } : {}),
        // The service is named by its SPIFFE ID, not by a DNS name or IP SAN.
        checkServerIdentity: () => undefined,
        agent: false,
        timeout: 15_000,
      },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }),
        );
        response.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export function tableFileIn(dir: string): string {
  return join(dir, 'destinations.yaml');
}
