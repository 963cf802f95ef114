// The JSON answers of the dashboard API, computed from a snapshot and, for rates and "recent"
// counts, an earlier snapshot. Pure: no I/O. docs/dashboard-api.md describes every field.
import { checkReportJson, entryStatus, refusedHandshakes } from '../mesh/checks/index.ts';
import { type Edge, edgeKey } from '../mesh/index.ts';
import type { CaFileCertificate } from './ca-files.ts';
import type { TimedReport } from './checks.ts';
import type { Snapshot } from './collect.ts';

export type ExpiryStatus = 'ok' | 'warning' | 'critical' | 'expired' | 'unknown';

export interface EdgeRow extends Edge {
  readonly id: string;
  readonly sourceNamespace: string | undefined;
  readonly destinationNamespace: string | undefined;
  readonly protocol: 'http' | 'tcp';
  /** Per second over the window; null until there is an earlier snapshot to compare with. */
  readonly requestRate: number | null;
  readonly connectionRate: number | null;
  /** Share of HTTP requests answered below 500; null without requests. */
  readonly successRate: number | null;
  /** The same over the window (as the rates); null before two snapshots or without requests in it. */
  readonly recentSuccessRate: number | null;
}

const DAY_S = 86_400;

/** 2027-11-24T02:19:31.000Z as the page shows times: 2027-11-24 02:19:31 UTC. */
function readableUtc(iso: string | null): string {
  return iso === null ? 'an unknown time' : `${iso.replace('T', ' ').replace(/(\.\d+)?Z$/, '')} UTC`;
}

/** How much a counter grew; one that went down was reset (its sidecar restarted) and counted from 0. */
function increase(now: number, before: number): number {
  return now >= before ? now - before : now;
}

function rate(now: number, before: number | undefined, seconds: number): number | null {
  if (before === undefined || seconds <= 0) return null;
  return increase(now, before) / seconds;
}

/** Requests answered below 500 within the window: since start, a fault fixed long ago kept an edge at 33 %. */
function recentSuccessShare(now: Edge, before: Edge | undefined): number | null {
  const requests = increase(now.requests, before?.requests ?? 0);
  const errors = Math.min(requests, increase(now.serverErrors, before?.serverErrors ?? 0));
  return requests > 0 ? (requests - errors) / requests : null;
}

export function edgesView(now: Snapshot, before: Snapshot | undefined, namespace?: string) {
  const runtime = now.runtime;
  const seconds = before ? (now.atMs - before.atMs) / 1000 : 0;
  const earlier = new Map((before?.edges ?? []).map((edge) => [edgeKey(edge), edge]));
  const services = new Map((runtime?.services ?? []).map((service) => [service.name, service]));
  const rows = now.edges.map((edge): EdgeRow => {
    const id = edgeKey(edge);
    const previous = earlier.get(id);
    const destination = services.get(edge.destination);
    return {
      ...edge,
      id,
      sourceNamespace: services.get(edge.source)?.namespace,
      destinationNamespace: destination?.namespace,
      protocol:
        edge.requests > 0 || destination?.ports.some((port) => port.protocol === 'http') ? 'http' : 'tcp',
      requestRate: rate(edge.requests, previous?.requests ?? (before ? 0 : undefined), seconds),
      connectionRate: rate(edge.connections, previous?.connections ?? (before ? 0 : undefined), seconds),
      successRate: edge.requests > 0 ? (edge.requests - edge.serverErrors) / edge.requests : null,
      recentSuccessRate: before ? recentSuccessShare(edge, previous) : null,
    };
  });
  const filtered =
    namespace === undefined
      ? rows
      : rows.filter((row) => row.sourceNamespace === namespace || row.destinationNamespace === namespace);
  return {
    generatedAt: new Date(now.atMs).toISOString(),
    windowSeconds: before ? Math.round(seconds) : null,
    namespaces: [...new Set((runtime?.services ?? []).map((service) => service.namespace))].sort(),
    edges: filtered,
    // Clients refused at the TLS handshake have no identity and their counter no port, so they are
    // no edge; as `mutual edges` does, the tab still says that they happened.
    refusedHandshakes: refusedHandshakes(now.proxies).filter(
      (refused) => namespace === undefined || services.get(refused.service)?.namespace === namespace,
    ),
    unreachable: now.unreachable,
  };
}

