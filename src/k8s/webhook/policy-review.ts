// The validating admission webhook for policies (POST /validate, pure): an AdmissionReview of a
// PeerAuthentication or AuthorizationPolicy in, allowed or refused out, decided by src/policy's
// parsePolicyObject — the parser and checks the destination service applies before serving an
// object (it skips what they refuse) and `mutual policy check` applies to files. So a policy that
// would be skipped is refused at `kubectl apply`, with its field path, the problem and the fix;
// what the checks warn about comes back as admission warnings (kubectl prints them).

import {
  failClosedPolicy,
  invalidPolicyStandIn,
  POLICY_KINDS,
  type PolicyDiagnostic,
  parsePolicyObject,
  policyDocumentOf,
} from '../../policy/index.ts';
import { CONTROL_PLANE_NAMESPACE } from '../constants.ts';
import { isDeepEqual, isNestedDeeper } from '../inject/index.ts';
import {
  type AdmissionReviewResponse,
  isObject,
  openAdmissionReview,
  printable,
} from './admission-review.ts';

/** The API groups whose policies the parser reads: ours, and Istio's when a configuration sends them. */
export const VALIDATED_POLICY_GROUPS = ['security.mutual.dev', 'security.istio.io'] as const;
/** Far deeper than any policy (spec.rules[].from[].source.principals[] is 7 levels). */
export const MAX_POLICY_DEPTH = 32;
/** Problems listed in one refusal, and warnings in one answer; the rest are counted. */
export const MAX_LISTED_PROBLEMS = 10;
/** Longest problem text kept (a value quoted in a message can be long). */
const MAX_PROBLEM_CHARS = 1024;

/** What the webhook decided, for its metrics and log: `result` by `reason`. */
export interface PolicyAdmissionDecision {
  readonly review: AdmissionReviewResponse;
  /** allowed: valid (reason `valid` or `warnings`); refused: the parser's code; ignored: not checked. */
  readonly result: 'allowed' | 'refused' | 'ignored';
  readonly reason: string;
  /** `Kind namespace/name` as far as the request tells. */
  readonly policy: string;
  /** The refusal's message, for the log. */
  readonly message?: string;
}

export interface PolicyReviewOptions {
  /** Namespace whose policies apply mesh-wide; the destination service's (mutual-system). */
  readonly rootNamespace?: string;
}

/** `spec.rules[0].from: problem. Fix: what to do. [CODE]`: the field path, never a line of a file. */
function describe(diagnostic: PolicyDiagnostic): string {
  const hint = diagnostic.hint.trim();
  const code = diagnostic.code.startsWith('MUTUAL_') ? ` [${diagnostic.code}]` : ` (${diagnostic.code})`;
  return printable(
    `${diagnostic.message}${hint ? `. Fix: ${hint.replace(/\.$/, '')}` : ''}${code}`,
    MAX_PROBLEM_CHARS,
  );
}

/** The first MAX_LISTED_PROBLEMS described (only those: a policy can have thousands), then a count of the rest. */
function listed(
  diagnostics: readonly PolicyDiagnostic[],
  each: (diagnostic: PolicyDiagnostic) => string,
  more: (count: number) => string,
): string[] {
  const shown = diagnostics.slice(0, MAX_LISTED_PROBLEMS).map(each);
  return diagnostics.length > MAX_LISTED_PROBLEMS
    ? [...shown, more(diagnostics.length - MAX_LISTED_PROBLEMS)]
    : shown;
}

