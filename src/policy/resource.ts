// Policies after parsing and validation: plain values with their origin, ready to compile.
import type { SourcePosition } from './diagnostic.ts';
import type { AuthorizationRuleInput, MtlsMode } from './schema.ts';

export const DEFAULT_ROOT_NAMESPACE = 'mutual-system';
export const DEFAULT_NAMESPACE = 'default';

export interface PolicyMeta {
  readonly name: string;
  readonly namespace: string;
  /** `namespace/name`, how decisions and diagnostics name a policy. */
  readonly id: string;
  /** Undefined when the file has none: such policies count as the oldest. */
  readonly creationTimestampMs: number | undefined;
  /** Where the document starts. */
  readonly position: SourcePosition;
}

export interface PeerAuthenticationResource {
  readonly kind: 'PeerAuthentication';
  readonly meta: PolicyMeta;
  /** Undefined for no selector or empty matchLabels (namespace- or mesh-wide). */
  readonly selector: Readonly<Record<string, string>> | undefined;
  readonly mode: MtlsMode;
  readonly portModes: ReadonlyMap<number, MtlsMode>;
}

export type AuthorizationAction = 'ALLOW' | 'DENY' | 'AUDIT';

export interface AuthorizationPolicyResource {
  readonly kind: 'AuthorizationPolicy';
  readonly meta: PolicyMeta;
  readonly selector: Readonly<Record<string, string>> | undefined;
  readonly action: AuthorizationAction;
  readonly rules: readonly AuthorizationRuleInput[];
}

export type PolicyResource = PeerAuthenticationResource | AuthorizationPolicyResource;

export function selectorMatches(
  selector: Readonly<Record<string, string>> | undefined,
  labels: Readonly<Record<string, string>>,
): boolean {
  if (selector === undefined) return true;
  for (const key in selector) if (labels[key] !== selector[key]) return false;
  return true;
}

/** Istio's order among policies at one level: oldest creationTimestamp, then name, then namespace. */
export function compareByAge(a: PolicyMeta, b: PolicyMeta): number {
  const aMs = a.creationTimestampMs ?? Number.NEGATIVE_INFINITY;
  const bMs = b.creationTimestampMs ?? Number.NEGATIVE_INFINITY;
  if (aMs !== bMs) return aMs < bMs ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0;
}

export function formatSelector(selector: Readonly<Record<string, string>> | undefined): string {
  if (selector === undefined) return '(all workloads)';
  return Object.entries(selector)
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}
