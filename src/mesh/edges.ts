import type { Sample } from './prometheus-text.ts';
import type { MeshRuntime } from './runtime.ts';

/**
 * One source → destination edge of the mesh: one client (its identity, or "unknown" without one),
 * one destination, one port, as the sidecars on both ends counted it. Plaintext, denials and failed
 * connections of that pair are counted on the same row, not split into rows of their own.
 */
export interface Edge {
  /** Service name, or the client's SPIFFE ID / "unknown" when it is not a service of this mesh. */
  readonly source: string;
  /** Service name, or the address the app connected to when it is not a service of this mesh. */
  readonly destination: string;
  /** The destination's port as mesh.yaml declares it (or the port of the address). */
  readonly port: number | undefined;
  readonly clientId: string | undefined;
  readonly serverId: string | undefined;
  /** True when the row carried traffic and all of it was mTLS. */
  readonly isSecured: boolean;
  /** Why not, when not secured: no_client_hello, refused: plaintext_strict, not_meshed, failed: … */
  readonly reason: string | undefined;
  readonly connections: number;
  /**
   * HTTP requests as the destination's sidecar counted them since it started (the client's
   * sidecar's count when the destination's reports none): `serverErrors` and `denied` are of the
   * same requests. Requests that never reached the destination are in `failed`.
   */
  readonly requests: number;
  /** Of `requests`, those answered with a status of 500 or more. */
  readonly serverErrors: number;
  readonly bytes: number;
  /**
   * Requests (answered 403, so among `requests`) or connections (non-HTTP, or plaintext under
   * STRICT) refused by policy, as the destination's sidecar counted them since it started.
   */
  readonly denied: number;
  /**
   * Of `denied`, those an AuthorizationPolicy decided, by the deciding policy (`ns/name`, or the
   * ALLOW policies none of whose rules matched); absent when there are none.
   */
  readonly deniedBy?: Readonly<Record<string, number>>;
  /** Outbound connections that never reached the destination; `failure` says why. */
  readonly failed: number;
  readonly failure: string | undefined;
  /** Which sidecars reported the edge. */
  readonly seenBy: ReadonlyArray<'client' | 'server'>;
}

/** The counters edges are built from (docs/proxy.md names their labels). */
export const EDGE_METRICS: ReadonlySet<string> = new Set([
  'mutual_inbound_connections_total',
  'mutual_inbound_http_requests_total',
  'mutual_inbound_received_bytes_total',
  'mutual_inbound_sent_bytes_total',
  'mutual_authorization_decisions_total',
  'mutual_inbound_refused_total',
  'mutual_outbound_connections_total',
  'mutual_outbound_sent_bytes_total',
  'mutual_outbound_received_bytes_total',
  'mutual_outbound_refused_total',
  'mutual_outbound_http_requests_total',
]);

/** Samples from one service's sidecar. */
export interface ProxySamples {
  readonly service: string;
  readonly samples: readonly Sample[];
}

interface Row {
  source: string;
  destination: string;
  port: number | undefined;
  clientId: string | undefined;
  serverId: string | undefined;
  hasMtls: boolean;
  plaintextReasons: Set<string>;
  failures: Set<string>;
  serverConnections: number;
  clientConnections: number;
  requests: number;
  serverErrors: number;
  clientRequests: number;
  clientServerErrors: number;
  serverBytes: number;
  clientBytes: number;
  denied: number;
  deniedBy: Map<string, number>;
  failed: number;
  seenBy: Array<'client' | 'server'>;
}

/** The port at the end of `host:port`, if any. */
function portOf(address: string | undefined): number | undefined {
  const match = /:(\d+)$/.exec(address ?? '');
  return match ? Number(match[1]) : undefined;
}

/**
 * Joins every sidecar's counters into edges. The server side knows requests, bytes and denials;
 * the client side knows connections to destinations that are not meshed or not reachable.
 * Where both saw an edge, the larger count of connections, requests and bytes is kept (each side
 * counts its own end, and one side's sidecar may be gone or restarted).
 */
