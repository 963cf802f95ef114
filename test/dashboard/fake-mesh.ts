// A mesh made of tiny real HTTP servers that answer like sidecar and identity-service admin
// endpoints with canned Prometheus text, and the runtime.json that points at them.

import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface FakeAdmin {
  readonly url: string;
  /** What /metrics answers; change it to move the counters. */
  metrics: string;
  identity: Record<string, unknown>;
  /** Requests answered, by path. */
  readonly hits: Record<string, number>;
  close(): Promise<void>;
}

export async function startFakeAdmin(
  metrics: string,
  identity: Record<string, unknown> = {},
  options: { date?: string; json?: Readonly<Record<string, unknown>> } = {},
): Promise<FakeAdmin> {
  const hits: Record<string, number> = {};
  const admin: Partial<FakeAdmin> & { server?: Server } = { metrics, identity, hits };
  const server = createServer((request, response) => {
    hits[request.url ?? ''] = (hits[request.url ?? ''] ?? 0) + 1;
    // A fixed Date header, for clock-skew checks run on a fixed clock.
    if (options.date) response.setHeader('date', options.date);
    if (request.url === '/metrics') {
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      return response.end(admin.metrics);
    }
    const json = options.json?.[request.url ?? ''];
    if (json !== undefined) {
      response.writeHead(200, { 'content-type': 'application/json' });
      return response.end(JSON.stringify(json));
    }
    if (request.url === '/identity') {
      response.writeHead(200, { 'content-type': 'application/json' });
      return response.end(JSON.stringify(admin.identity));
    }
    response.writeHead(request.url === '/ready' || request.url === '/live' ? 200 : 404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(admin, {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }) as FakeAdmin;
}

/** A loopback port where nothing listens (a dead proxy): bound, then closed. */
export async function refusingUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

export interface FakeService {
  readonly name: string;
  readonly adminUrl: string;
  readonly appPort?: number;
  readonly inboundPort?: number;
  /** A sidecar started with --mode (a mesh.yaml without policyDir) instead of --policy-dir. */
  readonly mode?: 'STRICT' | 'PERMISSIVE' | 'DISABLE';
}

/** Writes <stateDir>/runtime.json for services in namespace `shop`, policies in `policyDir`. */
export async function writeFakeRuntime(
  stateDir: string,
  options: { identityAdminUrl: string; services: readonly FakeService[]; policyDir: string },
): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  const process = (argv: string[]) => ({ pid: 999_999, startTicks: 1, log: '/dev/null', argv });
  const runtime = {
    version: 1,
    file: join(stateDir, 'mesh.yaml'),
    trustDomain: 'example.org',
    policyDir: options.policyDir,
    stateDir,
    startedAt: '2030-01-01T00:00:00.000Z',
    supervisor: { pid: 999_999, startTicks: 1 },
    identity: { ...process([]), apiUrl: 'https://127.0.0.1:1', adminUrl: options.identityAdminUrl },
    services: options.services.map((service) => ({
      name: service.name,
      namespace: 'shop',
      serviceAccount: service.name,
      spiffeId: `spiffe://example.org/ns/shop/sa/${service.name}`,
      labels: { app: service.name },
      ports:
        service.appPort === undefined
          ? []
          : [{ port: 8080, protocol: 'http', appPort: service.appPort, inboundPort: service.inboundPort }],
      upstreams: [],
      adminUrl: service.adminUrl,
      app: process(['node', 'app.js']),
      proxy: process(
        service.mode
          ? ['mutual', 'proxy', 'run', '--mode', service.mode, '--namespace', 'shop']
          : ['mutual', 'proxy', 'run', '--policy-dir', options.policyDir, '--namespace', 'shop'],
      ),
    })),
  };
  await writeFile(join(stateDir, 'runtime.json'), JSON.stringify(runtime));
}
