// Every metric the proxy exports, named once, with the labels Linkerd users know: tls="true" with
// client_id/server_id, or tls="no_identity" with no_tls_reason.
import { Counter, Gauge, Histogram, type Registry, registerFileDescriptorGauges } from '../metrics/index.ts';
import type { HandshakeFailureReason, PeerTls } from '../tls/index.ts';

const TLS_LABELS = ['tls', 'client_id', 'server_id', 'no_tls_reason'] as const;

export function createProxyMetrics(registry: Registry) {
  const registers = [registry];
  const metrics = {
    inboundConnections: new Counter({
      name: 'mutual_inbound_connections_total',
      help: 'Inbound connections accepted and handed to the app, by TLS status and identities.',
      labelNames: [...TLS_LABELS, 'port'],
      registers,
    }),
    inboundClosed: new Counter({
      name: 'mutual_inbound_connections_closed_total',
      help: 'Inbound connections closed, by TLS status and identities.',
      labelNames: [...TLS_LABELS, 'port'],
      registers,
    }),
    inboundOpen: new Gauge({
      name: 'mutual_inbound_connections_open',
      help: 'Inbound connections open now.',
      registers,
    }),
    inboundReceivedBytes: new Counter({
      name: 'mutual_inbound_received_bytes_total',
      help: 'Bytes received from inbound peers (application bytes, after TLS).',
      labelNames: [...TLS_LABELS, 'port'],
      registers,
    }),
    inboundSentBytes: new Counter({
      name: 'mutual_inbound_sent_bytes_total',
      help: 'Bytes sent to inbound peers (application bytes, before TLS).',
      labelNames: [...TLS_LABELS, 'port'],
      registers,
    }),
    inboundRefused: new Counter({
      name: 'mutual_inbound_refused_total',
      help: 'Inbound connections refused before reaching the app, by reason.',
      labelNames: ['reason', 'port'],
      registers,
    }),
    outboundConnections: new Counter({
      name: 'mutual_outbound_connections_total',
      help: 'Outbound connections from the app, by TLS status, identities and destination.',
      labelNames: [...TLS_LABELS, 'destination'],
      registers,
    }),
    outboundClosed: new Counter({
      name: 'mutual_outbound_connections_closed_total',
      help: 'Outbound connections closed.',
      labelNames: [...TLS_LABELS, 'destination'],
      registers,
    }),
    outboundOpen: new Gauge({
      name: 'mutual_outbound_connections_open',
      help: 'Outbound connections open now.',
      registers,
    }),
    outboundSentBytes: new Counter({
      name: 'mutual_outbound_sent_bytes_total',
      help: 'Application bytes sent to destinations.',
      labelNames: [...TLS_LABELS, 'destination'],
      registers,
    }),
    outboundReceivedBytes: new Counter({
      name: 'mutual_outbound_received_bytes_total',
      help: 'Application bytes received from destinations.',
      labelNames: [...TLS_LABELS, 'destination'],
      registers,
    }),
    outboundRefused: new Counter({
      name: 'mutual_outbound_refused_total',
      help: 'Outbound connections refused or failed, by reason.',
      labelNames: ['reason', 'destination'],
      registers,
    }),
    outboundSessionsResumed: new Counter({
      name: 'mutual_outbound_tls_resumed_total',
      help: 'Outbound mTLS connections that resumed a TLS session instead of a full handshake.',
      registers,
    }),
    handshakeFailures: new Counter({
      name: 'mutual_tls_handshake_failures_total',
      help: 'Failed mTLS handshakes by direction and reason (expired, unknown_authority, wrong_identity, no_client_certificate, client_closed: the client refused our certificate, ...).',
      labelNames: ['direction', 'reason'],
      registers,
    }),
    httpRequests: new Counter({
      name: 'mutual_inbound_http_requests_total',
      help: 'Inbound HTTP requests, by TLS status, client identity and response status.',
      labelNames: [...TLS_LABELS, 'port', 'method', 'status_code'],
      registers,
    }),
    httpDuration: new Histogram({
      name: 'mutual_inbound_http_request_duration_seconds',
      help: 'Time from an inbound request to the end of its response.',
      labelNames: ['tls', 'status_code'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    }),
    outboundHttpRequests: new Counter({
      name: 'mutual_outbound_http_requests_total',
      help: 'Outbound HTTP requests over pooled mTLS, by server identity, destination and response status (502, 400 or 501 when the proxy answered: see x-mutual-proxy-error).',
      labelNames: [...TLS_LABELS, 'destination', 'method', 'status_code'],
      registers,
    }),
    outboundHttpDuration: new Histogram({
      name: 'mutual_outbound_http_request_duration_seconds',
      help: 'Time from an outbound request to the end of its response, as the app sees it.',
      labelNames: ['status_code'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    }),
    http2ConnectionsLimited: new Counter({
      name: 'mutual_http2_connections_limited_total',
      help: 'HTTP/2 client connections closed by the proxy with GOAWAY ENHANCE_YOUR_CALM, by direction and reason (rapid_reset: most of its streams reset before their answer).',
      labelNames: ['direction', 'reason'],
      registers,
    }),
    tlsConnectionsLimited: new Counter({
      name: 'mutual_tls_connections_limited_total',
      help: 'mTLS connections closed by the proxy for what the peer did in TLS itself, by direction and reason (key_update_flood: more TLS 1.3 KeyUpdates than its data could need).',
      labelNames: ['direction', 'reason'],
      registers,
    }),
    http2SessionsRenewed: new Counter({
      name: 'mutual_http2_upstream_sessions_renewed_total',
      help: 'Shared HTTP/2 sessions to the app (inbound) or to a destination (outbound) replaced by a fresh one, by direction and reason (resets: so many streams cancelled on it that the peer would close it).',
      labelNames: ['direction', 'reason'],
      registers,
    }),
    http2StreamsIdleReset: new Counter({
      name: 'mutual_http2_streams_idle_reset_total',
      help: 'HTTP/2 streams of client connections reset with CANCEL (to the client and upstream) after --stream-idle-timeout with nothing read or sent on them, by direction.',
      labelNames: ['direction'],
      registers,
    }),
    connectionsIdleClosed: new Counter({
      name: 'mutual_connections_idle_closed_total',
      help: 'Client connections closed after --idle-timeout with nothing in flight, by direction and protocol (http2: no open stream; opaque and upgrade: no byte either way).',
      labelNames: ['direction', 'protocol'],
      registers,
    }),
    authorizations: new Counter({
      name: 'mutual_authorization_decisions_total',
      help: 'Inbound authorization decisions (allow, deny, audit) by deciding policy and client.',
      labelNames: ['decision', 'policy', 'client_id', 'port'],
      registers,
    }),
    certificateExpiry: new Gauge({
      name: 'mutual_proxy_certificate_expiry_timestamp_seconds',
      help: 'When the proxy certificate in use expires (Unix seconds).',
      registers,
    }),
    ...registerFileDescriptorGauges(registry, 'the proxy'),
    renewals: new Counter({
      name: 'mutual_proxy_certificate_renewals_total',
      help: 'Certificate renewals and reloads by result.',
      labelNames: ['result'],
      registers,
    }),
  };
  return metrics;
}

export type ProxyMetrics = ReturnType<typeof createProxyMetrics>;

const KNOWN_METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
]);

