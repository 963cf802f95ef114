// An AuthorizationPolicy refused only for what Mutual cannot enforce (MUTUAL_POLICY_UNSUPPORTED:
// JWT request principals, X-Forwarded-For addresses, CUSTOM, condition keys such as
// request.auth.claims or connection.sni, path templates) → the stricter policy a source that must
// not drop it enforces in its place. Dropping it would widen access: the deny would vanish, or a
// workload whose only ALLOW policy it was would allow everyone. Done as Istio's own RBAC builder
// treats a rule it cannot build: an ALLOW rule using such a field is dropped (allows less; no rule
// left is an allow-nothing), a DENY or AUDIT rule loses the field (matches more), and CUSTOM (an
// external authorizer that may deny what its rules match) becomes a DENY of its rules.
// A policy with targetRef(s) is not replaced: Istio's sidecars ignore it too; nor is a dry-run one.
import type { PolicyDiagnostic } from './diagnostic.ts';
import type { PolicyApiDocument } from './parse-object.ts';
import {
  isDryRun,
  isPathTemplate,
  isUnsupportedConditionKey,
  UNSUPPORTED_SOURCE_FIELDS,
} from './rules-check.ts';
import type { AuthorizationRuleInput, OperationInput, SourceInput } from './schema.ts';

export interface FailClosedPolicy {
  /** The document to enforce instead: same metadata and selector, stricter rules. */
  readonly document: PolicyApiDocument;
  /** What was done, for a log line. */
  readonly summary: string;
}

type Spec = {
  action?: string;
  provider?: unknown;
  targetRef?: unknown;
  targetRefs?: unknown;
  rules?: AuthorizationRuleInput[];
  [field: string]: unknown;
};

/**
 * The stricter stand-in for `document`, whose parse gave `diagnostics`; undefined unless it is an
 * AuthorizationPolicy whose every error is MUTUAL_POLICY_UNSUPPORTED and that has no targetRef(s).
 */
export function failClosedPolicy(
  document: PolicyApiDocument,
  diagnostics: readonly PolicyDiagnostic[],
): FailClosedPolicy | undefined {
  const errors = diagnostics.filter((diagnostic) => diagnostic.severity === 'error');
  if (document.kind !== 'AuthorizationPolicy' || errors.length === 0) return undefined;
  if (errors.some((error) => error.code !== 'MUTUAL_POLICY_UNSUPPORTED')) return undefined;
  const spec = (document.spec ?? {}) as Spec;
  if (isNeverEnforced(document, spec)) return undefined;
  const { provider: _provider, ...rest } = spec;
  const action = spec.action ?? 'ALLOW';
  const rules = spec.rules ?? [];
  if (action === 'ALLOW') {
    const kept = rules.filter((rule) => !usesUnsupported(rule));
    return {
      document: { ...document, spec: { ...rest, rules: kept } },
      summary: `enforced without its ${rules.length - kept.length} rule(s) that use them, so it allows less${kept.length === 0 ? ' (nothing at all)' : ''}`,
    };
  }
  const widened = rules.map(widen);
  return {
    document: {
      ...document,
      spec: { ...rest, action: action === 'CUSTOM' ? 'DENY' : action, rules: widened },
    },
    summary:
      action === 'CUSTOM'
        ? 'enforced as a DENY of every request its rules match (no external authorizer decides), those fields left out'
        : `enforced with those fields left out, so the ${action} matches more`,
  };
}

/**
 * The stand-in for an ALLOW AuthorizationPolicy Mutual cannot read at all (an error other than
 * MUTUAL_POLICY_UNSUPPORTED: a misspelt field, a value Mutual refuses that Istio may accept), for a
 * source that must not drop it: dropped, a policy that was its workloads' only ALLOW would let
 * everyone in. It becomes an ALLOW of nothing for the same selector (the workloads' other ALLOW
 * policies still apply), which is also what the API server leaves of an ALLOW whose `rules` key is
 * misspelt (it prunes unknown fields). A DENY or AUDIT is not replaced (a deny-all in its place
 * would stop every workload it selects, or the whole namespace, over a typo), nor is a policy with
 * targetRef(s), a dry-run one, or one whose selector is itself unreadable (the stand-in would not
 * parse either).
 */
