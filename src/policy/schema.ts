// The two resource kinds as zod schemas, strict: an unknown field is an error naming it, never
// silently ignored (a misspelt `notPrincipal` would otherwise widen access).
import { z } from 'zod';

export const API_VERSIONS = ['security.istio.io/v1', 'security.istio.io/v1beta1', 'security.mutual.dev/v1'];
export const POLICY_KINDS = ['PeerAuthentication', 'AuthorizationPolicy'] as const;
export type PolicyKind = (typeof POLICY_KINDS)[number];

/** A strict object whose unknown-field error lists the fields allowed there. */
function strict<T extends z.core.$ZodLooseShape>(shape: T) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown field ${issue.keys.map((key) => `"${key}"`).join(', ')} (allowed here: ${allowed})`
        : undefined,
  });
}

const nonEmpty = z.string().min(1, 'must not be empty');
const stringList = z.array(nonEmpty);

/** Kubernetes metadata, as far as policies use it; labels and annotations are accepted and unused. */
const metadataSchema = strict({
  name: z
    .string()
    .regex(
      /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
      'must be a DNS-1123 name: lower-case letters, digits, "-" and "."',
    ),
  namespace: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS-1123 label: lower-case letters, digits and "-"')
    .optional(),
  creationTimestamp: z
    .union([z.string(), z.date()])
    .refine((value) => !Number.isNaN(new Date(value).getTime()), {
      message: 'must be an RFC 3339 time such as 2026-01-31T12:00:00Z',
    })
    .optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

const selectorSchema = strict({ matchLabels: z.record(z.string(), z.string()).optional() });

export const MTLS_MODES = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'] as const;
export type MtlsMode = (typeof MTLS_MODES)[number];
const mtlsSchema = strict({ mode: z.enum(MTLS_MODES).optional() });

const portKey = z.string().regex(/^\d+$/, 'port must be a number').refine(isPort, 'port must be 1–65535');

const peerAuthenticationSpec = strict({
  selector: selectorSchema.optional(),
  mtls: mtlsSchema.optional(),
  portLevelMtls: z.record(portKey, mtlsSchema).optional(),
});

const portList = z.array(
  z.union([z.number(), z.string()]).refine((port) => isPort(String(port)), 'port must be a number 1–65535'),
);

const sourceSchema = strict({
  principals: stringList.optional(),
  notPrincipals: stringList.optional(),
  namespaces: stringList.optional(),
  notNamespaces: stringList.optional(),
  serviceAccounts: stringList.optional(),
  notServiceAccounts: stringList.optional(),
  ipBlocks: stringList.optional(),
  notIpBlocks: stringList.optional(),
  requestPrincipals: stringList.optional(),
  notRequestPrincipals: stringList.optional(),
  remoteIpBlocks: stringList.optional(),
  notRemoteIpBlocks: stringList.optional(),
});

const operationSchema = strict({
  hosts: stringList.optional(),
  notHosts: stringList.optional(),
  ports: portList.optional(),
  notPorts: portList.optional(),
  methods: stringList.optional(),
  notMethods: stringList.optional(),
  paths: stringList.optional(),
  notPaths: stringList.optional(),
});

const conditionSchema = strict({
  key: nonEmpty,
  values: stringList.optional(),
  notValues: stringList.optional(),
}).refine((condition) => (condition.values?.length ?? 0) + (condition.notValues?.length ?? 0) > 0, {
  message: 'a condition needs "values" or "notValues"',
});

const ruleSchema = strict({
  from: z.array(strict({ source: sourceSchema })).optional(),
  to: z.array(strict({ operation: operationSchema })).optional(),
  when: z.array(conditionSchema).optional(),
});

export const AUTHORIZATION_ACTIONS = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] as const;

/** Istio's PolicyTargetReference: parsed so it can be refused with a reason (rules-check.ts). */
const targetRefSchema = strict({
  group: z.string().optional(),
  kind: nonEmpty,
  name: nonEmpty,
  namespace: z.string().optional(),
});

const authorizationPolicySpec = strict({
  selector: selectorSchema.optional(),
  targetRef: targetRefSchema.optional(),
  targetRefs: z.array(targetRefSchema).optional(),
  action: z.enum(AUTHORIZATION_ACTIONS).optional(),
  rules: z.array(ruleSchema).optional(),
  provider: strict({ name: z.string() }).optional(),
});

function resource<K extends PolicyKind, S extends z.ZodType>(kind: K, spec: S) {
  return strict({
    apiVersion: z.enum(API_VERSIONS as [string, ...string[]], {
      error: `apiVersion must be one of ${API_VERSIONS.join(', ')}`,
    }),
    kind: z.literal(kind),
    metadata: metadataSchema,
    // `spec: {}` and a missing spec mean the same: an empty policy.
    spec: spec.optional(),
  });
}

export const peerAuthenticationSchema = resource('PeerAuthentication', peerAuthenticationSpec);
export const authorizationPolicySchema = resource('AuthorizationPolicy', authorizationPolicySpec);

export type PeerAuthenticationInput = z.infer<typeof peerAuthenticationSchema>;
export type AuthorizationPolicyInput = z.infer<typeof authorizationPolicySchema>;
export type AuthorizationRuleInput = z.infer<typeof ruleSchema>;
export type SourceInput = z.infer<typeof sourceSchema>;
export type OperationInput = z.infer<typeof operationSchema>;
export type ConditionInput = z.infer<typeof conditionSchema>;
export type TargetRefInput = z.infer<typeof targetRefSchema>;

function isPort(value: string): boolean {
  if (!/^\d+$/.test(value)) return false;
  const port = Number(value);
  return port >= 1 && port <= 65_535;
}
