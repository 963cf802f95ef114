import type { Clock } from '../../clock.ts';
import type { Edge } from '../edges.ts';
import type { HttpAnswer } from '../readiness.ts';
import type { MeshPaths, MeshRuntime } from '../runtime.ts';
import type { ProxyIdentity } from '../scrape.ts';
import type { RefusedHandshakes, TrafficWindow } from './traffic-window.ts';

export type Severity = 'error' | 'warning' | 'info';

/** The outcome of one check, or of one check for one subject (a service, a root). */
export interface CheckResult {
  readonly status: 'ok' | 'fail' | 'skip';
  /** Filled in by the check; the description is used when it is empty. */
  readonly message: string;
  /** The service or certificate the result is about, if the check runs per subject. */
  readonly subject?: string;
  /** Extra lines for a failure: the actual times, the error text ... */
  readonly details?: readonly string[];
}

/**
 * One check, as data (linkerd2 pkg/healthcheck): what it checks, why a failure matters, the
 * command that fixes it, how bad a failure is, and how to run it.
 */
export interface Check {
  readonly description: string;
  readonly hint: string;
  readonly fix: string;
  readonly severity: Severity;
  run(context: CheckContext): Promise<CheckResult | readonly CheckResult[]>;
}

export interface CheckCategory {
  readonly name: string;
  readonly checks: readonly Check[];
}

export interface CheckThresholds {
  /** Anchors and the issuer must stay valid at least this long (default 60 days). */
  readonly expiryWarningMs: number;
  /** Largest clock difference to the identity service and the proxies (default 20 s, the SVID skew). */
  readonly maxClockSkewMs: number;
  /** The traffic checks judge the counters' increase over this window (default 60 s). */
  readonly trafficWindowMs: number;
}

/** What checks read, fetched once per run and shared. */
export interface CheckContext {
  readonly paths: MeshPaths;
  readonly runtime: MeshRuntime | undefined;
  /** Why runtime.json could not be read, when it is there but unusable (runtime is then undefined). */
  readonly runtimeProblem?: string;
  readonly clock: Clock;
  readonly thresholds: CheckThresholds;
  /** The `mutual up` hints carry this, e.g. ` --state-dir st`. */
  readonly stateFlag: string;
  readonly proxyIdentity: (service: string) => Promise<ProxyIdentityAnswer>;
  /**
   * GET of an admin URL (`…/ready`), asked once per run and shared: a check that depends on a
   * process answering skips, rather than fails again with other advice, when this is an Error.
   */
  readonly adminGet: (url: string) => Promise<HttpAnswer | Error>;
  /** Edges of the recent traffic only: each counter's increase over the traffic window. */
  readonly traffic: () => Promise<RecentTraffic>;
}

export interface RecentTraffic {
  readonly edges: readonly Edge[];
  readonly unreachable: ReadonlyArray<{ service: string; error: string }>;
  /** Inbound TLS handshakes each sidecar refused in the window, by reason (sidecars that refused some). */
  readonly refusedHandshakes: readonly RefusedHandshakes[];
  readonly window: TrafficWindow;
}

export type ProxyIdentityAnswer =
  | { ok: true; identity: ProxyIdentity; status: number; date: string | undefined }
  | { ok: false; error: string };

export const ok = (message = '', subject?: string): CheckResult => ({
  status: 'ok',
  message,
  ...(subject === undefined ? {} : { subject }),
});
export const fail = (message: string, subject?: string, details?: readonly string[]): CheckResult => ({
  status: 'fail',
  message,
  ...(subject === undefined ? {} : { subject }),
  ...(details === undefined ? {} : { details }),
});
export const skip = (message: string, subject?: string): CheckResult => ({
  status: 'skip',
  message,
  ...(subject === undefined ? {} : { subject }),
});

/**
 * Thrown by a check (or what it reads) when it cannot judge, e.g. the cluster's API server is not
 * reachable: the result is a skip with this message instead of a failure repeated per check.
 */
export class CheckSkipped extends Error {}

/**
 * What `adminGet` gives when an answer comes while the process `mutual up` started at that URL has
 * exited: another process has its port. Checks that depend on the process skip, as when it does
 * not answer; the one that asks whether it is ready fails with this.
 */
export class AnsweredByAnother extends Error {}

/** A caught error as a result: a skip for CheckSkipped, else a failure with its message. */
export const failOrSkip = (error: unknown, subject?: string): CheckResult =>
  error instanceof CheckSkipped ? skip(error.message, subject) : fail((error as Error).message, subject);

/** `1 sidecar`, `3 sidecars` (`many` for an irregular plural). */
export const plural = (count: number, what: string, many = `${what}s`): string =>
  `${count} ${count === 1 ? what : many}`;

/** A path as a POSIX shell reads it back: as is when plain, else in single quotes. */
export const shellWord = (path: string) =>
  /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", "'\\''")}'`;
