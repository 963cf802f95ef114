// `mutual check` as data: categories of checks with what they check, why it matters and the fix,
// run against the CA on disk and the running mesh. Reads; never changes anything (the caller keeps
// the traffic samples that give the traffic window, see traffic-window.ts).

export {
  type CaSource,
  type IssuerFixes,
  issuerCategory,
  lifetimeLeft,
  type PemSource,
  type TrustAnchorFixes,
  trustAnchorCategory,
  validity,
} from './ca-checks.ts';
export { clockSkew, skewResult } from './mesh-checks.ts';
export { proxyAdminUrl, proxyUrlChecks } from './proxy-url-checks.ts';
export {
  CHECK_CATEGORIES,
  type CheckReport,
  type CheckReportEntry,
  checkReportJson,
  DEFAULT_CHECK_THRESHOLDS,
  entryStatus,
  type RunChecksOptions,
  runChecks,
} from './run-checks.ts';
export {
  chooseBaseline,
  edgeCounters,
  increaseSince,
  type RefusedHandshakes,
  readTrafficSamples,
  recordTrafficSample,
  refusedHandshakes,
  type TrafficSample,
  type TrafficWindow,
} from './traffic-window.ts';
export {
  type Check,
  type CheckCategory,
  type CheckContext,
  type CheckResult,
  CheckSkipped,
  type CheckThresholds,
  fail,
  failOrSkip,
  ok,
  type ProxyIdentityAnswer,
  type RecentTraffic,
  type Severity,
  skip,
} from './types.ts';
