// A policy as the Kubernetes API holds it (an object of a collection: apiVersion and kind from the
// collection, the server's metadata) → the document the parser reads from YAML, and its parse.
// Shared by the destination service (what it serves or skips) and the admission webhook (what
// `kubectl apply` is refused for), so the two can never disagree about an object.
import { type ParseOptions, type ParseResult, parsePolicyValue } from './parse.ts';
import { DRY_RUN_ANNOTATION } from './rules-check.ts';

/** What of an API object a policy uses: metadata's name, namespace and creationTimestamp, and spec. */
export interface PolicyApiDocument {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: {
    readonly name?: unknown;
    readonly namespace?: unknown;
    readonly creationTimestamp?: unknown;
    /** Only Istio's `istio.io/dry-run`, the one annotation that changes what a policy does. */
    readonly annotations?: unknown;
  };
  readonly spec?: unknown;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The document for `object`: metadata cut to what policies use (the server's uid,
 * resourceVersion, managedFields, labels and annotations other than Istio's dry-run are not
 * policy), status dropped. Never
 * throws: whatever `object` is, the parser says what is wrong with the result.
 */
export function policyDocumentOf(apiVersion: string, kind: string, object: unknown): PolicyApiDocument {
  const record = isObject(object) ? object : {};
  const meta = isObject(record.metadata) ? record.metadata : {};
  return {
    apiVersion,
    kind,
    metadata: {
      name: meta.name,
      namespace: meta.namespace,
      ...(meta.creationTimestamp === undefined ? {} : { creationTimestamp: meta.creationTimestamp }),
      ...(isObject(meta.annotations) && meta.annotations[DRY_RUN_ANNOTATION] !== undefined
        ? { annotations: { [DRY_RUN_ANNOTATION]: meta.annotations[DRY_RUN_ANNOTATION] } }
        : {}),
    },
    ...(record.spec === undefined || record.spec === null ? {} : { spec: record.spec }),
  };
}

/**
 * The same parser and checks as policy files, on the object as it is: no YAML in between (a
 * policy of thousands of rules is checked some ten times faster), so every diagnostic is placed at
 * `origin` line 1 and names its field in its message (`spec.rules[0].from: ...`).
 */
export function parsePolicyObject(
  apiVersion: string,
  kind: string,
  object: unknown,
  origin: string,
  options: ParseOptions = {},
): ParseResult & { readonly document: PolicyApiDocument } {
  const document = policyDocumentOf(apiVersion, kind, object);
  const position = { file: origin, line: 1, column: 1 };
  return { document, ...parsePolicyValue(document, () => position, options) };
}