export function invalidPolicyStandIn(
  document: PolicyApiDocument,
  diagnostics: readonly PolicyDiagnostic[],
): FailClosedPolicy | undefined {
  const errors = diagnostics.filter((diagnostic) => diagnostic.severity === 'error');
  if (document.kind !== 'AuthorizationPolicy' || errors.length === 0) return undefined;
  if (typeof document.spec !== 'object' || document.spec === null || Array.isArray(document.spec)) {
    return undefined;
  }
  const spec = document.spec as Spec;
  if (isNeverEnforced(document, spec)) return undefined;
  if ((spec.action ?? 'ALLOW') !== 'ALLOW') return undefined;
  return {
    document: {
      ...document,
      spec: {
        ...(spec.selector === undefined ? {} : { selector: spec.selector }),
        action: 'ALLOW',
        rules: [],
      },
    },
    summary:
      'enforced as an ALLOW of nothing until it is fixed (the workloads it selects keep what their other ALLOW policies allow)',
  };
}

/**
 * Istio's sidecars ignore a policy with targetRef(s), and Istio never enforces a dry-run one: a
 * stand-in for either would enforce what Istio does not.
 */
function isNeverEnforced(document: PolicyApiDocument, spec: Spec): boolean {
  return (
    spec.targetRef !== undefined || spec.targetRefs !== undefined || isDryRun(document.metadata.annotations)
  );
}

function usesUnsupported(rule: AuthorizationRuleInput): boolean {
  return (
    (rule.from ?? []).some(({ source }) =>
      UNSUPPORTED_SOURCE_FIELDS.some((field) => source[field] !== undefined),
    ) ||
    (rule.to ?? []).some(({ operation }) => hasTemplate(operation)) ||
    (rule.when ?? []).some((condition) => isUnsupportedConditionKey(condition.key))
  );
}

function hasTemplate(operation: OperationInput): boolean {
  return [...(operation.paths ?? []), ...(operation.notPaths ?? [])].some(isPathTemplate);
}

/** The rule without the fields Mutual cannot evaluate; a list left matching anyone goes. */
function widen(rule: AuthorizationRuleInput): AuthorizationRuleInput {
  const { from, to, when, ...rest } = rule;
  const widened: AuthorizationRuleInput = { ...rest };
  const sources = from?.map(({ source }) => ({ source: withoutUnsupported(source) }));
  // Sources are OR'd: one that now matches any peer makes the whole `from` match any peer.
  if (sources?.every(({ source }) => isSet(source))) widened.from = sources;
  const operations = to?.map(({ operation }) => ({ operation: withoutTemplates(operation) }));
  if (operations?.every(({ operation }) => isSet(operation))) widened.to = operations;
  const conditions = when?.filter((condition) => !isUnsupportedConditionKey(condition.key));
  if (conditions !== undefined && conditions.length > 0) widened.when = conditions;
  return widened;
}

function withoutUnsupported(source: SourceInput): SourceInput {
  const copy: Record<string, unknown> = { ...source };
  for (const field of UNSUPPORTED_SOURCE_FIELDS) delete copy[field];
  return copy as SourceInput;
}

/** A field with a template goes whole: keeping its other values would match less. */
function withoutTemplates(operation: OperationInput): OperationInput {
  const copy: Record<string, unknown> = { ...operation };
  for (const field of ['paths', 'notPaths'] as const) {
    if (operation[field]?.some(isPathTemplate)) delete copy[field];
  }
  return copy as OperationInput;
}

function isSet(fields: object): boolean {
  return Object.values(fields).some((values) => Array.isArray(values) && values.length > 0);
}
