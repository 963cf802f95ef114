// A healthy cluster for `mutual check`, made of the real output of `mutual install` (renderInstall)
// and `mutual inject` (injectManifests) as the API server would hold it once applied: Deployments
// with their status, the namespaces, and pods created from the injected pod templates the way a
// ReplicaSet creates them (owner reference, pod-template-hash).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { fixedClock } from '../../src/clock.ts';
import {
  DEFAULT_INJECT_OPTIONS,
  type InstallFlags,
  injectManifests,
  parseInstallFlags,
  type RenderedInstall,
  renderInstall,
} from '../../src/k8s/index.ts';
import type { FakeObject } from './fake-cluster.ts';

export const NOW = Date.parse('2030-01-01T00:00:00Z');

const APPS = `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      serviceAccountName: web
      containers:
        - name: web
          image: nginx:1.27
          ports: [{ containerPort: 8080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: payments, namespace: billing }
spec:
  replicas: 1
  selector: { matchLabels: { app: payments } }
  template:
    metadata:
      labels: { app: payments }
      annotations: { mutual.dev/inject: enabled }
    spec:
      containers: [{ name: payments, image: payments:2 }]
`;

export interface RenderedCluster {
  readonly install: RenderedInstall;
  readonly objects: FakeObject[];
}

/** `mutual install` with `flags` at `atMs`, plus namespaces, apps injected with its anchors and their pods. */
export async function renderCluster(
  options: { flags?: InstallFlags; atMs?: number; anchorsPem?: string } = {},
): Promise<RenderedCluster> {
  const cwd = await mkdtemp(join(tmpdir(), 'mutual-check-cluster-'));
  try {
    const install = await renderInstall(parseInstallFlags(options.flags ?? {}), {
      clock: fixedClock(options.atMs ?? NOW),
      cwd,
    });
    const objects = install.objects.map((object) =>
      object.kind === 'Deployment' ? withAvailableStatus(object as FakeObject) : (object as FakeObject),
    );
    return {
      install,
      objects: [
        ...objects,
        namespace('shop', { 'mutual.dev/inject': 'enabled' }),
        namespace('billing'),
        namespace('default'),
        ...injectedPods(options.anchorsPem ?? install.identityCa.trustAnchorsPem, install),
        // Finished and host-network pods are never injected and never reported.
        plainPod('shop', 'migrate-db-x7k2p', { phase: 'Succeeded' }),
        // Not in an injection namespace: left alone.
        plainPod('default', 'debug'),
      ],
    };
  } finally {
    await rm(cwd, { recursive: true, force: true });
  }
}

function withAvailableStatus(deployment: FakeObject): FakeObject {
  const replicas = (deployment.spec as { replicas?: number }).replicas ?? 1;
  return {
    ...deployment,
    status: {
      observedGeneration: 1,
      replicas,
      updatedReplicas: replicas,
      readyReplicas: replicas,
      availableReplicas: replicas,
      conditions: [
        { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'ok' },
        { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: 'ok' },
      ],
    },
  };
}

export function namespace(name: string, labels: Record<string, string> = {}): FakeObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } },
    status: { phase: 'Active' },
  };
}

/** The apps through `mutual inject` with these anchors, and the pods their ReplicaSets would make. */
export function injectedPods(anchorsPem: string, install: RenderedInstall, hash = '5d8f7b9c4'): FakeObject[] {
  const yaml = injectManifests(APPS, 'apps.yaml', {
    ...DEFAULT_INJECT_OPTIONS,
    trustDomain: install.identityCa.trustDomain,
    trustAnchorsPem: anchorsPem,
  }).outputChunks.join('');
  return parseAllDocuments(yaml).flatMap((document) => {
    const deployment = document.toJS() as FakeObject & {
      spec: { replicas: number; template: { metadata: FakeObject['metadata']; spec: unknown } };
    };
    return Array.from({ length: deployment.spec.replicas }, (_, index) =>
      podOf(deployment, hash, `${'abcde'[index]}${index}q7z`),
    );
  });
}

/** A pod as a Deployment's ReplicaSet creates it from the template. */
export function podOf(
  deployment: { metadata: FakeObject['metadata']; spec: { template: { metadata: any; spec: unknown } } },
  hash: string,
  suffix: string,
): FakeObject {
  const { name, namespace: ns } = deployment.metadata;
  const template = deployment.spec.template;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...template.metadata,
      name: `${name}-${hash}-${suffix}`,
      namespace: ns!,
      labels: { ...template.metadata.labels, 'pod-template-hash': hash },
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${name}-${hash}`, controller: true, uid: 'u1' },
      ],
    },
    spec: template.spec,
    status: { phase: 'Running', podIP: '10.1.0.7' },
  };
}

export function plainPod(
  ns: string,
  name: string,
  status: { phase: string } = { phase: 'Running' },
): FakeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: { app: name } },
    spec: { containers: [{ name: 'main', image: 'busybox:1.36' }] },
    status,
  };
}

/** The original, uninjected `web` Deployment's pod: what a pod created before the namespace was labelled looks like. */
export function uninjectedWebPod(): FakeObject {
  const [first] = parseAllDocuments(APPS);
  return podOf(first!.toJS(), '6c9d8e7f5', 'old1x');
}
