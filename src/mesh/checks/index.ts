// `mutual check` as data: categories of checks with what they check, why it matters and the fix,
// run against the CA on disk and the running mesh. Reads; never changes anything.

export { CHECK_CATEGORIES, type CheckReport, type CheckReportEntry, runChecks } from './run-checks.ts';
export type { Check, CheckCategory, CheckContext, CheckResult, CheckThresholds, Severity } from './types.ts';