/**
 * The `method` label: the standard methods as sent, any other as `other`. HTTP/2 lets a client
 * send any token as :method (thousands of bytes, a new one per request), and every distinct label
 * value is a series the proxy keeps forever and every scrape carries.
 */
export function methodLabel(method: string | undefined): string {
  return method !== undefined && KNOWN_METHODS.has(method) ? method : 'other';
}

/** Prometheus labels for a peer's TLS status. */
export function tlsLabels(peer: PeerTls, otherId: string | undefined, direction: 'inbound' | 'outbound') {
  if (peer.kind === 'mtls') {
    return direction === 'inbound'
      ? { tls: 'true', client_id: peer.peerId, server_id: peer.localId, no_tls_reason: '' }
      : { tls: 'true', client_id: peer.localId, server_id: peer.peerId, no_tls_reason: '' };
  }
  return {
    tls: 'no_identity',
    client_id: direction === 'outbound' ? (otherId ?? '') : '',
    server_id: direction === 'inbound' ? (otherId ?? '') : '',
    no_tls_reason: peer.reason,
  };
}

export function countHandshakeFailure(
  metrics: ProxyMetrics,
  direction: 'inbound' | 'outbound',
  reason: HandshakeFailureReason,
) {
  metrics.handshakeFailures.inc({ direction, reason });
}

const byteFlushers = new WeakMap<object, () => void>();

/**
 * Counts a connection's bytes into `received`/`sent` as they accrue, not only when it closes, so
 * a keep-alive connection's traffic shows up while it is open. `flushConnectionBytes` adds what
 * accrued since the last flush; the close adds the rest.
 */
export function countConnectionBytes(
  stream: {
    readonly bytesRead: number;
    readonly bytesWritten: number;
    once(event: 'close', listener: () => void): unknown;
  },
  received: Counter<string>,
  sent: Counter<string>,
  labels: Record<string, string>,
): void {
  let read = 0;
  let written = 0;
  const flush = () => {
    const nowRead = stream.bytesRead;
    const nowWritten = stream.bytesWritten;
    if (nowRead > read) received.inc(labels, nowRead - read);
    if (nowWritten > written) sent.inc(labels, nowWritten - written);
    read = nowRead;
    written = nowWritten;
  };
  byteFlushers.set(stream, flush);
  stream.once('close', flush);
}

export function flushConnectionBytes(stream: object): void {
  byteFlushers.get(stream)?.();
}
