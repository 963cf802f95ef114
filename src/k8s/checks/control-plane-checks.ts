// The API server (reachable, its version, its clock against ours) and the control plane's
// Deployments in mutual-system (every replica available).
import {
  type Check,
  type CheckCategory,
  clockSkew,
  fail,
  failOrSkip,
  ok,
  skewResult,
  skip,
} from '../../mesh/checks/index.ts';
import { CONTROL_PLANE, CONTROL_PLANE_NAMESPACE } from '../constants.ts';
import type { ClusterView } from './cluster-view.ts';

export function apiServerChecks(view: ClusterView): CheckCategory {
  return {
    name: 'kubernetes api',
    checks: [
      {
        description: 'can reach the Kubernetes API server',
        hint: 'every other Kubernetes check reads the cluster through it',
        fix: 'check the kubeconfig and context (`kubectl version` with the same --kubeconfig and --context), the network path to the API server and the credentials',
        severity: 'error',
        async run() {
          try {
            const version = await view.version();
            return ok(`${view.server} (Kubernetes ${version.gitVersion})`);
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
      {
        description: 'Kubernetes is 1.29 or newer (native sidecars)',
        hint: 'the proxy is injected as a native sidecar (an init container with restartPolicy: Always); an older API server drops that field, so mutual-proxy becomes an init container that never exits and every injected pod stays in Init',
        fix: 'upgrade the cluster to Kubernetes 1.29 or newer (on 1.28, enable the SidecarContainers feature gate on the API server and every kubelet); until then do not label namespaces for injection',
        severity: 'error',
        async run() {
          let version: Awaited<ReturnType<ClusterView['version']>>;
          try {
            version = await view.version();
          } catch {
            return skip('the API server is not reachable');
          }
          const release = kubernetesRelease(version.gitVersion);
          if (release === undefined) {
            return skip(`cannot tell the release from the version ${JSON.stringify(version.gitVersion)}`);
          }
          const text = `Kubernetes ${version.gitVersion}`;
          return release.major > 1 || (release.major === 1 && release.minor >= NATIVE_SIDECAR_MINOR)
            ? ok(text)
            : fail(
                `${text} does not run native sidecars: injected pods would never leave Init (mutual-proxy would wait as an init container that never exits)`,
              );
        },
      },
      {
        description: "this machine's clock agrees with the API server's",
        hint: "these checks judge certificate lifetimes on this machine's clock, the cluster on its own; a difference makes fresh certificates look expired or not yet valid on one side",
        fix: 'synchronise the clocks (NTP: `timedatectl set-ntp true`, here and on the nodes)',
        severity: 'error',
        async run(context) {
          let version: Awaited<ReturnType<ClusterView['version']>>;
          try {
            version = await view.version();
          } catch {
            return skip('the API server is not reachable');
          }
          return skewResult(
            clockSkew(version.date, version.sentMs, version.receivedMs),
            'the API server',
            version.date,
            context,
          );
        },
      },
    ],
  };
}

/** Native sidecars (init containers with restartPolicy: Always) are on by default from 1.29. */
const NATIVE_SIDECAR_MINOR = 29;

/** `v1.28.4-eks-abc`, `v1.29.0+k3s1` → { major: 1, minor: 28 }; undefined when not such a version. */
export function kubernetesRelease(gitVersion: string): { major: number; minor: number } | undefined {
  const match = /^v?(\d+)\.(\d+)(?:\.|$|[-+])/.exec(gitVersion.trim());
  return match ? { major: Number(match[1]), minor: Number(match[2]) } : undefined;
}

interface DeploymentLike {
  readonly spec?: { readonly replicas?: number };
  readonly status?: {
    readonly availableReplicas?: number;
    readonly conditions?: ReadonlyArray<{
      type?: string;
      status?: string;
      reason?: string;
      message?: string;
    }>;
  };
}

const WHY_NEEDED = {
  identity: 'without it no proxy gets or renews a certificate; running ones keep theirs until they expire',
  destination:
    'proxies ask it whether a destination is meshed and which identity to expect; without it they cannot verify who they talk to',
  injector:
    'it adds the proxy to new pods; without it they start unmeshed (failurePolicy Ignore) or not at all (Fail)',
} as const;

function deploymentCheck(view: ClusterView, component: keyof typeof WHY_NEEDED): Check {
  const { name } = CONTROL_PLANE[component];
  const ns = CONTROL_PLANE_NAMESPACE;
  return {
    description: `deployment ${name} has all replicas available`,
    hint: WHY_NEEDED[component],
    fix: `see why: \`kubectl -n ${ns} describe deploy/${name}\` and its log, \`kubectl -n ${ns} logs deploy/${name}\``,
    severity: 'error',
    async run() {
      try {
        const deployment = await view.get<DeploymentLike>(
          `/apis/apps/v1/namespaces/${ns}/deployments/${name}`,
        );
        if (!deployment) {
          return fail(`deployment ${ns}/${name} does not exist`, undefined, [
            'install the control plane: `mutual install | kubectl apply -f -` (docs/kubernetes.md)',
          ]);
        }
        const desired = deployment.spec?.replicas ?? 1;
        const available = deployment.status?.availableReplicas ?? 0;
        if (available >= desired) return ok(`${available} of ${desired}`);
        const conditions = (deployment.status?.conditions ?? [])
          .filter((condition) => condition.status !== 'True')
          .map((c) => `${c.type}: ${c.reason ?? ''}${c.message ? ` (${c.message})` : ''}`);
        return fail(`${available} of ${desired} replicas available`, name, conditions);
      } catch (error) {
        return failOrSkip(error);
      }
    },
  };
}

export function controlPlaneChecks(view: ClusterView): CheckCategory {
  return {
    name: 'kubernetes control plane',
    checks: [
      deploymentCheck(view, 'identity'),
      deploymentCheck(view, 'destination'),
      deploymentCheck(view, 'injector'),
    ],
  };
}
