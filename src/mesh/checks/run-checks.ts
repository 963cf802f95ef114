import type { Clock } from '../../clock.ts';
import { buildEdges } from '../edges.ts';
import { findService, type MeshPaths, type MeshRuntime } from '../runtime.ts';
import { fetchProxyIdentity, scrapeProxies } from '../scrape.ts';
import { issuerChecks, trustAnchorChecks } from './ca-checks.ts';
import { identityServiceChecks, meshChecks, proxyChecks } from './mesh-checks.ts';
import { policyChecks, trafficChecks } from './traffic-checks.ts';
import type {
  CheckCategory,
  CheckContext,
  CheckResult,
  CheckThresholds,
  ProxyIdentityAnswer,
  Severity,
} from './types.ts';

/** Every category `mutual check` runs, in order. */
export const CHECK_CATEGORIES: readonly CheckCategory[] = [
  trustAnchorChecks,
  issuerChecks,
  meshChecks,
  identityServiceChecks,
  proxyChecks,
  trafficChecks,
  policyChecks,
];

export interface CheckReportEntry {
  readonly category: string;
  readonly description: string;
  readonly severity: Severity;
  readonly hint: string;
  readonly fix: string;
  readonly results: readonly CheckResult[];
}

export interface CheckReport {
  readonly entries: readonly CheckReportEntry[];
  readonly errors: number;
  readonly warnings: number;
}

export async function runChecks(options: {
  paths: MeshPaths;
  runtime: MeshRuntime | undefined;
  clock: Clock;
  thresholds: CheckThresholds;
  stateFlag: string;
  categories?: readonly CheckCategory[];
}): Promise<CheckReport> {
  const identities = new Map<string, Promise<ProxyIdentityAnswer>>();
  let edges: ReturnType<CheckContext['edges']> | undefined;
  const context: CheckContext = {
    ...options,
    proxyIdentity(name) {
      let answer = identities.get(name);
      if (!answer) {
        const service = findService(options.runtime!, name);
        answer = fetchProxyIdentity(service).then(
          (fetched) => ({ ok: true as const, ...fetched }),
          (error: Error) => ({
            ok: false as const,
            error: `the sidecar does not answer at ${service.adminUrl}: ${error.message}`,
          }),
        );
        identities.set(name, answer);
      }
      return answer;
    },
    edges() {
      edges ??= scrapeProxies(options.runtime!).then((scrape) => ({
        edges: buildEdges(options.runtime!, scrape.proxies),
        unreachable: scrape.unreachable,
      }));
      return edges;
    },
  };
  const entries: CheckReportEntry[] = [];
  for (const category of options.categories ?? CHECK_CATEGORIES) {
    for (const check of category.checks) {
      let results: readonly CheckResult[];
      try {
        const outcome = await check.run(context);
        results = Array.isArray(outcome) ? outcome : [outcome as CheckResult];
      } catch (error) {
        results = [{ status: 'fail', message: `the check itself failed: ${(error as Error).message}` }];
      }
      entries.push({
        category: category.name,
        description: check.description,
        severity: check.severity,
        hint: check.hint,
        fix: check.fix.replaceAll('mutual up -f mesh.yaml', `mutual up -f mesh.yaml${options.stateFlag}`),
        results,
      });
    }
  }
  const failed = (severity: Severity) =>
    entries.filter((entry) => entry.severity === severity && entry.results.some((r) => r.status === 'fail'))
      .length;
  return { entries, errors: failed('error'), warnings: failed('warning') };
}
