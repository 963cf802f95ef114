// The destination service: watches Pods, Services and EndpointSlices (address → meshed?, the
// identity to expect, protocol hints) and the policies, ours and Istio's; read-only RBAC for that.
import { CONTROL_PLANE, IDENTITY_TOKEN_AUDIENCE, TRUST_ANCHORS_CONFIG_MAP } from '../constants.ts';
import { destinationArgs, MOUNTS } from './component-args.ts';
import {
  componentLabels,
  controlPlaneDeployment,
  controlPlaneDisruptionBudget,
  controlPlaneService,
  type K8sObject,
  serviceAccount,
} from './control-plane-workload.ts';
import { clusterRoleBinding } from './identity-manifests.ts';
import type { InstallConfig } from './install-options.ts';
import { POLICY_API_GROUP, POLICY_PLURALS } from './policy-crds.ts';

const { destination } = CONTROL_PLANE;
const READ = ['get', 'list', 'watch'];

export function destinationManifests(config: InstallConfig, trustDomain: string): K8sObject[] {
  const labels = componentLabels('destination');
  const roleName = destination.name;
  return [
    serviceAccount(destination.serviceAccount, 'destination'),
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: roleName, labels },
      rules: [
        { apiGroups: [''], resources: ['pods', 'services', 'namespaces'], verbs: READ },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: READ },
        { apiGroups: [POLICY_API_GROUP], resources: [...POLICY_PLURALS], verbs: READ },
        // Istio's kinds, read when Istio's CRDs are installed (the same schema as ours).
        { apiGroups: ['security.istio.io'], resources: [...POLICY_PLURALS], verbs: READ },
      ],
    },
    clusterRoleBinding(roleName, destination.serviceAccount, labels),
    controlPlaneDeployment({
      component: 'destination',
      name: destination.name,
      serviceAccount: destination.serviceAccount,
      image: config.image,
      imagePullPolicy: config.imagePullPolicy,
      replicas: config.controlPlaneReplicas,
      args: destinationArgs(trustDomain),
      volumeMounts: [
        { name: 'identity-token', mountPath: MOUNTS.identityToken, readOnly: true },
        { name: 'trust-anchors', mountPath: MOUNTS.trustAnchors, readOnly: true },
      ],
      volumes: [
        {
          name: 'identity-token',
          projected: {
            sources: [
              {
                serviceAccountToken: {
                  audience: IDENTITY_TOKEN_AUDIENCE,
                  expirationSeconds: 3600,
                  path: 'token',
                },
              },
            ],
          },
        },
        { name: 'trust-anchors', configMap: { name: TRUST_ANCHORS_CONFIG_MAP.name } },
      ],
      ports: [
        { name: 'api', containerPort: destination.port },
        { name: 'admin', containerPort: destination.adminPort },
      ],
    }),
    ...controlPlaneDisruptionBudget('destination', destination.name, config.controlPlaneReplicas),
    controlPlaneService(destination.name, 'destination', [
      { name: 'api', port: destination.port, targetPort: 'api' },
      { name: 'admin', port: destination.adminPort, targetPort: 'admin' },
    ]),
  ];
}