export function reviewPolicyAdmission(
  body: string,
  options: PolicyReviewOptions = {},
): PolicyAdmissionDecision {
  const { request, answer, kind, object, metadata } = openAdmissionReview(body);
  const namespace =
    typeof request.namespace === 'string' ? request.namespace : String(metadata.namespace ?? '');
  const name = String(metadata.name ?? request.name ?? '(unnamed)');
  const kindName = typeof kind.kind === 'string' ? kind.kind : 'an unknown kind';
  const policy = printable(`${kindName} ${namespace ? `${namespace}/` : ''}${name}`);
  const group = typeof kind.group === 'string' ? kind.group : '';
  const isPolicy =
    (VALIDATED_POLICY_GROUPS as readonly string[]).includes(group) &&
    (POLICY_KINDS as readonly string[]).includes(kindName) &&
    typeof kind.version === 'string' &&
    (request.subResource ?? '') === '';
  if (!isPolicy) {
    const what = printable(
      `${group ? `${group}/` : ''}${String(kind.version ?? '')}${kind.version ? ' ' : ''}${kindName}${request.subResource ? ` (${String(request.subResource)})` : ''}`,
    );
    return {
      review: answer({
        allowed: true,
        warnings: [
          `mutual-policy-validator: ${what} not checked: only PeerAuthentication and AuthorizationPolicy of ${VALIDATED_POLICY_GROUPS.join(' or ')} are`,
        ],
      }),
      result: 'ignored',
      reason: 'not-a-policy',
      policy,
    };
  }
  // Deleting is always allowed: refusing it would keep a policy nobody wants.
  if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') {
    return { review: answer({ allowed: true }), result: 'ignored', reason: 'not-create-or-update', policy };
  }
  // With a uid to answer, an object the API server would never send is refused in the review.
  const refuse = (message: string): PolicyAdmissionDecision => ({
    review: answer({ allowed: false, status: { code: 400, message: `${policy}: ${message}` } }),
    result: 'refused',
    reason: 'object-invalid',
    policy,
    message,
  });
  if (!isObject(object)) {
    return refuse(
      `the request for a ${String(request.operation)} has ${object === undefined || object === null ? 'no object' : `an object that is ${Array.isArray(object) ? 'a list' : `a ${typeof object}`}`}, where the API server sends the ${kindName}`,
    );
  }
  const oldObject = request.oldObject;
  if (isNestedDeeper(object, MAX_POLICY_DEPTH) || isNestedDeeper(oldObject, MAX_POLICY_DEPTH)) {
    return refuse(`the object is nested more than ${MAX_POLICY_DEPTH} levels deep, which no policy is`);
  }
  // A policy being deleted only loses its finalizers: refusing would keep it forever.
  if (request.operation === 'UPDATE' && metadata.deletionTimestamp !== undefined) {
    return { review: answer({ allowed: true }), result: 'ignored', reason: 'deleting', policy };
  }
  const apiVersion = `${group}/${kind.version}`;
  const rootNamespace = options.rootNamespace ?? CONTROL_PLANE_NAMESPACE;
  const parsed = parsePolicyObject(apiVersion, kindName, object, policy, { rootNamespace });
  const errors = parsed.diagnostics.filter((diagnostic) => diagnostic.severity === 'error');
  const warned = listed(
    parsed.diagnostics.filter((diagnostic) => diagnostic.severity === 'warning'),
    (diagnostic) => `${policy}: ${describe(diagnostic)}`,
    (count) => `${policy}: ${count} more warnings: \`mutual policy check\` on the file lists them all`,
  );
  if (errors.length === 0) {
    return {
      review: answer({ allowed: true, ...(warned.length > 0 ? { warnings: warned } : {}) }),
      result: 'allowed',
      reason: warned.length > 0 ? 'warnings' : 'valid',
      policy,
    };
  }
  const problems = listed(
    errors,
    describe,
    (count) => `and ${count} more problems: \`mutual policy check\` on the file lists them all`,
  );
  // What the destination service would do with it: skip it, or (for what Mutual cannot enforce,
  // such as JWT or CUSTOM) enforce a stricter stand-in, or (an invalid ALLOW) allow nothing.
  const isStandIn = failClosedPolicy(parsed.document, parsed.diagnostics) !== undefined;
  const allowsNothing = !isStandIn && invalidPolicyStandIn(parsed.document, parsed.diagnostics) !== undefined;
  const invalidOutcome = allowsNothing
    ? 'the destination service would enforce it as an ALLOW of nothing (the workloads it selects keep only what their other ALLOW policies allow)'
    : 'the destination service would skip it and it would not apply';
  // An edit that leaves the policy as it was (labels, annotations) changes nothing the destination
  // service reads: refusing it would protect nothing, so it is allowed with what is still wrong.
  if (
    request.operation === 'UPDATE' &&
    isObject(oldObject) &&
    isDeepEqual(policyDocumentOf(apiVersion, kindName, oldObject), parsed.document)
  ) {
    return {
      review: answer({
        allowed: true,
        warnings: [
          isStandIn
            ? `${policy} still uses what Mutual cannot enforce, and the destination service enforces a stricter stand-in in its place: ${problems.join('; ')}`
            : `${policy} is still invalid, and ${allowsNothing ? 'the destination service enforces it as an ALLOW of nothing' : 'the destination service skips it (it does not apply)'}: ${problems.join('; ')}`,
          ...warned,
        ],
      }),
      result: 'ignored',
      reason: 'unchanged',
      policy,
    };
  }
  const code = errors[0]!.code;
  const message = isStandIn
    ? `using what Mutual cannot enforce, so the destination service would enforce a stricter stand-in in its place (ALLOW rules using it dropped, DENY rules without it, CUSTOM as DENY): ${problems.join('; ')}`
    : `invalid, so ${invalidOutcome}: ${problems.join('; ')}`;
  return {
    review: answer({
      allowed: false,
      status: { code: 400, message: `${policy} is ${message}` },
      ...(warned.length > 0 ? { warnings: warned } : {}),
    }),
    result: 'refused',
    reason: code.startsWith('MUTUAL_') ? code : 'MUTUAL_POLICY_INVALID',
    policy,
    message,
  };
}
