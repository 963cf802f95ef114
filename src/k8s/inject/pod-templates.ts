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
