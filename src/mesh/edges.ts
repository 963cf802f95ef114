import type { Sample } from './prometheus-text.ts';
import type { MeshRuntime } from './runtime.ts';

/** One source → destination edge of the mesh, as the sidecars on both ends counted it. */
export interface Edge {
  /** Service name, or the client's SPIFFE ID / "unknown" when it is not a service of this mesh. */
  readonly source: string;
  readonly destination: string;
  readonly clientId: string | undefined;
  readonly serverId: string | undefined;
  /** True for mTLS; otherwise why not (not-meshed, plaintext, a refusal reason ...). */
  readonly isSecured: boolean;
  readonly reason: string | undefined;
  readonly connections: number;
  readonly requests: number;
  readonly bytes: number;
  readonly denied: number;
  /** Which sidecars reported the edge. */
  readonly seenBy: ReadonlyArray<'client' | 'server'>;
}

/** Samples from one service's sidecar. */
export interface ProxySamples {
  readonly service: string;
  readonly samples: readonly Sample[];
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type MutableEdge = Mutable<Omit<Edge, 'seenBy'>> & { seenBy: Array<'client' | 'server'> };

/**
 * Joins every sidecar's counters into edges. The server side knows requests, bytes and denials;
 * the client side knows connections to destinations that are not meshed or not reachable.
 * Where both saw an edge, the larger connection count is kept (each side counts its own end).
 */
export function buildEdges(runtime: MeshRuntime, proxies: readonly ProxySamples[]): Edge[] {
  const nameById = new Map(runtime.services.map((service) => [service.spiffeId, service.name]));
  const nameByInbound = new Map<string, string>();
  for (const service of runtime.services) {
    for (const port of service.ports) {
      if (port.inboundPort !== undefined) nameByInbound.set(`127.0.0.1:${port.inboundPort}`, service.name);
      nameByInbound.set(`127.0.0.1:${port.appPort}`, service.name);
    }
  }
  const edges = new Map<string, MutableEdge & { serverConnections: number; clientConnections: number }>();
  const edge = (source: string, destination: string, isSecured: boolean, reason: string | undefined) => {
    const key = `${source}\u0000${destination}\u0000${isSecured ? '' : (reason ?? '')}`;
    let found = edges.get(key);
    if (!found) {
      found = {
        source,
        destination,
        clientId: undefined,
        serverId: undefined,
        isSecured,
        reason,
        connections: 0,
        requests: 0,
        bytes: 0,
        denied: 0,
        seenBy: [],
        serverConnections: 0,
        clientConnections: 0,
      };
      edges.set(key, found);
    }
    return found;
  };
  const see = (found: MutableEdge, side: 'client' | 'server') => {
    if (!found.seenBy.includes(side)) found.seenBy.push(side);
  };
  const nameOf = (id: string | undefined, fallback: string) => (id ? (nameById.get(id) ?? id) : fallback);
  const reasonOf = (labels: Readonly<Record<string, string>>) =>
    labels.tls === 'true' ? undefined : labels.no_tls_reason || 'plaintext';

  for (const { service, samples } of proxies) {
    for (const { name, labels, value } of samples) {
      switch (name) {
        // The server's view: who connected, over what, and what happened to the requests.
        case 'mutual_inbound_connections_total':
        case 'mutual_inbound_http_requests_total':
        case 'mutual_inbound_received_bytes_total':
        case 'mutual_inbound_sent_bytes_total': {
          const found = edge(
            nameOf(labels.client_id, 'unknown'),
            service,
            labels.tls === 'true',
            reasonOf(labels),
          );
          found.clientId ??= labels.client_id || undefined;
          found.serverId ??= labels.server_id || undefined;
          if (name === 'mutual_inbound_connections_total') found.serverConnections += value;
          else if (name === 'mutual_inbound_http_requests_total') found.requests += value;
          else found.bytes += value;
          see(found, 'server');
          break;
        }
        case 'mutual_authorization_decisions_total': {
          if (labels.decision !== 'deny') break;
          const found = edge(
            nameOf(labels.client_id, 'unknown'),
            service,
            Boolean(labels.client_id),
            labels.client_id ? undefined : 'plaintext',
          );
          found.clientId ??= labels.client_id || undefined;
          found.denied += value;
          see(found, 'server');
          break;
        }
        case 'mutual_inbound_refused_total': {
          const found = edge('unknown', service, false, `refused: ${labels.reason ?? 'unknown'}`);
          found.denied += value;
          found.serverConnections += value;
          see(found, 'server');
          break;
        }
        // The client's view: where the app's connections went.
        case 'mutual_outbound_connections_total':
        case 'mutual_outbound_sent_bytes_total':
        case 'mutual_outbound_received_bytes_total': {
          const destination = labels.server_id
            ? nameOf(labels.server_id, labels.destination ?? 'unknown')
            : (nameByInbound.get(labels.destination ?? '') ?? labels.destination ?? 'unknown');
          const found = edge(
            service,
            destination,
            labels.tls === 'true',
            labels.tls === 'true' ? undefined : labels.no_tls_reason || 'not meshed',
          );
          found.clientId ??= labels.client_id || undefined;
          found.serverId ??= labels.server_id || undefined;
          if (name === 'mutual_outbound_connections_total') found.clientConnections += value;
          see(found, 'client');
          break;
        }
        case 'mutual_outbound_refused_total': {
          const destination = nameByInbound.get(labels.destination ?? '') ?? labels.destination ?? 'unknown';
          const found = edge(service, destination, false, `failed: ${labels.reason ?? 'unknown'}`);
          found.clientConnections += value;
          see(found, 'client');
          break;
        }
      }
    }
  }
  return [...edges.values()]
    .map(({ serverConnections, clientConnections, ...found }) => ({
      ...found,
      connections: Math.max(serverConnections, clientConnections),
    }))
    .sort(
      (a, b) =>
        a.source.localeCompare(b.source) ||
        a.destination.localeCompare(b.destination) ||
        Number(b.isSecured) - Number(a.isSecured),
    );
}
