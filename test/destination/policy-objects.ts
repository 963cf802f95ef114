// Policy objects as the API server returns them: with the uid, generation, managedFields,
// last-applied annotation and status the service must strip before parsing.
import { POLICY_COLLECTIONS } from '../../src/destination/index.ts';

export function policyPath(apiVersion: string, kind: string): string {
  return POLICY_COLLECTIONS.find((entry) => entry.apiVersion === apiVersion && entry.kind === kind)!.path;
}

export function authorizationPolicy(namespace: string, name: string, spec: object) {
  return {
    metadata: {
      name,
      namespace,
      uid: `uid-${namespace}-${name}`,
      creationTimestamp: '2026-01-01T00:00:00Z',
      generation: 1,
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
      managedFields: [{ manager: 'kubectl' }],
    },
    spec,
    status: { validationMessages: [] },
  };
}
