// One admission.k8s.io/v1 AdmissionReview in, one out (pure): the same injectPod as `mutual
// inject`, its change sent as a base64 JSON Patch. Only garbage throws (the server answers 400);
// every well-formed review gets a review back with the request's uid.
import { MutualError } from '../../errors.ts';
import { ANNOTATIONS, INJECT_VALUES } from '../constants.ts';
import {
  diffJsonPatch,
  type InjectOptions,
  injectPod,
  isNestedDeeper,
  MAX_POD_DEPTH,
  type PodLike,
  podInjectLabel,
} from '../inject/index.ts';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly patchType?: 'JSONPatch';
  /** base64 of the JSON Patch (RFC 6902). */
  readonly patch?: string;
  readonly warnings?: readonly string[];
  readonly status?: { readonly code: number; readonly message: string };
}

export interface AdmissionReviewResponse {
  readonly apiVersion: typeof ADMISSION_API_VERSION;
  readonly kind: 'AdmissionReview';
  readonly response: AdmissionResponse;
}

/** What the webhook decided, for its metrics and log: `result` by `reason`. */
export interface AdmissionDecision {
  readonly review: AdmissionReviewResponse;
  readonly result: 'injected' | 'skipped' | 'refused' | 'ignored';
  readonly reason: string;
  /** `namespace/pod` as far as the request tells. */
  readonly pod: string;
}

/** Pod skips worth telling whoever created the pod (a kubectl user sees admission warnings). */
const WARNED_SKIPS = new Set([
  'host-network',
  'existing-proxy',
  'other-mesh',
  'conflict',
  'no-containers',
  'windows',
]);

/** Longer than any valid name (253), so a real one is never clipped. */
const MAX_PRINTED_NAME = 256;

/** `text` with control characters written as \uXXXX, clipped to `maxLength` characters. */
export function printable(text: string, maxLength = MAX_PRINTED_NAME): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point.
  const escaped = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (char) => {
    return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  return escaped.length > maxLength ? `${escaped.slice(0, maxLength)}…` : escaped;
}