/** Red/amber thresholds: a workload certificate by the share of its lifetime left, CA certificates by days. */
export function expiryStatus(secondsLeft: number | undefined, lifetimeSeconds?: number): ExpiryStatus {
  if (secondsLeft === undefined || Number.isNaN(secondsLeft)) return 'unknown';
  if (secondsLeft <= 0) return 'expired';
  if (lifetimeSeconds !== undefined && lifetimeSeconds > 0) {
    const left = secondsLeft / lifetimeSeconds;
    return left < 0.1 ? 'critical' : left < 0.25 ? 'warning' : 'ok';
  }
  return secondsLeft < 7 * DAY_S ? 'critical' : secondsLeft < 30 * DAY_S ? 'warning' : 'ok';
}

export function certificatesView(now: Snapshot) {
  const at = now.atMs;
  const secondsUntil = (iso: string | undefined) =>
    iso === undefined ? undefined : Math.round((Date.parse(iso) - at) / 1000);
  const fromUnix = (value: number) => ({
    notAfter: new Date(value * 1000).toISOString(),
    secondsLeft: Math.round(value - at / 1000),
    status: expiryStatus(value - at / 1000),
  });
  const fromFile = (certificate: CaFileCertificate) => ({
    ...fromUnix(Date.parse(certificate.notAfter) / 1000),
    fingerprint: certificate.fingerprint,
    subject: certificate.subject,
    notBefore: certificate.notBefore,
  });
  const samples = now.identityService.samples;
  const issuer = samples.find((sample) => sample.name === 'mutual_identity_issuer_expiry_timestamp_seconds');
  const services = new Map((now.runtime?.services ?? []).map((service) => [service.name, service]));
  const files = issuer ? undefined : now.caFiles;
  return {
    generatedAt: new Date(at).toISOString(),
    trustDomain: now.runtime?.trustDomain ?? null,
    identityService: {
      reachable: now.identityService.error === undefined,
      error: now.identityService.error ?? null,
    },
    // Where issuer and trustAnchors come from: the identity service's /metrics, or, when it reports
    // no issuer, the files it reads them from.
    source: issuer ? ('identity-service' as const) : files ? ('files' as const) : null,
    files: files
      ? {
          from: files.from,
          reason:
            now.identityService.error === undefined
              ? 'the identity service answers but reports no issuer'
              : `the identity service is not answering: ${now.identityService.error}`,
          issuerCertificate: { path: files.issuer.path, error: files.issuer.error ?? null },
          trustAnchors: { path: files.trustAnchors.path, error: files.trustAnchors.error ?? null },
        }
      : null,
    issuer: issuer
      ? { ...fromUnix(issuer.value), fingerprint: now.identityService.issuerFingerprint ?? null }
      : files?.issuer.value
        ? fromFile(files.issuer.value)
        : null,
    trustAnchors: files
      ? (files.trustAnchors.value ?? []).map(fromFile)
      : samples
          .filter((sample) => sample.name === 'mutual_identity_trust_anchor_expiry_timestamp_seconds')
          .map((sample) => ({ fingerprint: sample.labels.fingerprint ?? '', ...fromUnix(sample.value) })),
    workloads: now.identities.map(({ service, identity, error }) => {
      const secondsLeft = secondsUntil(identity?.notAfter);
      const lifetime =
        identity?.notAfter && identity.notBefore
          ? (Date.parse(identity.notAfter) - Date.parse(identity.notBefore)) / 1000
          : undefined;
      const secondsToRenewal = secondsUntil(identity?.renewAt);
      let status = error ? 'unknown' : expiryStatus(secondsLeft, lifetime);
      // Past its renewal time and still in use: the renewal is failing.
      if (status === 'ok' && secondsToRenewal !== undefined && secondsToRenewal < -60) status = 'warning';
      return {
        service,
        spiffeId: identity?.spiffeId ?? services.get(service)?.spiffeId ?? null,
        notBefore: identity?.notBefore ?? null,
        notAfter: identity?.notAfter ?? null,
        renewAt: identity?.renewAt ?? null,
        secondsLeft: secondsLeft ?? null,
        secondsToRenewal: secondsToRenewal ?? null,
        lastRenewal: identity?.lastRenewal ?? null,
        status,
        error: error ?? null,
      };
    }),
  };
}

