// The identity service in the cluster: it signs workload certificates for the identity a
// ServiceAccount token proves (TokenReview), with the issuer from a Secret and the anchors from a
// ConfigMap, both mounted and watched (Kubernetes updates mounted files in place).
import {
  CONTROL_PLANE,
  CONTROL_PLANE_NAMESPACE,
  ISSUER_SECRET,
  TRUST_ANCHORS_CONFIG_MAP,
} from '../constants.ts';
import { identityArgs, MOUNTS } from './component-args.ts';
import {
  componentLabels,
  controlPlaneDeployment,
  controlPlaneDisruptionBudget,
  controlPlaneService,
  type K8sObject,
  metadata,
  serviceAccount,
} from './control-plane-workload.ts';
import type { IdentityCa } from './identity-ca.ts';
import type { InstallConfig } from './install-options.ts';

const { identity } = CONTROL_PLANE;

export function identityManifests(config: InstallConfig, ca: IdentityCa): K8sObject[] {
  const labels = componentLabels('identity');
  const roleName = `${identity.name}-tokenreviews`;
  return [
    serviceAccount(identity.serviceAccount, 'identity'),
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: roleName, labels },
      rules: [{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }],
    },
    clusterRoleBinding(roleName, identity.serviceAccount, labels),
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: metadata(TRUST_ANCHORS_CONFIG_MAP.name, labels),
      data: { [TRUST_ANCHORS_CONFIG_MAP.key]: ca.trustAnchorsPem },
    },
    ...(ca.issuer
      ? [
          {
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: metadata(ISSUER_SECRET.name, labels),
            type: 'kubernetes.io/tls',
            data: {
              [ISSUER_SECRET.certKey]: base64(ca.issuer.certificatePem),
              [ISSUER_SECRET.keyKey]: base64(ca.issuer.keyPem),
            },
          },
        ]
      : []),
    controlPlaneDeployment({
      component: 'identity',
      name: identity.name,
      serviceAccount: identity.serviceAccount,
      image: config.image,
      imagePullPolicy: config.imagePullPolicy,
      replicas: config.controlPlaneReplicas,
      args: identityArgs({ svidLifetime: config.identitySvidLifetime, trustDomain: ca.trustDomain }),
      ports: [
        { name: 'https', containerPort: identity.port },
        { name: 'admin', containerPort: identity.adminPort },
      ],
      volumeMounts: [
        { name: 'trust-anchors', mountPath: MOUNTS.trustAnchors, readOnly: true },
        { name: 'issuer', mountPath: MOUNTS.issuer, readOnly: true },
        { name: 'state', mountPath: MOUNTS.state },
      ],
      volumes: [
        { name: 'trust-anchors', configMap: { name: TRUST_ANCHORS_CONFIG_MAP.name } },
        // 0440 with fsGroup: readable by the service's group, by no one else.
        { name: 'issuer', secret: { secretName: ISSUER_SECRET.name, defaultMode: 0o440 } },
        { name: 'state', emptyDir: {} },
      ],
    }),
    ...controlPlaneDisruptionBudget('identity', identity.name, config.controlPlaneReplicas),
    controlPlaneService(identity.name, 'identity', [
      { name: 'https', port: identity.port, targetPort: 'https' },
      { name: 'admin', port: identity.adminPort, targetPort: 'admin' },
    ]),
  ];
}

export function clusterRoleBinding(
  roleName: string,
  serviceAccountName: string,
  labels: Record<string, string>,
): K8sObject {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: roleName, labels },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
    subjects: [{ kind: 'ServiceAccount', name: serviceAccountName, namespace: CONTROL_PLANE_NAMESPACE }],
  };
}

export function base64(text: string): string {
  return Buffer.from(text).toString('base64');
}
