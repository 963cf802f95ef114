// Where the pods are in a Kubernetes object: the object itself for a Pod, spec.template for the
// workload controllers, spec.jobTemplate.spec.template for a CronJob, and inside each item of a List.

export type ObjectPath = readonly (string | number)[];

export interface PodTemplateLocation {
  /** From the document root to the pod (or pod template): metadata and spec live under it. */
  readonly path: ObjectPath;
  /** `deployment/web`, `list/items[2]/pod/db`: how the report names it. */
  readonly name: string;
}

const TEMPLATE_PATHS: Readonly<Record<string, ObjectPath>> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export const INJECTABLE_KINDS: readonly string[] = Object.keys(TEMPLATE_PATHS);

/** The apiVersion Kubernetes serves each injectable kind as (1.29+, which native sidecars need). */
const API_VERSIONS: Readonly<Record<string, string>> = {
  Pod: 'v1',
  ReplicationController: 'v1',
  Deployment: 'apps/v1',
  StatefulSet: 'apps/v1',
  DaemonSet: 'apps/v1',
  ReplicaSet: 'apps/v1',
  Job: 'batch/v1',
  CronJob: 'batch/v1',
};

/** Kubernetes' own API groups these kinds ever lived in (`v1` and its betas are the core group). */
const BUILT_IN_GROUPS = new Set(['', 'apps', 'extensions', 'batch']);

/** Versions old manifests still carry, and when Kubernetes stopped serving them. */
const REMOVED_VERSIONS: Readonly<Record<string, string>> = {
  'extensions/v1beta1': 'removed in Kubernetes 1.16',
  'apps/v1beta1': 'removed in Kubernetes 1.16',
  'apps/v1beta2': 'removed in Kubernetes 1.16',
  'batch/v1beta1': 'removed in Kubernetes 1.25',
  'batch/v2alpha1': 'never served by default, removed in Kubernetes 1.21',
};

export interface ApiVersionProblem {
  /** From the document root to the object. */
  readonly path: ObjectPath;
  /** The field at fault, where the report points. */
  readonly field: 'apiVersion' | 'kind';
  readonly name: string;
  readonly message: string;
}

/**
 * Workloads kubectl would refuse for their apiVersion or kind, in `object` and its List items: no
 * apiVersion, a group and version of Kubernetes' own that does not serve the kind (a Deployment as
 * `v1`, a removed beta such as `extensions/v1beta1`), or the kind in the wrong case (`deployment`).
 * An object of another API group (a custom resource that reuses a name) is not judged.
 */
export function apiVersionProblems(object: unknown, path: ObjectPath = []): ApiVersionProblem[] {
  if (!isObject(object)) return [];
  const { kind, apiVersion } = object;
  if (kind === undefined || kind === null || kind === '') {
    const isPodShaped = [...Object.values(TEMPLATE_PATHS)].some((templatePath) =>
      Array.isArray(valueAt(object, [...templatePath, 'spec', 'containers'])),
    );
    return isPodShaped
      ? [
          {
            path,
            field: 'kind',
            name: `object/${nameOf(object)}`,
            message: `no kind (kubectl refuses an object without one), though it holds a pod: add its kind (${INJECTABLE_KINDS.join(', ')}) and apiVersion`,
          },
        ]
      : [];
  }
  if (typeof kind !== 'string') return [];
  if (kind.endsWith('List') && Array.isArray(object.items)) {
    return object.items.flatMap((item, index) => apiVersionProblems(item, [...path, 'items', index]));
  }
  const canonical = INJECTABLE_KINDS.find((known) => known.toLowerCase() === kind.toLowerCase());
  if (canonical === undefined) return [];
  const group = typeof apiVersion === 'string' && apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
  if (typeof apiVersion === 'string' && !BUILT_IN_GROUPS.has(group ?? '')) return [];
  const expected = API_VERSIONS[canonical] as string;
  const name = `${kind.toLowerCase()}/${nameOf(object)}`;
  const problem = (message: string, field: 'apiVersion' | 'kind' = 'apiVersion') => [
    { path, field, name, message },
  ];
  if (typeof apiVersion !== 'string' || apiVersion.trim() === '') {
    return problem(`no apiVersion (kubectl refuses an object without one): add apiVersion: ${expected}`);
  }
  if (kind !== canonical) {
    return problem(
      `kind ${kind}: Kubernetes kinds are case-sensitive and kubectl finds no kind ${JSON.stringify(kind)}: write kind: ${canonical}`,
      'kind',
    );
  }
  if (apiVersion === expected) return [];
  const removed = REMOVED_VERSIONS[apiVersion];
  return problem(
    `apiVersion ${apiVersion} does not serve ${kind}${removed ? ` (${removed})` : ''}; the injected proxy is a native sidecar, which needs Kubernetes 1.29 or newer, where ${kind} is ${expected}: write apiVersion: ${expected}${expected === 'apps/v1' && valueAt(object, ['spec', 'selector']) === undefined ? ', and add spec.selector.matchLabels (apps/v1 requires it; older versions took the template labels)' : ''}`,
  );
}

/** Every pod template in `object` (none for kinds without pods, e.g. a Service). */
export function findPodTemplates(object: unknown, path: ObjectPath = []): PodTemplateLocation[] {
  if (!isObject(object)) return [];
  const kind = typeof object.kind === 'string' ? object.kind : '';
  const name = `${kind.toLowerCase() || 'object'}/${nameOf(object)}`;
  if (kind === 'List' || (kind.endsWith('List') && Array.isArray(object.items))) {
    const items = Array.isArray(object.items) ? object.items : [];
    return items.flatMap((item, index) => findPodTemplates(item, [...path, 'items', index]));
  }
  const templatePath = TEMPLATE_PATHS[kind];
  if (templatePath === undefined) return [];
  return isObject(valueAt(object, templatePath)) ? [{ path: [...path, ...templatePath], name }] : [];
}

export function valueAt(object: unknown, path: ObjectPath): unknown {
  let current = object;
  for (const key of path) {
    if (!isObject(current) && !Array.isArray(current)) return undefined;
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}

function nameOf(object: Record<string, unknown>): string {
  const metadata = isObject(object.metadata) ? object.metadata : {};
  if (typeof metadata.name === 'string') return metadata.name;
  if (typeof metadata.generateName === 'string') return `${metadata.generateName}*`;
  return '(unnamed)';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Far deeper than any Pod (affinity terms, the deepest part, are about a dozen levels). */
export const MAX_POD_DEPTH = 100;

/** Whether `value` has objects or lists more than `limit` levels down; iterative, for any depth. */
export function isNestedDeeper(value: unknown, limit: number): boolean {
  const pending: [unknown, number][] = [[value, 0]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [current, depth] = next;
    if (typeof current !== 'object' || current === null) continue;
    if (depth === limit) return true;
    for (const child of Object.values(current)) pending.push([child, depth + 1]);
  }
  return false;
}
