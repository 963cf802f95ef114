import { readFile } from 'node:fs/promises';
import type { Clock } from '../../clock.ts';
import { parseCertificatesPem } from '../../pki/index.ts';
import { buildEdges } from '../edges.ts';
import { isRunning } from '../processes.ts';
import { type HttpAnswer, httpGet } from '../readiness.ts';
import { findService, type MeshPaths, type MeshRuntime, type RuntimeProcess } from '../runtime.ts';
import { fetchProxyIdentity, type ScrapeResult, scrapeProxies } from '../scrape.ts';
import { issuerChecks, trustAnchorChecks } from './ca-checks.ts';
import { destinationServiceChecks } from './destination-checks.ts';
import { identityServiceChecks, meshChecks, proxyChecks } from './mesh-checks.ts';
import { policyChecks, trafficChecks } from './traffic-checks.ts';
import {
  chooseBaseline,
  increaseSince,
  refusedHandshakes,
  type TrafficSample,
  type TrafficWindow,
} from './traffic-window.ts';
import {
  AnsweredByAnother,
  type CheckCategory,
  type CheckContext,
  type CheckResult,
  CheckSkipped,
  type CheckThresholds,
  type ProxyIdentityAnswer,
  type RecentTraffic,
  type Severity,
  shellWord,
} from './types.ts';

/** Every category `mutual check` runs, in order. */
export const CHECK_CATEGORIES: readonly CheckCategory[] = [
  trustAnchorChecks,
  issuerChecks,
  meshChecks,
  identityServiceChecks,
  destinationServiceChecks,
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
  /** What the traffic checks judged; undefined when they did not look at traffic (no mesh). */
  readonly trafficWindow: TrafficWindow | undefined;
  /** The sidecars' counters as scraped for this run, to keep as the next run's baseline. */
  readonly trafficSample: TrafficSample | undefined;
}

export interface RunChecksOptions {
  readonly paths: MeshPaths;
  readonly runtime: MeshRuntime | undefined;
  readonly runtimeProblem?: string;
  readonly clock: Clock;
  readonly thresholds: CheckThresholds;
  readonly stateFlag: string;
  readonly categories?: readonly CheckCategory[];
  /** Earlier samples of the counters (stored by earlier runs, or the dashboard's history). */
  readonly trafficHistory?: readonly TrafficSample[];
  /** Reuse what a caller already fetched (the dashboard's snapshot) instead of asking again. */
  readonly scrape?: () => Promise<ScrapeResult>;
  readonly proxyIdentity?: (service: string) => Promise<ProxyIdentityAnswer>;
}

