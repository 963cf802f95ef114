// The CustomResourceDefinitions of our policy kinds, `security.mutual.dev/v1`: the same fields as
// Istio's PeerAuthentication and AuthorizationPolicy, which src/policy parses. The structural
// schemas list exactly the fields the parser reads (test/k8s/policy-crds.test.ts holds them to it):
// the API server prunes a field the schema lacks before anyone reads the object, so a parser field
// missing here would vanish from every policy using it; and kubectl's strict field validation
// refuses a field the schema lacks, so a misspelt `notPrincipal` is stopped at `kubectl apply`.
import type { K8sObject } from './control-plane-workload.ts';
import { partOfLabels } from './control-plane-workload.ts';

export const POLICY_API_GROUP = 'security.mutual.dev';
export const POLICY_PLURALS = ['peerauthentications', 'authorizationpolicies'] as const;

type Schema = Record<string, unknown>;

const string: Schema = { type: 'string' };
const stringList: Schema = { type: 'array', items: { type: 'string', minLength: 1 } };
const stringMap: Schema = { type: 'object', additionalProperties: { type: 'string' } };
const portList: Schema = { type: 'array', items: { 'x-kubernetes-int-or-string': true } };
const object = (properties: Record<string, Schema>, extra: Schema = {}): Schema => ({
  type: 'object',
  properties,
  ...extra,
});
const listOf = (items: Schema): Schema => ({ type: 'array', items });
const selector = object(
  { matchLabels: stringMap },
  { description: 'The pods the policy applies to; none means every pod of the namespace.' },
);
const mtls = object({
  mode: { type: 'string', enum: ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'] },
});

const peerAuthenticationSpec = object({
  selector,
  mtls,
  portLevelMtls: {
    type: 'object',
    description: 'mTLS mode per container port (the key is the port number).',
    additionalProperties: mtls,
  },
});

const source = object(
  Object.fromEntries(
    [
      'principals',
      'notPrincipals',
      'namespaces',
      'notNamespaces',
      'serviceAccounts',
      'notServiceAccounts',
      'ipBlocks',
      'notIpBlocks',
      'requestPrincipals',
      'notRequestPrincipals',
      'remoteIpBlocks',
      'notRemoteIpBlocks',
    ].map((field) => [field, stringList]),
  ),
);
const operation = object({
  hosts: stringList,
  notHosts: stringList,
  ports: portList,
  notPorts: portList,
  methods: stringList,
  notMethods: stringList,
  paths: stringList,
  notPaths: stringList,
});
// Refused by the parser with the selector to write instead (Istio's sidecars ignore such policies).
const targetRef = object({ group: string, kind: string, name: string, namespace: string });
const authorizationPolicySpec = object({
  selector,
  targetRef,
  targetRefs: listOf(targetRef),
  action: { type: 'string', enum: ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] },
  rules: listOf(
    object({
      from: listOf(object({ source })),
      to: listOf(object({ operation })),
      when: listOf(object({ key: string, values: stringList, notValues: stringList }, { required: ['key'] })),
    }),
  ),
  provider: object({ name: string }),
});

export function policyCrds(): K8sObject[] {
  return [
    crd('PeerAuthentication', 'peerauthentications', peerAuthenticationSpec, [
      { name: 'Mode', type: 'string', jsonPath: '.spec.mtls.mode', description: 'mTLS mode' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ]),
    crd('AuthorizationPolicy', 'authorizationpolicies', authorizationPolicySpec, [
      { name: 'Action', type: 'string', jsonPath: '.spec.action', description: 'ALLOW when empty' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ]),
  ];
}

function crd(kind: string, plural: string, spec: Schema, columns: Schema[]): K8sObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${POLICY_API_GROUP}`, labels: partOfLabels() },
    spec: {
      group: POLICY_API_GROUP,
      names: {
        kind,
        listKind: `${kind}List`,
        plural,
        singular: kind.toLowerCase(),
        categories: ['mutual', 'mutual-policy'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          additionalPrinterColumns: columns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: `Mutual ${kind} (the fields of Istio's security.istio.io ${kind}).`,
              properties: { spec: { ...spec, description: `The ${kind} itself.` } },
            },
          },
        },
      ],
    },
  };
}