export function buildEdges(runtime: MeshRuntime, proxies: readonly ProxySamples[]): Edge[] {
  const nameById = new Map(runtime.services.map((service) => [service.spiffeId, service.name]));
  // Where apps connect (the sidecar's inbound or the app itself) → service and declared port.
  const byAddress = new Map<string, { service: string; port: number }>();
  // The inbound counters' `port` label is the app port: service + app port → declared port.
  const declaredPort = new Map<string, number>();
  for (const service of runtime.services) {
    for (const port of service.ports) {
      const target = { service: service.name, port: port.port };
      if (port.inboundPort !== undefined) byAddress.set(`127.0.0.1:${port.inboundPort}`, target);
      byAddress.set(`127.0.0.1:${port.appPort}`, target);
      // netns: callers connect to the pod's address and declared port.
      if (service.pod) byAddress.set(`${service.pod.address}:${port.port}`, target);
      declaredPort.set(`${service.name}\u0000${port.appPort}`, port.port);
    }
  }
  const rows = new Map<string, Row>();
  const row = (source: string, destination: string, port: number | undefined, side: 'client' | 'server') => {
    const key = `${source}\u0000${destination}\u0000${port ?? ''}`;
    let found = rows.get(key);
    if (!found) {
      found = {
        source,
        destination,
        port,
        clientId: undefined,
        serverId: undefined,
        hasMtls: false,
        plaintextReasons: new Set(),
        failures: new Set(),
        serverConnections: 0,
        clientConnections: 0,
        requests: 0,
        serverErrors: 0,
        clientRequests: 0,
        clientServerErrors: 0,
        serverBytes: 0,
        clientBytes: 0,
        denied: 0,
        deniedBy: new Map(),
        failed: 0,
        seenBy: [],
      };
      rows.set(key, found);
    }
    if (!found.seenBy.includes(side)) found.seenBy.push(side);
    return found;
  };
  const nameOf = (id: string | undefined) => (id ? (nameById.get(id) ?? id) : 'unknown');
  const inboundPort = (service: string, label: string | undefined) => {
    const appPort = Number(label);
    if (!label || Number.isNaN(appPort)) return undefined;
    return declaredPort.get(`${service}\u0000${appPort}`) ?? appPort;
  };
  const outboundTarget = (labels: Readonly<Record<string, string>>) => {
    const address = labels.destination ?? 'unknown';
    const known = byAddress.get(address);
    const destination = labels.server_id
      ? (nameById.get(labels.server_id) ?? known?.service ?? address)
      : (known?.service ?? address);
    return { destination, port: known?.port ?? portOf(address) };
  };
  const tlsOf = (found: Row, labels: Readonly<Record<string, string>>, fallbackReason: string) => {
    if (labels.tls === 'true') found.hasMtls = true;
    else found.plaintextReasons.add(labels.no_tls_reason || fallbackReason);
    found.clientId ??= labels.client_id || undefined;
    found.serverId ??= labels.server_id || undefined;
  };

  for (const { service, samples } of proxies) {
    for (const { name, labels, value } of samples) {
      switch (name) {
        // The server's view: who connected, over what, and what happened to the requests.
        case 'mutual_inbound_connections_total':
        case 'mutual_inbound_http_requests_total':
        case 'mutual_inbound_received_bytes_total':
        case 'mutual_inbound_sent_bytes_total': {
          const found = row(nameOf(labels.client_id), service, inboundPort(service, labels.port), 'server');
          tlsOf(found, labels, 'plaintext');
          if (name === 'mutual_inbound_connections_total') found.serverConnections += value;
          else if (name === 'mutual_inbound_http_requests_total') {
            found.requests += value;
            if (Number(labels.status_code) >= 500) found.serverErrors += value;
          } else found.serverBytes += value;
          break;
        }
        case 'mutual_authorization_decisions_total': {
          if (labels.decision !== 'deny') break;
          const found = row(nameOf(labels.client_id), service, inboundPort(service, labels.port), 'server');
          // A client identity means the client was authenticated: the request came over mTLS.
          if (labels.client_id) found.hasMtls = true;
          found.clientId ??= labels.client_id || undefined;
          found.denied += value;
          if (labels.policy && value > 0)
            found.deniedBy.set(labels.policy, (found.deniedBy.get(labels.policy) ?? 0) + value);
          break;
        }
        case 'mutual_inbound_refused_total': {
          const found = row('unknown', service, inboundPort(service, labels.port), 'server');
          found.plaintextReasons.add(`refused: ${labels.reason ?? 'unknown'}`);
          found.denied += value;
          found.serverConnections += value;
          break;
        }
        // The client's view: where the app's connections went.
        case 'mutual_outbound_connections_total':
        case 'mutual_outbound_sent_bytes_total':
        case 'mutual_outbound_received_bytes_total': {
          const { destination, port } = outboundTarget(labels);
          const found = row(service, destination, port, 'client');
          tlsOf(found, labels, 'not_meshed');
          if (name === 'mutual_outbound_connections_total') found.clientConnections += value;
          else found.clientBytes += value;
          break;
        }
        case 'mutual_outbound_http_requests_total': {
          const { destination, port } = outboundTarget(labels);
          const found = row(service, destination, port, 'client');
          tlsOf(found, labels, 'not_meshed');
          found.clientRequests += value;
          if (Number(labels.status_code) >= 500) found.clientServerErrors += value;
          break;
        }
        case 'mutual_outbound_refused_total': {
          const { destination, port } = outboundTarget(labels);
          const found = row(service, destination, port, 'client');
          found.failures.add(labels.reason ?? 'unknown');
          found.failed += value;
          break;
        }
      }
    }
  }
  return [...rows.values()]
    .map((found): Edge => {
      // A denial without client identity is plaintext even when nothing else says why.
      const reasons = [...found.plaintextReasons].sort();
      if (reasons.length === 0 && !found.hasMtls && found.source === 'unknown') reasons.push('plaintext');
      const failure = found.failures.size > 0 ? [...found.failures].sort().join(', ') : undefined;
      const isSecured = found.hasMtls && reasons.length === 0;
      return {
        source: found.source,
        destination: found.destination,
        port: found.port,
        clientId: found.clientId,
        serverId: found.serverId,
        isSecured,
        reason: isSecured
          ? undefined
          : reasons.length > 0
            ? reasons.join(', ')
            : failure
              ? `failed: ${failure}`
              : 'no traffic',
        connections: Math.max(found.serverConnections, found.clientConnections),
        // Requests, 5xx and denials come from one sidecar, so that they count the same requests:
        // the destination's, which alone knows denials, whenever it counted any; the client's when
        // the destination's sidecar does not report them (gone, or not meshed). Keeping the larger
        // view instead put the client's requests since it started beside the denials since the
        // destination's sidecar restarted: 8 requests, 1 of them a 502, "87.5%" and 4 denied, where
        // all 7 others had been denied.
        ...(found.requests === 0 && found.denied === 0
          ? { requests: found.clientRequests, serverErrors: found.clientServerErrors }
          : { requests: found.requests, serverErrors: found.serverErrors }),
        bytes: Math.max(found.serverBytes, found.clientBytes),
        denied: found.denied,
        ...(found.deniedBy.size > 0
          ? {
              deniedBy: Object.fromEntries(
                [...found.deniedBy].sort(([a, x], [b, y]) => y - x || a.localeCompare(b)),
              ),
            }
          : {}),
        failed: found.failed,
        failure,
        // Both ends in one order, whichever sidecar was read first.
        seenBy: [...found.seenBy].sort(),
      };
    })
    .sort(
      (a, b) =>
        byName(a.source, b.source) || byName(a.destination, b.destination) || (a.port ?? 0) - (b.port ?? 0),
    );
}

/** Names with numbers in them in the order people count: web-2 before web-10. */
const byName = new Intl.Collator('en', { numeric: true }).compare;

/** `cart:8080`, or the address alone when the destination is one (`10.0.0.9:5432`). */
export function edgeTarget(edge: Pick<Edge, 'destination' | 'port'>): string {
  return edge.port === undefined || edge.destination.endsWith(`:${edge.port}`)
    ? edge.destination
    : `${edge.destination}:${edge.port}`;
}

/** The row's stable key, `source→destination:port`, as the dashboard's `id`. */
export function edgeKey(edge: Pick<Edge, 'source' | 'destination' | 'port'>): string {
  return `${edge.source}→${edgeTarget(edge)}`;
}