interface Denial {
  service: string;
  kind: 'authorization' | 'refused';
  client: string;
  clientId: string | null;
  policy: string;
  /** The port as mesh.yaml declares it (the counters name the app's port). */
  port: string;
  count: number;
  recent: number;
}

/** A connection the sidecar refused before the app (plaintext under STRICT, a failed handshake…). */
function refusal(
  service: string,
  reason: string | undefined,
  port: Denial['port'],
): Omit<Denial, 'count' | 'recent'> {
  return {
    service,
    kind: 'refused',
    client: 'unknown',
    clientId: null,
    policy: `refused: ${reason ?? 'unknown'}`,
    port,
  };
}

function denials(now: Snapshot, before: Snapshot | undefined): Denial[] {
  const nameById = new Map((now.runtime?.services ?? []).map((service) => [service.spiffeId, service.name]));
  const declared = new Map(
    (now.runtime?.services ?? []).flatMap((service) =>
      service.ports.map((port): [string, string] => [`${service.name}\0${port.appPort}`, String(port.port)]),
    ),
  );
  const portOf = (service: string, label: string | undefined) =>
    label ? (declared.get(`${service}\0${label}`) ?? label) : '';
  const counts = (snapshot: Snapshot | undefined) => {
    const found = new Map<string, Denial>();
    for (const { service, samples } of snapshot?.proxies ?? []) {
      for (const { name, labels, value } of samples) {
        let denial: Omit<Denial, 'count' | 'recent'> | undefined;
        if (name === 'mutual_authorization_decisions_total' && labels.decision === 'deny') {
          const clientId = labels.client_id || null;
          denial = {
            service,
            kind: 'authorization',
            client: clientId ? (nameById.get(clientId) ?? clientId) : 'unknown (plaintext)',
            clientId,
            policy: labels.policy || '(no ALLOW policy matched)',
            port: portOf(service, labels.port),
          };
        } else if (
          name === 'mutual_tls_handshake_failures_total' &&
          labels.direction === 'inbound' &&
          labels.reason !== 'client_closed'
        ) {
          // A TLS client refused at the handshake (no certificate, another CA, expired): refused
          // before the app as plaintext under STRICT is. client_closed is the client refusing us.
          // The counter has no port label.
          denial = refusal(service, labels.reason, '');
        } else if (name === 'mutual_inbound_refused_total') {
          denial = refusal(service, labels.reason, portOf(service, labels.port));
        }
        if (!denial) continue;
        const key = `${denial.service}\0${denial.kind}\0${denial.clientId}\0${denial.policy}\0${denial.port}`;
        const entry = found.get(key) ?? { ...denial, count: 0, recent: 0 };
        entry.count += value;
        found.set(key, entry);
      }
    }
    return found;
  };
  const earlier = counts(before);
  return [...counts(now)]
    .map(([key, denial]) => ({
      ...denial,
      recent: before ? increase(denial.count, earlier.get(key)?.count ?? 0) : denial.count,
    }))
    .sort((a, b) => b.recent - a.recent || b.count - a.count);
}

export function policyView(now: Snapshot, before: Snapshot | undefined) {
  return {
    generatedAt: new Date(now.atMs).toISOString(),
    windowSeconds: before ? Math.round((now.atMs - before.atMs) / 1000) : null,
    workloads: now.modes.map((modes) => ({
      ...modes,
      namespace: now.runtime?.services.find((service) => service.name === modes.service)?.namespace ?? null,
      error: modes.error ?? null,
    })),
    denials: denials(now, before),
  };
}

/** GET /api/checks: the whole `mutual check` report, with when it was made. */
export function checksView(checked: TimedReport) {
  return { generatedAt: new Date(checked.atMs).toISOString(), ...checkReportJson(checked.report) };
}