export async function runChecks(options: RunChecksOptions): Promise<CheckReport> {
  const identities = new Map<string, Promise<ProxyIdentityAnswer>>();
  const adminAnswers = new Map<string, Promise<HttpAnswer | Error>>();
  let traffic: Promise<RecentTraffic> | undefined;
  let trafficSample: TrafficSample | undefined;
  const owners = processesByAdminOrigin(options.runtime);
  const context: CheckContext = {
    ...options,
    proxyIdentity(name) {
      let answer = identities.get(name);
      if (!answer && options.proxyIdentity) {
        answer = options.proxyIdentity(name);
        identities.set(name, answer);
      }
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
    adminGet(url) {
      let answer = adminAnswers.get(url);
      if (!answer) {
        const owner = owners.get(new URL(url).origin);
        answer = httpGet(url).then(
          (answered) =>
            owner && owner.pid > 0 && !isRunning(owner)
              ? new AnsweredByAnother(
                  `another process answers there, not the one \`mutual up\` started (\`ss -ltnp 'sport = :${new URL(url).port}'\` names it)`,
                )
              : answered,
          (error: Error) => error,
        );
        adminAnswers.set(url, answer);
      }
      return answer;
    },
    traffic() {
      traffic ??= (async () => {
        const runtime = options.runtime!;
        const atMs = options.clock.now();
        const scrape = await (options.scrape ?? (() => scrapeProxies(runtime)))();
        trafficSample = { atMs, proxies: scrape.proxies };
        const startedMs = Date.parse(runtime.startedAt);
        const { baseline, window } = chooseBaseline(options.trafficHistory ?? [], {
          nowMs: atMs,
          windowMs: options.thresholds.trafficWindowMs,
          meshStartedMs: Number.isNaN(startedMs) ? undefined : startedMs,
        });
        const recent = increaseSince(scrape.proxies, baseline?.proxies);
        return {
          edges: buildEdges(runtime, recent),
          unreachable: scrape.unreachable,
          refusedHandshakes: refusedHandshakes(recent),
          window,
        };
      })();
      return traffic;
    },
  };
  // The CA fixes name it; without a running mesh (up refuses an expired CA) it is the anchors'.
  const trustDomain = options.runtime?.trustDomain ?? (await bundleTrustDomain(options.paths.bundle));
  // Every check at once: each waits on its own probes (up to a few seconds for a process that
  // accepts and never answers), so run one after the other they added up past 20 s.
  const categories = options.categories ?? CHECK_CATEGORIES;
  const entries: CheckReportEntry[] = (
    await Promise.all(
      categories.map((category) =>
        Promise.all(
          category.checks.map(async (check): Promise<CheckReportEntry> => {
            let results: readonly CheckResult[];
            try {
              const outcome = await check.run(context);
              results = Array.isArray(outcome) ? outcome : [outcome as CheckResult];
            } catch (error) {
              results = [
                error instanceof CheckSkipped
                  ? { status: 'skip', message: error.message }
                  : { status: 'fail', message: `the check itself failed: ${(error as Error).message}` },
              ];
            }
            const advice = (text: string) =>
              withStateFlag(
                withMeshNames(text, options.paths.stateDir, options.runtime, trustDomain),
                options.stateFlag,
              );
            return {
              category: category.name,
              description: check.description,
              severity: check.severity,
              hint: check.hint,
              fix: advice(withFailedService(check.fix, results, options.runtime)),
              results: results.map((result) => ({
                ...result,
                message: advice(result.message),
                ...(result.details ? { details: result.details.map(advice) } : {}),
              })),
            };
          }),
        ),
      ),
    )
  ).flat();
  const failed = (severity: Severity) =>
    entries.filter((entry) => entry.severity === severity && entry.results.some((r) => r.status === 'fail'))
      .length;
  return {
    entries,
    errors: failed('error'),
    warnings: failed('warning'),
    trafficWindow: traffic ? (await traffic.catch(() => undefined))?.window : undefined,
    trafficSample,
  };
}

/** The trust domain of the first root in bundle.pem (its spiffe:// URI SAN), if it can be read. */
async function bundleTrustDomain(path: string): Promise<string | undefined> {
  try {
    const [root] = parseCertificatesPem(await readFile(path, 'utf8'), path);
    const uri = root?.uris.find((name) => name.startsWith('spiffe://'));
    return uri ? new URL(uri).hostname : undefined;
  } catch {
    return undefined;
  }
}

/** The processes `mutual up` started, by the origin of their admin URL. */
function processesByAdminOrigin(runtime: MeshRuntime | undefined): Map<string, RuntimeProcess> {
  const owners = new Map<string, RuntimeProcess>();
  if (!runtime) return owners;
  owners.set(new URL(runtime.identity.adminUrl).origin, runtime.identity);
  if (runtime.destination) owners.set(new URL(runtime.destination.adminUrl).origin, runtime.destination);
  for (const service of runtime.services) owners.set(new URL(service.adminUrl).origin, service.proxy);
  return owners;
}

/**
 * The advice's placeholders as this mesh names them: STATE_DIR, TRUST_DOMAIN, `mutual up -f mesh.yaml` (the file
 * it was started from, and its isolation) and `mutual policy check DIR`. Followed as printed from
 * another directory, `mesh.yaml` was a file that is not there, STATE_DIR one to guess.
 */
export function withMeshNames(
  text: string,
  stateDir: string,
  runtime: MeshRuntime | undefined,
  trustDomain = runtime?.trustDomain,
): string {
  let named = text.replaceAll('STATE_DIR', shellWord(stateDir));
  if (trustDomain) named = named.replaceAll('TRUST_DOMAIN', trustDomain);
  if (!runtime) return named;
  const isolation = runtime.isolation === 'netns' ? ' --isolation netns' : '';
  named = named.replaceAll('mutual up -f mesh.yaml', `mutual up -f ${shellWord(runtime.file)}${isolation}`);
  return runtime.policyDir
    ? named.replaceAll('`mutual policy check DIR`', `\`mutual policy check ${shellWord(runtime.policyDir)}\``)
    : named;
}

/**
 * The fix's SERVICE as the services that failed: `mutual logs SERVICE --proxy` was left for the
 * operator to fill in from the lines above. Each quoted command with SERVICE is given once per
 * failed service (the first three), when every failed subject is a service of this mesh.
 */
export function withFailedService(
  fix: string,
  results: readonly CheckResult[],
  runtime: MeshRuntime | undefined,
): string {
  const failed = [
    ...new Set(
      results.flatMap((result) => (result.status === 'fail' && result.subject ? [result.subject] : [])),
    ),
  ];
  if (
    failed.length === 0 ||
    !failed.every((name) => runtime?.services.some((service) => service.name === name))
  )
    return fix;
  return fix.replace(/`([^`]*\bSERVICE\b[^`]*)`/g, (_quoted, command: string) =>
    failed
      .slice(0, 3)
      .map((name) => `\`${command.replaceAll('SERVICE', name)}\``)
      .join(', '),
  );
}

/** The commands that read a state directory; the advice naming them must name the one checked. */
const STATE_DIR_COMMAND = /^mutual (up -f|down|logs|identity|edges|check|dashboard)\b/;

/**
 * Adds the --state-dir the check was given (` --state-dir st`, or '' for the default) to every
 * quoted `mutual …` command of a state directory in `text`: advice without it reads another mesh
 * (`mutual logs web --proxy` showed the default directory's logs, not the mesh being checked).
 * `mutual check --proxy ADDR` reads no state directory and is left as it is.
 */
export function withStateFlag(text: string, stateFlag: string): string {
  if (!stateFlag) return text;
  return text.replace(/`([^`]+)`/g, (_quoted, inner: string) => {
    const commands = inner
      .split(' && ')
      .map((command) =>
        STATE_DIR_COMMAND.test(command) && !/--state-dir|^mutual check .*--proxy/.test(command)
          ? `${command}${stateFlag}`
          : command,
      );
    return `\`${commands.join(' && ')}\``;
  });
}

/** Defaults of `mutual check` (and the dashboard's checks). */
export const DEFAULT_CHECK_THRESHOLDS: CheckThresholds = {
  expiryWarningMs: 60 * 86_400_000,
  maxClockSkewMs: 20_000,
  trafficWindowMs: 60_000,
};

/** Ok, failed, or skipped (every result skipped). */
export function entryStatus(entry: CheckReportEntry): 'ok' | 'fail' | 'skip' {
  if (entry.results.some((result) => result.status === 'fail')) return 'fail';
  return entry.results.every((result) => result.status === 'skip') ? 'skip' : 'ok';
}

/** The report as `mutual check -o json` and the dashboard's /api/checks print it. */
export function checkReportJson(report: CheckReport) {
  return {
    errors: report.errors,
    warnings: report.warnings,
    trafficWindow: report.trafficWindow ?? null,
    checks: report.entries.map((entry) => ({
      category: entry.category,
      description: entry.description,
      severity: entry.severity,
      status: entryStatus(entry),
      hint: entry.hint,
      fix: entry.fix,
      results: entry.results,
    })),
  };
}
