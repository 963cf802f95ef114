import { access } from 'node:fs/promises';
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { parseDuration, parseDurationWithin } from '../config/index.ts';
import { MutualError } from '../errors.ts';
import { kubernetesChecks } from '../k8s/checks/index.ts';
import {
  CHECK_CATEGORIES,
  type CheckReport,
  checkReportJson,
  proxyAdminUrl,
  proxyUrlChecks,
  readTrafficSamples,
  recordTrafficSample,
  runChecks,
} from '../mesh/checks/index.ts';
import { meshPaths, tryReadRuntime } from '../mesh/index.ts';
import { outputOption } from './ca-command.ts';
import type { CliContext, OutputFormat } from './context.ts';
import { renderJson } from './render.ts';
import { DEFAULT_MESH_STATE_DIR, stateFlagOf } from './up-command.ts';

interface CheckOptions {
  output: OutputFormat;
  failOn: 'error' | 'warning';
  expiryWarning: string;
  maxClockSkew: string;
  trafficWindow: string;
  stateDir: string;
  kubeconfig?: string;
  context?: string;
  kubernetes?: string;
  proxy: string[];
}

export function registerCheckCommand(program: Command, context: CliContext): void {
  program
    .command('check')
    .description(
      'check the CA, the identity service, every sidecar, the traffic and the policies, and a Kubernetes cluster when a kubeconfig is present; exit 1 on failure',
    )
    .addOption(outputOption())
    .addOption(
      new Option('--fail-on <severity>', 'exit 1 on errors only, or on warnings too')
        .choices(['error', 'warning'])
        .default('error'),
    )
    .option(
      '--expiry-warning <duration>',
      'warn when an anchor or the issuer expires sooner than this',
      '60d',
    )
    .option(
      '--max-clock-skew <duration>',
      'largest clock difference to the identity service and the sidecars',
      '20s',
    )
    .option(
      '--traffic-window <duration>',
      'judge the traffic of this last stretch of time, 1s to 24h (counters compared with a sample kept by an earlier run)',
      '60s',
    )
    .option('--state-dir <dir>', 'the state directory given to `mutual up`', DEFAULT_MESH_STATE_DIR)
    .option(
      '--kubeconfig <file>',
      'also check this cluster (default: $KUBECONFIG, then ~/.kube/config when present)',
    )
    .option('--context <name>', "the kubeconfig's context to use instead of its current-context")
    .option('--kubernetes <in-cluster>', 'check the cluster this pod runs in (its ServiceAccount)')
    .option(
      '--proxy <address>',
      'check a sidecar started with `mutual proxy run` by its --admin-listen address, e.g. 127.0.0.1:14191 (repeatable); only these, unless --state-dir or a cluster option is given too',
      (value: string, previous: string[]) => [...previous, value],
      [],
    )
    .action(async (options: CheckOptions, command: Command) =>
      check(
        options,
        command.getOptionValueSource('stateDir') === 'cli',
        ['kubeconfig', 'context', 'kubernetes'].some((name) => command.getOptionValueSource(name) === 'cli'),
        context,
      ),
    );
}