/** The failing checks, one item per failed result, errors first: what the Overview lists. */
function failingChecks(checked: TimedReport) {
  const order = { error: 0, warning: 1, info: 2 };
  return checked.report.entries
    .filter((entry) => entry.severity !== 'info' && entryStatus(entry) === 'fail')
    .sort((a, b) => order[a.severity] - order[b.severity])
    .flatMap((entry) =>
      entry.results
        .filter((result) => result.status === 'fail')
        .map((result) => ({
          category: entry.category,
          description: entry.description,
          severity: entry.severity as 'error' | 'warning',
          subject: result.subject ?? null,
          message: result.message,
          details: result.details ?? [],
          hint: entry.hint,
          fix: entry.fix,
        })),
    );
}

export function overviewView(now: Snapshot, before: Snapshot | undefined, checked: TimedReport) {
  const runtime = now.runtime;
  const edges = now.edges;
  const sum = (pick: (edge: Edge) => number, onlySecured: boolean) =>
    edges.reduce((total, edge) => total + (onlySecured && !edge.isSecured ? 0 : pick(edge)), 0);
  const share = (part: number, whole: number) => (whole > 0 ? part / whole : null);
  const connections = { total: sum((e) => e.connections, false), secured: sum((e) => e.connections, true) };
  const requests = { total: sum((e) => e.requests, false), secured: sum((e) => e.requests, true) };
  const serviceNames = new Set((runtime?.services ?? []).map((service) => service.name));
  const unmeshed = [
    ...new Set(edges.flatMap((edge) => [edge.source, edge.destination]).filter((n) => !serviceNames.has(n))),
  ].sort();
  const recentDenials = denials(now, before);
  const certificates = certificatesView(now);
  // What `mutual check` reports covers no mesh, dead sidecars and plaintext traffic; these add the
  // dashboard's own amber/red expiry thresholds.
  const problems: Array<{ severity: 'error' | 'warning'; message: string }> = [];
  const expiring = [
    ...(certificates.issuer ? [{ what: 'the issuer', ...certificates.issuer }] : []),
    ...certificates.trustAnchors.map((anchor) => ({ what: `trust anchor ${anchor.fingerprint}`, ...anchor })),
    ...certificates.workloads.map((w) => ({
      what: `${w.service}'s certificate`,
      status: w.status,
      notAfter: w.notAfter,
    })),
  ];
  for (const item of expiring) {
    if (item.status === 'ok' || item.status === 'unknown') continue;
    problems.push({
      severity: item.status === 'warning' ? 'warning' : 'error',
      message: `${item.what} ${item.status === 'expired' ? 'expired' : 'expires'} at ${readableUtc(item.notAfter)}`,
    });
  }
  return {
    generatedAt: new Date(now.atMs).toISOString(),
    mesh: {
      isRunning: runtime !== undefined,
      stateDir: now.stateDir,
      trustDomain: runtime?.trustDomain ?? null,
      startedAt: runtime?.startedAt ?? null,
      services: runtime?.services.length ?? 0,
    },
    traffic: {
      connections: { ...connections, securedShare: share(connections.secured, connections.total) },
      requests: { ...requests, securedShare: share(requests.secured, requests.total) },
    },
    edges: { total: edges.length, secured: edges.filter((e) => e.isSecured).length },
    workloads: {
      meshed: (runtime?.services ?? [])
        .map((service) => service.name)
        .filter((name) => !now.unreachable.some((u) => u.service === name)),
      unreachable: now.unreachable.map((u) => u.service),
      unmeshed,
    },
    denials: {
      total: recentDenials.reduce((total, d) => total + d.count, 0),
      recent: recentDenials.reduce((total, d) => total + d.recent, 0),
      windowSeconds: before ? Math.round((now.atMs - before.atMs) / 1000) : null,
    },
    checks: {
      generatedAt: new Date(checked.atMs).toISOString(),
      total: checked.report.entries.length,
      errors: checked.report.errors,
      warnings: checked.report.warnings,
      trafficWindow: checked.report.trafficWindow ?? null,
      failing: failingChecks(checked),
    },
    problems,
  };
}
