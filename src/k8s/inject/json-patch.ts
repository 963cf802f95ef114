// JSON Patch (RFC 6902) between two JSON values, as the admission webhook returns it. Only add,
// remove and replace; arrays of the same length are diffed item by item, arrays that grew at the
// front or the back get inserts (and the items that were there are diffed), anything else is
// replaced whole, so the patch stays correct for any pair of values.

export type JsonPatchOperation =
  | { readonly op: 'add'; readonly path: string; readonly value: unknown }
  | { readonly op: 'replace'; readonly path: string; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: string };

export type ValuePath = readonly (string | number)[];

/** A JSON Patch operation before its path is written as a pointer: applied to YAML documents too. */
export type PathOperation =
  | { readonly op: 'add' | 'replace'; readonly path: ValuePath; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: ValuePath };

/** One reference token of a JSON Pointer (RFC 6901): `~` → `~0`, `/` → `~1`, in that order. */
export function escapePointerToken(token: string | number): string {
  return String(token).replaceAll('~', '~0').replaceAll('/', '~1');
}

export function toPointer(path: readonly (string | number)[]): string {
  return path.map((token) => `/${escapePointerToken(token)}`).join('');
}

/** The operations that turn `before` into `after`; empty when they are equal. */
export function diffJsonPatch(before: unknown, after: unknown): JsonPatchOperation[] {
  return diffValues(before, after).map((operation) => ({ ...operation, path: toPointer(operation.path) }));
}

/** diffJsonPatch with paths as arrays of keys and indexes. */
export function diffValues(before: unknown, after: unknown): PathOperation[] {
  const operations: PathOperation[] = [];
  diff(before, after, [], operations);
  return operations;
}

function diff(before: unknown, after: unknown, path: (string | number)[], operations: PathOperation[]): void {
  if (isDeepEqual(before, after)) return;
  if (isPlainObject(before) && isPlainObject(after)) {
    for (const key of Object.keys(before)) {
      if (!Object.hasOwn(after, key)) operations.push({ op: 'remove', path: [...path, key] });
    }
    for (const [key, value] of Object.entries(after)) {
      if (Object.hasOwn(before, key)) diff(before[key], value, [...path, key], operations);
      else operations.push({ op: 'add', path: [...path, key], value });
    }
    return;
  }
  // Arrays of the same length are diffed item by item: a rewritten probe in one container changes
  // that probe, not the whole list (in YAML, the other fields keep their comments and quoting).
  if (Array.isArray(before) && Array.isArray(after) && after.length === before.length) {
    before.forEach((item, i) => {
      diff(item, after[i], [...path, i], operations);
    });
    return;
  }
  if (Array.isArray(before) && Array.isArray(after) && after.length > before.length) {
    const grown = after.length - before.length;
    // Items inserted at the front (mutual-init and mutual-proxy before the pod's own init
    // containers): add each at its index, in order, so each lands where it belongs, then diff the
    // items that were there, which may have changed too (a native sidecar's rewritten probe), so
    // that in YAML they keep their comments and quoting rather than the whole list being replaced.
    if (before.every((item, i) => isSameItem(item, after[i + grown]))) {
      for (let i = 0; i < grown; i++) operations.push({ op: 'add', path: [...path, i], value: after[i] });
      before.forEach((item, i) => {
        diff(item, after[i + grown], [...path, i + grown], operations);
      });
      return;
    }
    if (before.every((item, i) => isSameItem(item, after[i]))) {
      before.forEach((item, i) => {
        diff(item, after[i], [...path, i], operations);
      });
      for (let i = before.length; i < after.length; i++) {
        operations.push({ op: 'add', path: [...path, i], value: after[i] });
      }
      return;
    }
  }
  operations.push({ op: 'replace', path, value: after });
}

/**
 * Whether `after` is `before`, changed or not: equal, or an object with the same `name` (a
 * container, a volume: Kubernetes' lists of named items).
 */
function isSameItem(before: unknown, after: unknown): boolean {
  if (isDeepEqual(before, after)) return true;
  return (
    isPlainObject(before) &&
    isPlainObject(after) &&
    typeof before.name === 'string' &&
    before.name === after.name
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isDeepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) &&
      Array.isArray(b) &&
      a.length === b.length &&
      a.every((item, i) => isDeepEqual(item, b[i]))
    );
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = Object.keys(a);
    return (
      keys.length === Object.keys(b).length &&
      keys.every((key) => Object.hasOwn(b, key) && isDeepEqual(a[key], b[key]))
    );
  }
  return false;
}
