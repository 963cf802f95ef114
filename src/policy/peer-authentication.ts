// PeerAuthentication resolution exactly as Istio does it: start PERMISSIVE; mesh (root namespace,
// no selector) → namespace (no selector) → workload (selector) → port override each other,
// UNSET skipped; at each level the oldest policy wins; selector policies in the root namespace are
// ignored; portLevelMtls counts only on a selector policy.
import { compareByAge, type PeerAuthenticationResource, selectorMatches } from './resource.ts';
import type { PeerAuthenticationExplanation, PeerAuthenticationMode, WorkloadRef } from './types.ts';

export interface ResolvedPeerAuthentication {
  /** The workload's mode, before port-level overrides. */
  readonly workload: PeerAuthenticationExplanation;
  readonly ports: ReadonlyMap<number, PeerAuthenticationExplanation>;
  /** The policy chosen at each level (also when its mode is UNSET), for explanations. */
  readonly applied: readonly string[];
}

export function resolvePeerAuthentication(
  policies: readonly PeerAuthenticationResource[],
  workload: WorkloadRef,
  rootNamespace: string,
): ResolvedPeerAuthentication {
  const oldest = (candidates: PeerAuthenticationResource[]) =>
    candidates.sort((a, b) => compareByAge(a.meta, b.meta))[0];
  const mesh = oldest(policies.filter((p) => p.meta.namespace === rootNamespace && p.selector === undefined));
  const namespace =
    workload.namespace === rootNamespace
      ? undefined
      : oldest(policies.filter((p) => p.meta.namespace === workload.namespace && p.selector === undefined));
  const selected =
    workload.namespace === rootNamespace
      ? undefined
      : oldest(
          policies.filter(
            (p) =>
              p.meta.namespace === workload.namespace &&
              p.selector !== undefined &&
              selectorMatches(p.selector, workload.labels),
          ),
        );
  let result: PeerAuthenticationExplanation = { mode: 'PERMISSIVE', level: 'default' };
  const levels = [
    ['mesh', mesh],
    ['namespace', namespace],
    ['workload', selected],
  ] as const;
  const applied: string[] = [];
  for (const [level, policy] of levels) {
    if (policy === undefined) continue;
    applied.push(policy.meta.id);
    if (policy.mode !== 'UNSET') result = { mode: policy.mode, level, policy: policy.meta.id };
  }
  const ports = new Map<number, PeerAuthenticationExplanation>();
  for (const [port, mode] of selected?.portModes ?? []) {
    if (mode !== 'UNSET') ports.set(port, { mode, level: 'port', policy: selected!.meta.id });
  }
  return { workload: result, ports, applied };
}

export function modeForPort(resolved: ResolvedPeerAuthentication, port: number): PeerAuthenticationMode {
  return (resolved.ports.get(port) ?? resolved.workload).mode;
}
