// Every metric the destination service exports, named once.
import { Counter, Gauge, type Registry } from '../metrics/index.ts';

export function createDestinationMetrics(registry: Registry) {
  const registers = [registry];
  return {
    lookups: new Counter({
      name: 'mutual_destination_lookups_total',
      help: 'Destination answers sent, by result (meshed, unmeshed) and the source that knew the destination (none: unknown).',
      labelNames: ['result', 'source'],
      registers,
    }),
    watchesOpen: new Gauge({
      name: 'mutual_destination_watches_open',
      help: 'Long-poll requests waiting for an answer to change.',
      registers,
    }),
    clientsRefused: new Counter({
      name: 'mutual_destination_clients_refused_total',
      help: 'Client connections refused, by reason: no_client_certificate, unknown_authority (not under the trust bundle), expired, not_yet_valid, not_svid, plain_http, handshake_failed (TLS version, algorithms, timeout, a client hanging up).',
      labelNames: ['reason'],
      registers,
    }),
    connectionsShed: new Counter({
      name: 'mutual_destination_connections_shed_total',
      help: 'API connections closed to stay within the connection limit, by what they were doing: handshake, headers (no request yet), idle, held (a long poll; its sidecar polls again), body; new: every open one was being answered, so the new one was closed.',
      labelNames: ['state'],
      registers,
    }),
    connectionsLimited: new Counter({
      name: 'mutual_destination_connections_limited_total',
      help: 'New API connections closed before their TLS handshake because their client address (an IPv6 one by its /64) already had --max-connections-per-address open.',
      registers,
    }),
    tableReloads: new Counter({
      name: 'mutual_destination_table_reloads_total',
      help: 'Loads of the destination table file, by result (ok, refused).',
      labelNames: ['result'],
      registers,
    }),
    kubernetesEvents: new Counter({
      name: 'mutual_destination_kubernetes_watch_events_total',
      help: 'Kubernetes list/watch life events by resource: listed, expired (410 Gone, relist), failed (retry with backoff).',
      labelNames: ['resource', 'event'],
      registers,
    }),
    policyAnswers: new Counter({
      name: 'mutual_destination_policy_answers_total',
      help: 'Policy sets sent to proxies (GET /v1/policies), by result: sent (200), unchanged (304).',
      labelNames: ['result'],
      registers,
    }),
    policies: new Gauge({
      name: 'mutual_destination_policies',
      help: 'Policies served, by kind (PeerAuthentication, AuthorizationPolicy).',
      labelNames: ['kind'],
      registers,
    }),
    policiesSkipped: new Gauge({
      name: 'mutual_destination_policies_skipped',
      help: 'Cluster policy objects not served, by reason: invalid (the parser refused it; the log names the field), shadowed (a security.mutual.dev policy of the same kind and namespace/name applies instead); unsupported: served, but as a stricter stand-in (the policy uses JWT, CUSTOM, remote IPs or other fields Mutual cannot enforce: ALLOW rules using them dropped, DENY rules without them); fail_closed: an ALLOW policy Mutual cannot read (Istio may accept it), served as an ALLOW of nothing for the workloads it selects.',
      labelNames: ['reason'],
      registers,
    }),
  };
}

export type DestinationMetrics = ReturnType<typeof createDestinationMetrics>;