async function check(
  options: CheckOptions,
  isStateDirGiven: boolean,
  isClusterGiven: boolean,
  context: CliContext,
): Promise<void> {
  const proxyUrls = [
    ...new Set(
      options.proxy.map((address) => {
        const url = proxyAdminUrl(address);
        if (!url)
          throw new MutualError(
            'MUTUAL_CLI_USAGE',
            `--proxy ${JSON.stringify(address)} is not a sidecar's admin address: give what its --admin-listen was, e.g. 127.0.0.1:14191 or http://127.0.0.1:14191`,
          );
        return url;
      }),
    ),
  ];
  // Sidecars run by hand are checked on their own: the mesh and cluster checks only when asked for.
  const isProxyOnly = proxyUrls.length > 0 && !isStateDirGiven;
  const thresholds = {
    expiryWarningMs: parseDuration(options.expiryWarning, '--expiry-warning'),
    maxClockSkewMs: parseDuration(options.maxClockSkew, '--max-clock-skew'),
    // 0s judged 'all traffic since the sidecars started', the opposite of what was asked.
    trafficWindowMs: parseDurationWithin(options.trafficWindow, '--traffic-window', {
      atLeast: '1s',
      atMost: '24h',
    }),
  };
  const paths = meshPaths(resolve(context.cwd, options.stateDir));
  // A runtime.json that cannot be read is the mesh check's failure; the CA checks still run.
  let runtime: Awaited<ReturnType<typeof tryReadRuntime>>;
  let runtimeProblem: string | undefined;
  try {
    runtime = await tryReadRuntime(paths);
  } catch (error) {
    if (!(error instanceof MutualError) || error.code !== 'MUTUAL_MESH_RUNTIME_INVALID') throw error;
    runtimeProblem = error.message;
  }
  // The cluster is read like kubectl finds it; the environment is read here, as kubectl's is.
  const kubernetes =
    proxyUrls.length > 0 && !isClusterGiven
      ? undefined
      : await kubernetesChecks(
          options,
          { env: process.env, cwd: context.cwd, home: homedir() },
          context.clock,
        );
  // Pointed at a cluster from a machine without a local mesh, the one-machine checks only fail.
  const hasLocalMesh =
    !kubernetes ||
    isStateDirGiven ||
    runtime !== undefined ||
    runtimeProblem !== undefined ||
    (await access(paths.bundle).then(
      () => true,
      () => false,
    ));
  const report = await runChecks({
    categories: [
      ...(proxyUrls.length > 0 ? [proxyUrlChecks(proxyUrls)] : []),
      ...(hasLocalMesh && !isProxyOnly ? CHECK_CATEGORIES : []),
      ...(kubernetes ? kubernetes.categories : []),
    ],
    paths,
    runtime: isProxyOnly ? undefined : runtime,
    ...(runtimeProblem === undefined ? {} : { runtimeProblem }),
    clock: context.clock,
    thresholds,
    stateFlag: stateFlagOf(options.stateDir),
    trafficHistory: runtime ? await readTrafficSamples(paths, runtime) : [],
  });
  if (runtime && report.trafficSample) {
    await recordTrafficSample(paths, runtime, report.trafficSample, { windowMs: thresholds.trafficWindowMs });
  }
  const isFailed = report.errors > 0 || (options.failOn === 'warning' && report.warnings > 0);
  context.write(
    options.output === 'json' ? renderJson(checkJson(report, isFailed)) : renderCheckReport(report),
  );
  if (isFailed) context.setExitCode(1);
}

function checkJson(report: CheckReport, isFailed: boolean) {
  return { success: !isFailed, ...checkReportJson(report) };
}

const FAILED_MARK = { error: '×', warning: '‼', info: 'i' } as const;

/** linkerd-check style: one line per check, failures with the subjects, why and the fix. */
export function renderCheckReport(report: CheckReport): string {
  const lines: string[] = [];
  let category = '';
  for (const entry of report.entries) {
    if (entry.category !== category) {
      category = entry.category;
      lines.push(`${lines.length > 0 ? '\n' : ''}${category}`, '-'.repeat(category.length));
      if (category === 'traffic' && report.trafficWindow) {
        lines.push(`· judged on ${report.trafficWindow.description}`);
      }
    }
    const failed = entry.results.filter((result) => result.status === 'fail');
    const isSkipped = entry.results.every((result) => result.status === 'skip');
    if (failed.length === 0) {
      // A passing subject with something to say says it beside its name ("once: completed, …").
      const subjects = entry.results.flatMap((result) =>
        result.subject && result.status === 'ok'
          ? [result.message ? `${result.subject}: ${result.message}` : result.subject]
          : [],
      );
      // A subject that could not be judged is named as such, never listed among the good ones.
      const skipped = isSkipped
        ? []
        : entry.results.flatMap((result) =>
            result.subject && result.status === 'skip' ? [`${result.subject}: ${result.message}`] : [],
          );
      const messages = entry.results.flatMap((result) =>
        !result.subject && result.message ? [result.message] : [],
      );
      const note = isSkipped
        ? ` (skipped: ${entry.results[0]?.message})`
        : subjects.length > 0
          ? ` (${subjects.join(', ')})`
          : messages.length > 0
            ? `: ${messages.join('; ')}`
            : '';
      lines.push(
        `${isSkipped ? '-' : '√'} ${entry.description}${note}${skipped.length > 0 ? `; skipped for ${skipped.join('; ')}` : ''}`,
      );
      continue;
    }
    lines.push(`${FAILED_MARK[entry.severity]} ${entry.description}`);
    for (const result of failed) {
      lines.push(`    ${result.subject ? `${result.subject}: ` : ''}${result.message}`);
      for (const detail of result.details ?? []) lines.push(`      ${detail.replaceAll('\n', '\n      ')}`);
    }
    if (entry.severity !== 'info') {
      lines.push(`    why: ${entry.hint}`, `    fix: ${entry.fix}`);
    }
  }
  const summary =
    report.errors === 0 && report.warnings === 0
      ? 'Status check results are √'
      : `Status check results: ${report.errors} error${report.errors === 1 ? '' : 's'}, ${report.warnings} warning${report.warnings === 1 ? '' : 's'}`;
  return `${lines.join('\n')}\n\n${summary}\n`;
}