function invalid(message: string): MutualError {
  return new MutualError('MUTUAL_K8S_ADMISSION_REVIEW_INVALID', message);
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks the envelope and returns the request; throws MUTUAL_K8S_ADMISSION_REVIEW_INVALID otherwise. */
export function parseAdmissionReview(body: string): Record<string, unknown> & { uid: string } {
  let review: unknown;
  try {
    review = JSON.parse(body);
  } catch {
    throw invalid('the request body is not JSON: POST an admission.k8s.io/v1 AdmissionReview');
  }
  if (!isObject(review)) throw invalid('the request body must be a JSON object (an AdmissionReview)');
  if (review.kind !== 'AdmissionReview') {
    throw invalid(`kind ${JSON.stringify(review.kind)} is not AdmissionReview`);
  }
  if (review.apiVersion !== ADMISSION_API_VERSION) {
    throw invalid(
      `apiVersion ${JSON.stringify(review.apiVersion)} is not supported: this webhook speaks ${ADMISSION_API_VERSION} (set admissionReviewVersions: ["v1"])`,
    );
  }
  const request = review.request;
  if (!isObject(request)) throw invalid('the AdmissionReview has no request object');
  if (typeof request.uid !== 'string' || request.uid === '') {
    throw invalid(
      request.uid === undefined
        ? 'the AdmissionReview request has no uid'
        : `the AdmissionReview request has no uid: ${JSON.stringify(request.uid)} is not a non-empty string`,
    );
  }
  return request as Record<string, unknown> & { uid: string };
}

/**
 * The parts of an AdmissionReview both webhooks read: its request, an `answer` that wraps a
 * response with the request's uid, the request's kind, its object and that object's metadata
 * (`{}` for what is not an object: the caller decides what that means).
 */
export function openAdmissionReview(body: string) {
  const request = parseAdmissionReview(body);
  const answer = (response: Omit<AdmissionResponse, 'uid'>): AdmissionReviewResponse => ({
    apiVersion: ADMISSION_API_VERSION,
    kind: 'AdmissionReview',
    response: { uid: request.uid, ...response },
  });
  const kind = isObject(request.kind) ? request.kind : {};
  const object = request.object;
  const metadata = isObject(object) && isObject(object.metadata) ? object.metadata : {};
  return { request, answer, kind, object, metadata };
}

/**
 * Who opted the pod in: `pod` (the webhook sees every pod; only those annotated
 * `mutual.dev/inject: enabled` are injected) or `namespace` (the webhook's namespaceSelector only
 * picks opted-in namespaces; every pod is injected but those annotated `disabled`).
 */
export type OptIn = 'pod' | 'namespace';

export function reviewAdmission(
  body: string,
  options: InjectOptions,
  optIn: OptIn = 'pod',
): AdmissionDecision {
  const { request, answer, kind, object, metadata } = openAdmissionReview(body);
  // Mutating webhooks see a pod before the API server validates its name: a name with a newline
  // or a terminal escape would forge lines in the log, so names are printed escaped and clipped.
  const namespace = printable(
    typeof request.namespace === 'string' ? request.namespace : String(metadata.namespace ?? ''),
  );
  const name = printable(
    String(
      metadata.name ?? request.name ?? (metadata.generateName ? `${metadata.generateName}*` : '(unnamed)'),
    ),
  );
  const pod = namespace ? `${namespace}/${name}` : name;
  const isPod = kind.group === '' && kind.kind === 'Pod' && (request.subResource ?? '') === '';
  if (!isPod) {
    const what = printable(
      `${kind.group ? `${String(kind.group)}/` : ''}${String(kind.kind ?? 'an unknown kind')}${request.subResource ? ` (${String(request.subResource)})` : ''}`,
    );
    return {
      review: answer({
        allowed: true,
        warnings: [`mutual-injector: ${what} left unchanged: only Pods are injected`],
      }),
      result: 'ignored',
      reason: 'not-a-pod',
      pod,
    };
  }
  if (request.operation !== 'CREATE') {
    return { review: answer({ allowed: true }), result: 'ignored', reason: 'not-create', pod };
  }
  // With a uid to answer, a request the API server would never send is refused in a review (its
  // uid, allowed false, why), not with an HTTP error that failurePolicy Ignore would wave through.
  const refuse = (message: string): AdmissionDecision => ({
    review: answer({
      allowed: false,
      status: { code: 400, message: `mutual-injector refused pod ${pod}: ${message}` },
    }),
    result: 'refused',
    reason: 'object-invalid',
    pod,
  });
  if (!isObject(object)) {
    return refuse(
      `the request for a Pod CREATE has ${object === undefined || object === null ? 'no object' : `an object that is ${Array.isArray(object) ? 'a list' : `the ${typeof object} ${JSON.stringify(object).slice(0, 40)}`}`}, where the API server sends the Pod`,
    );
  }
  if (isNestedDeeper(object, MAX_POD_DEPTH)) {
    return refuse(`the object is nested more than ${MAX_POD_DEPTH} levels deep, which no Pod is`);
  }
  const annotations = isObject(metadata.annotations) ? metadata.annotations : {};
  const optedIn =
    annotations[ANNOTATIONS.inject] === undefined
      ? podInjectLabel(isObject(metadata.labels) ? metadata.labels : undefined)
      : annotations[ANNOTATIONS.inject];
  if (optIn === 'pod' && optedIn !== INJECT_VALUES.enabled) {
    return { review: answer({ allowed: true }), result: 'skipped', reason: 'not-enabled', pod };
  }
  const outcome = injectPod(object as PodLike, options);
  if (outcome.kind === 'invalid') {
    const problems = outcome.problems.map((problem) =>
      problem.message.startsWith(problem.annotation)
        ? problem.message
        : `${problem.annotation}: ${problem.message}`,
    );
    return {
      review: answer({
        allowed: false,
        status: {
          code: 400,
          message: `mutual-injector refused pod ${pod} rather than start it outside the mesh: ${problems.join('; ')} (docs/kubernetes.md, Injection reference)`,
        },
      }),
      result: 'refused',
      reason: 'annotation-invalid',
      pod,
    };
  }
  if (outcome.kind === 'skipped') {
    return {
      review: answer({
        allowed: true,
        ...(WARNED_SKIPS.has(outcome.reason)
          ? { warnings: [`mutual-injector: pod ${pod} not injected: ${outcome.message}`] }
          : {}),
      }),
      result: 'skipped',
      reason: outcome.reason,
      pod,
    };
  }
  const patch = diffJsonPatch(object, outcome.pod);
  return {
    review: answer({
      allowed: true,
      patchType: 'JSONPatch',
      patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
      ...(outcome.notes.length > 0
        ? { warnings: outcome.notes.map((note) => `mutual-injector: pod ${pod}: ${note.message}`) }
        : {}),
    }),
    result: 'injected',
    reason: outcome.change === 'anchors' ? 'anchors-updated' : 'injected',
    pod,
  };
}
