// The destination table `mutual up` writes for its destination service (docs/destination.md):
// every meshed service's addresses as the proxies see them, its SPIFFE ID, its names and its
// ports, opaque ones marked. Built from the plan (pure); written atomically, as the service's
// file watcher wants.
import { rename, writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';

export interface MeshDestinationEntry {
  readonly address: string;
  readonly serverId: string;
  readonly names: readonly string[];
  readonly ports: ReadonlyArray<number | { readonly port: number; readonly protocol: 'opaque' | 'http' }>;
}

/** What the table needs of a service: the plan's or runtime.json's view of it. */
export interface MeshedService {
  readonly name: string;
  readonly namespace: string;
  readonly spiffeId: string;
  readonly ports: ReadonlyArray<{
    readonly port: number;
    readonly protocol: 'http' | 'tcp';
    readonly inboundPort: number | undefined;
  }>;
  readonly pod?: { readonly address: string };
}

/**
 * Where the proxies reach a service's sidecar, port by port: netns mode, the pod's address on
 * the declared port (the transparent outbound sees the app's own destination); loopback, the
 * sidecar's inbound port on 127.0.0.1 (each upstream's target). Skipped ports are left out: the
 * sidecar does not take them, so callers reach the app in plain text.
 */
export function meshedAddresses(
  service: MeshedService,
): Array<{ address: string; port: number; declaredPort: number; protocol: 'http' | 'tcp' }> {
  return service.ports.flatMap(({ port, protocol, inboundPort }) =>
    inboundPort === undefined
      ? []
      : [
          service.pod
            ? { address: service.pod.address, port, declaredPort: port, protocol }
            : { address: '127.0.0.1', port: inboundPort, declaredPort: port, protocol },
        ],
  );
}

/** One entry per service and address; names as the pods' /etc/hosts has them, and the cluster form. */
export function meshDestinationTable(
  services: ReadonlyArray<{ readonly service: MeshedService; readonly opaquePorts: readonly number[] }>,
): MeshDestinationEntry[] {
  return services.flatMap(({ service, opaquePorts }) => {
    const byAddress = new Map<string, MeshDestinationEntry['ports'][number][]>();
    for (const { address, port, declaredPort, protocol } of meshedAddresses(service)) {
      const ports = byAddress.get(address) ?? [];
      // The table's protocols: opaque (no detection), http, or detect (a bare port).
      if (opaquePorts.includes(declaredPort)) ports.push({ port, protocol: 'opaque' });
      else ports.push(protocol === 'http' ? { port, protocol: 'http' } : port);
      byAddress.set(address, ports);
    }
    const names = [service.name, `${service.name}.${service.namespace}.svc.cluster.local`];
    return [...byAddress].map(([address, ports]) => ({
      address,
      serverId: service.spiffeId,
      names,
      ports,
    }));
  });
}

/** Writes the table as YAML: a temporary file renamed over the old one. */
export async function writeDestinationTable(
  file: string,
  entries: readonly MeshDestinationEntry[],
): Promise<void> {
  const text = `# Written by mutual up from the mesh file; rewritten whole, never edited in place.\n${stringify(
    { destinations: entries },
    { flowCollectionPadding: false },
  )}`;
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode: 0o600 });
  await rename(temporary, file);
}
