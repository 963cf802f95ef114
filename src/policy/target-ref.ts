// `targetRef` / `targetRefs`: Istio attaches such a policy to a Service or ServiceEntry (enforced
// by its waypoint proxy) or to a Gateway / GatewayClass, never to sidecars: its sidecars ignore a
// policy with targetRefs (pilot/pkg/model/policyattachment.go, ShouldAttachPolicy). Mutual has
// sidecars only, so such a policy would protect nothing; it is refused, saying how to select the
// same workloads with `selector`, rather than silently ignored or guessed at.
import type { FieldPath, Report } from './parse.ts';
import type { PolicyMeta } from './resource.ts';
import type { AuthorizationPolicyInput, TargetRefInput } from './schema.ts';

/** The kinds Istio's validation accepts (validatePolicyTargetReference), by canonical group. */
const ISTIO_TARGET_KINDS: Readonly<Record<string, string>> = {
  Service: 'core',
  ServiceEntry: 'networking.istio.io',
  Gateway: 'gateway.networking.k8s.io',
  GatewayClass: 'gateway.networking.k8s.io',
};

export function validateTargetRefs(
  spec: NonNullable<AuthorizationPolicyInput['spec']>,
  meta: PolicyMeta,
  report: Report,
): void {
  const set = [
    spec.selector === undefined ? undefined : 'selector',
    spec.targetRef === undefined ? undefined : 'targetRef',
    spec.targetRefs === undefined || spec.targetRefs.length === 0 ? undefined : 'targetRefs',
  ].filter((field) => field !== undefined);
  if (set.length > 1) {
    // Istio refuses it too: "only one of targetRefs or workloadSelector can be set".
    report(
      ['spec', set[1]!],
      'error',
      'MUTUAL_POLICY_INVALID',
      `${set.join(' and ')} are both set; a policy takes only one of selector, targetRef and targetRefs`,
      'Keep selector (Mutual selects sidecar workloads by their labels) and remove the other.',
      true,
    );
  }
  if (spec.targetRefs?.length === 0) {
    report(
      ['spec', 'targetRefs'],
      'error',
      'MUTUAL_POLICY_INVALID',
      'targetRefs is empty',
      'Remove it to apply the policy to every workload of the namespace, or choose workloads with selector.matchLabels.',
      true,
    );
  }
  if (spec.targetRef !== undefined) refuse(spec.targetRef, ['spec', 'targetRef'], meta, report);
  for (const [index, ref] of (spec.targetRefs ?? []).entries()) {
    refuse(ref, ['spec', 'targetRefs', index], meta, report);
  }
}

function refuse(ref: TargetRefInput, path: FieldPath, meta: PolicyMeta, report: Report): void {
  const group = ref.group === undefined || ref.group === '' ? 'core' : ref.group;
  const named = `${ref.kind} "${ref.name}"`;
  if (ISTIO_TARGET_KINDS[ref.kind] !== group) {
    report(
      path,
      'error',
      'MUTUAL_POLICY_INVALID',
      `targetRef to ${named} in group "${group}": Istio accepts only Service, ServiceEntry (networking.istio.io), Gateway and GatewayClass (gateway.networking.k8s.io)`,
      'Select the workloads this policy is for with selector.matchLabels instead.',
    );
    return;
  }
  const ignored =
    'Istio applies a policy with targetRefs only in waypoint proxies and gateways and its sidecars ignore it, so under Mutual, which has sidecars only, it would protect nothing';
  if (ref.kind === 'Service') {
    report(
      path,
      'error',
      'MUTUAL_POLICY_UNSUPPORTED',
      `a policy attached to ${named} is not supported: ${ignored}`,
      `Select the pods behind the Service instead: replace ${path[1]} with selector.matchLabels set to the Service's spec.selector (for example {app: ${ref.name}}), in namespace ${meta.namespace}. The policy then applies to those workloads whichever address reaches them.`,
    );
    return;
  }
  report(
    path,
    'error',
    'MUTUAL_POLICY_UNSUPPORTED',
    `a policy attached to ${named} is not supported: ${
      ref.kind === 'ServiceEntry'
        ? 'a ServiceEntry names hosts outside the mesh, which have no Mutual sidecar to enforce it'
        : 'Mutual has no gateways'
    }`,
    'Enforce it where the traffic arrives: a policy with selector.matchLabels for the meshed workloads that receive it.',
  );
}
