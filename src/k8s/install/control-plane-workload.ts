// The shape every control-plane component shares: a ServiceAccount, a Deployment of the one image
// with a restricted security context and probes on its admin port, and a Service.
import { VERSION } from '../../version.ts';
import { CONTROL_PLANE_NAMESPACE, LABELS, PROXY_UID } from '../constants.ts';
import type { ImagePullPolicy } from './install-options.ts';

/** A Kubernetes object as rendered: plain JSON, key order as written. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

export type ComponentName = 'identity' | 'destination' | 'injector';

export function componentLabels(component: ComponentName): Record<string, string> {
  return {
    'app.kubernetes.io/name': `mutual-${component}`,
    'app.kubernetes.io/part-of': 'mutual',
    'app.kubernetes.io/version': VERSION,
    [LABELS.controlPlaneComponent]: component,
  };
}

export function partOfLabels(): Record<string, string> {
  return { 'app.kubernetes.io/part-of': 'mutual', 'app.kubernetes.io/version': VERSION };
}

export function metadata(name: string, labels: Record<string, string>, namespace = CONTROL_PLANE_NAMESPACE) {
  return { name, namespace, labels };
}

export function serviceAccount(name: string, component: ComponentName): K8sObject {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: metadata(name, componentLabels(component)) };
}

export interface DeploymentSpec {
  component: ComponentName;
  name: string;
  serviceAccount: string;
  image: string;
  imagePullPolicy: ImagePullPolicy;
  replicas: number;
  args: string[];
  /** Must include one named `admin`: the probes use it. */
  ports: { name: string; containerPort: number }[];
  volumes?: Record<string, unknown>[];
  volumeMounts?: Record<string, unknown>[];
}

export function controlPlaneDeployment(spec: DeploymentSpec): K8sObject {
  const selector = { [LABELS.controlPlaneComponent]: spec.component };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadata(spec.name, componentLabels(spec.component)),
    spec: {
      replicas: spec.replicas,
      selector: { matchLabels: selector },
      template: {
        metadata: {
          labels: componentLabels(spec.component),
          // The control plane is never meshed by its own injector (the webhook skips this namespace too).
          annotations: { 'mutual.dev/inject': 'disabled' },
        },
        spec: {
          serviceAccountName: spec.serviceAccount,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: PROXY_UID,
            runAsGroup: PROXY_UID,
            fsGroup: PROXY_UID,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: spec.component,
              image: spec.image,
              imagePullPolicy: spec.imagePullPolicy,
              args: spec.args,
              ports: spec.ports.map((port) => ({ ...port, protocol: 'TCP' })),
              livenessProbe: probe('/live', 3),
              readinessProbe: probe('/ready', 1),
              resources: {
                requests: { cpu: '100m', memory: '96Mi' },
                limits: { memory: '256Mi' },
              },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              ...(spec.volumeMounts ? { volumeMounts: spec.volumeMounts } : {}),
            },
          ],
          ...(spec.volumes ? { volumes: spec.volumes } : {}),
          // Several replicas are for availability: spread over nodes where the cluster can.
          ...(spec.replicas > 1
            ? {
                topologySpreadConstraints: [
                  {
                    maxSkew: 1,
                    topologyKey: 'kubernetes.io/hostname',
                    whenUnsatisfiable: 'ScheduleAnyway',
                    labelSelector: { matchLabels: selector },
                  },
                ],
              }
            : {}),
        },
      },
    },
  };
}

/**
 * With several replicas, a PodDisruptionBudget letting a node drain evict one at a time: without
 * it a drain (a cluster upgrade) may evict them all at once, and under the webhook's failurePolicy
 * Fail no pod could be created anywhere until one is back. One replica gets none (a budget that
 * allows no eviction would block drains).
 */
export function controlPlaneDisruptionBudget(
  component: ComponentName,
  name: string,
  replicas: number,
): K8sObject[] {
  if (replicas <= 1) return [];
  return [
    {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: metadata(name, componentLabels(component)),
      spec: { maxUnavailable: 1, selector: { matchLabels: { [LABELS.controlPlaneComponent]: component } } },
    },
  ];
}

/** An HTTP probe on the container port named `admin` (every daemon serves /live and /ready there). */
function probe(path: string, failureThreshold: number) {
  return { httpGet: { path, port: 'admin' }, periodSeconds: 10, timeoutSeconds: 2, failureThreshold };
}

export function controlPlaneService(
  name: string,
  component: ComponentName,
  ports: { name: string; port: number; targetPort: number | string }[],
): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(name, componentLabels(component)),
    spec: {
      type: 'ClusterIP',
      selector: { [LABELS.controlPlaneComponent]: component },
      ports: ports.map((port) => ({ ...port, protocol: 'TCP' })),
    },
  };
}
