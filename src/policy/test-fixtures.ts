// Helpers for policy tests: YAML in, compiled set out; fails the test on any parse error.
import assert from 'node:assert/strict';
import { parsePolicyText } from './parse.ts';
import { compilePolicySet, type PolicySet } from './policy-set.ts';
import type { WorkloadRef } from './types.ts';

export const ROOT = 'mutual-system';

export function policySet(yaml: string, rootNamespace = ROOT): PolicySet {
  const parsed = parsePolicyText(yaml, 'test.yaml', { rootNamespace });
  const errors = parsed.diagnostics.filter((diagnostic) => diagnostic.severity === 'error');
  assert.deepEqual(errors, [], 'test policies must parse');
  return compilePolicySet(parsed.resources, { rootNamespace });
}

export function workload(namespace: string, labels: Record<string, string> = {}): WorkloadRef {
  return { namespace, labels };
}

export function pa(
  name: string,
  namespace: string,
  spec: string,
  creationTimestamp?: string,
  apiVersion = 'security.istio.io/v1',
): string {
  const created = creationTimestamp ? `\n  creationTimestamp: "${creationTimestamp}"` : '';
  return `---\napiVersion: ${apiVersion}\nkind: PeerAuthentication\nmetadata:\n  name: ${name}\n  namespace: ${namespace}${created}\nspec:\n${indent(spec)}\n`;
}

export function ap(name: string, namespace: string, spec: string): string {
  return `---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec:\n${indent(spec)}\n`;
}

function indent(text: string): string {
  return text
    .trim()
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}
