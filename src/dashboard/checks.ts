// `mutual check` for the dashboard: the same categories from src/mesh/checks, run on the
// snapshot the dashboard already took (its /metrics and /identity answers, its history as the
// traffic window), and cached for `ttlMs` so a page left open does not hammer the identity
// service with TLS handshakes. A stale report is served at once while a new one is made.
import type { Clock } from '../clock.ts';
import {
  type CheckReport,
  DEFAULT_CHECK_THRESHOLDS,
  type ProxyIdentityAnswer,
  runChecks,
  type TrafficSample,
} from '../mesh/checks/index.ts';
import { findService, meshPaths } from '../mesh/index.ts';
import type { Snapshot } from './collect.ts';

export interface DashboardChecks {
  /** The newest report, made from `snapshot` when there is none or the last is older than the ttl. */
  latest(snapshot: Snapshot, history: readonly TrafficSample[]): Promise<TimedReport>;
}

export interface TimedReport {
  readonly atMs: number;
  readonly report: CheckReport;
}

export function createDashboardChecks(options: {
  stateFlag: string;
  clock: Clock;
  ttlMs: number;
  trafficWindowMs: number;
}): DashboardChecks {
  let last: TimedReport | undefined;
  /** Which mesh `last` judged: a report on a mesh that stopped (or a new one) is not served as current. */
  let lastMesh: string | undefined;
  let pending: Promise<TimedReport> | undefined;
  let pendingMesh: string | undefined;
  const meshOf = (snapshot: Snapshot) => snapshot.runtime?.startedAt ?? 'none';

  const run = (snapshot: Snapshot, history: readonly TrafficSample[]): Promise<TimedReport> => {
    const atMs = options.clock.now();
    const identities = new Map(snapshot.identities.map((found) => [found.service, found]));
    const proxyIdentity = async (name: string): Promise<ProxyIdentityAnswer> => {
      const found = identities.get(name);
      if (found?.identity) {
        return { ok: true, identity: found.identity, status: found.status ?? 200, date: found.date };
      }
      const adminUrl = snapshot.runtime ? findService(snapshot.runtime, name).adminUrl : '?';
      return {
        ok: false,
        error: `the sidecar does not answer at ${adminUrl}: ${found?.error ?? 'not asked'}`,
      };
    };
    return runChecks({
      paths: meshPaths(snapshot.stateDir),
      runtime: snapshot.runtime,
      clock: options.clock,
      thresholds: { ...DEFAULT_CHECK_THRESHOLDS, trafficWindowMs: options.trafficWindowMs },
      stateFlag: options.stateFlag,
      trafficHistory: history.filter((sample) => sample.atMs < snapshot.atMs),
      scrape: async () => ({ proxies: [...snapshot.proxies], unreachable: [...snapshot.unreachable] }),
      proxyIdentity,
    }).then((report) => {
      last = { atMs, report };
      lastMesh = meshOf(snapshot);
      return last;
    });
  };

  return {
    latest(snapshot, history) {
      const isSameMesh = last !== undefined && lastMesh === meshOf(snapshot);
      const isFresh = isSameMesh && options.clock.now() - last!.atMs < options.ttlMs;
      if (isFresh) return Promise.resolve(last!);
      if (pending && pendingMesh !== meshOf(snapshot)) {
        // A run on the mesh that was there before: this one follows it.
        pending = pending.catch(() => last!).then(() => run(snapshot, history));
        pendingMesh = meshOf(snapshot);
      }
      if (!pending) {
        pending = run(snapshot, history);
        pendingMesh = meshOf(snapshot);
      }
      const current = pending;
      void current
        .finally(() => {
          if (pending === current) pending = undefined;
        })
        .catch(() => {});
      if (!isSameMesh) return current;
      // Serve the stale report while the new one is made; a failed run keeps the stale one.
      return Promise.resolve(last!);
    },
  };
}
