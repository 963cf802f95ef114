// Which cluster `mutual check` looks at, the way kubectl finds it: --kubernetes in-cluster, then
// --kubeconfig FILE, then $KUBECONFIG (the first of its files that exists), then ~/.kube/config
// when present. No cluster is no Kubernetes category; an unusable one is a failed first check.
import { access } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import type { Clock } from '../../clock.ts';
import { MutualError } from '../../errors.ts';
import { type CheckCategory, CheckSkipped } from '../../mesh/checks/index.ts';
import { createKubeClient, inClusterConnection, kubeconfigConnection } from '../kube-client/index.ts';
import { clusterCaChecks } from './cluster-ca-checks.ts';
import { createClusterView } from './cluster-view.ts';
import { apiServerChecks, controlPlaneChecks } from './control-plane-checks.ts';
import { dataPlaneChecks } from './data-plane-checks.ts';
import { policyValidatorChecks } from './policy-validator-checks.ts';
import { webhookChecks } from './webhook-checks.ts';

export interface KubernetesTargetFlags {
  readonly kubernetes?: string;
  readonly kubeconfig?: string;
  readonly context?: string;
}

export interface KubernetesTargetEnvironment {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /** The user's home directory, for ~/.kube/config. */
  readonly home: string;
  /** Timeout of each API request (default 10 s). */
  readonly timeoutMs?: number;
}

/** Where the cluster came from (for messages) and every Kubernetes check category bound to it. */
export interface KubernetesChecks {
  readonly source: string;
  readonly categories: readonly CheckCategory[];
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/** The kubeconfig file to use and how it was chosen; undefined when there is none. */
export async function findKubeconfig(
  flags: KubernetesTargetFlags,
  environment: KubernetesTargetEnvironment,
): Promise<{ file: string; source: string } | undefined> {
  if (flags.kubeconfig !== undefined) {
    return { file: resolve(environment.cwd, flags.kubeconfig), source: '--kubeconfig' };
  }
  for (const file of (environment.env.KUBECONFIG ?? '').split(delimiter).filter(Boolean)) {
    const path = resolve(environment.cwd, file);
    if (await exists(path)) return { file: path, source: 'KUBECONFIG' };
  }
  const home = join(environment.home, '.kube', 'config');
  return (await exists(home)) ? { file: home, source: '~/.kube/config' } : undefined;
}

/**
 * The Kubernetes check categories for the cluster the flags and environment name, or undefined
 * when none is configured. Bad flag combinations throw MUTUAL_CLI_USAGE; a kubeconfig that cannot
 * be used becomes the first check's failure.
 */
export async function kubernetesChecks(
  flags: KubernetesTargetFlags,
  environment: KubernetesTargetEnvironment,
  clock: Clock,
): Promise<KubernetesChecks | undefined> {
  if (flags.kubernetes !== undefined && flags.kubernetes !== 'in-cluster') {
    throw new MutualError(
      'MUTUAL_CLI_USAGE',
      `--kubernetes ${JSON.stringify(flags.kubernetes)}: the only value is in-cluster; outside a cluster give --kubeconfig FILE`,
    );
  }
  if (flags.kubernetes !== undefined && flags.kubeconfig !== undefined) {
    throw new MutualError('MUTUAL_CLI_USAGE', 'give --kubernetes in-cluster or --kubeconfig FILE, not both');
  }
  let source: string;
  let connecting: Promise<Parameters<typeof createKubeClient>[0]>;
  if (flags.kubernetes === 'in-cluster') {
    source = 'in-cluster';
    connecting = inClusterConnection(environment.env);
  } else {
    const found = await findKubeconfig(flags, environment);
    if (!found) {
      if (flags.context === undefined) return undefined;
      throw new MutualError(
        'MUTUAL_CLI_USAGE',
        `--context ${flags.context} needs a kubeconfig: give --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config`,
      );
    }
    source = `${found.file} (${found.source}${flags.context ? `, context ${flags.context}` : ''})`;
    connecting = kubeconfigConnection(found.file, flags.context);
  }
  const isImplicit = flags.kubernetes === undefined && flags.kubeconfig === undefined;
  const target = await connecting.then(
    (connection) => ({
      client: createKubeClient(connection, { timeoutMs: environment.timeoutMs ?? 10_000 }),
    }),
    (error: Error) => ({
      server: source,
      // A kubeconfig nobody asked for (say, one that logs in through a plugin) is no failure.
      error: isImplicit
        ? new CheckSkipped(
            `${source} cannot be used: ${error.message}; give --kubeconfig FILE to check a cluster`,
          )
        : error,
    }),
  );
  const view = createClusterView(target, clock);
  return {
    source,
    categories: [
      apiServerChecks(view),
      controlPlaneChecks(view),
      ...clusterCaChecks(view),
      webhookChecks(view),
      policyValidatorChecks(view),
      dataPlaneChecks(view),
    ],
  };
}
