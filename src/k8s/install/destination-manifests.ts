// The destination service: watches Pods, Services and EndpointSlices (address → meshed?, the
// identity to expect, protocol hints) and the policies, ours and Istio's; read-only RBAC for that.
import { CONTROL_PLANE } from '../constants.ts';
import { destinationArgs } from './component-args.ts';
import {
  componentLabels,
  controlPlaneDeployment,
  controlPlaneService,
  type K8sObject,
  serviceAccount,
} from './control-plane-workload.ts';
import { clusterRoleBinding } from './identity-manifests.ts';
import type { InstallConfig } from './install-options.ts';
import { POLICY_API_GROUP, POLICY_PLURALS } from './policy-crds.ts';

const { destination } = CONTROL_PLANE;
const READ = ['get', 'list', 'watch'];

export function destinationManifests(config: InstallConfig): K8sObject[] {
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
      args: destinationArgs(),
      ports: [
        { name: 'api', containerPort: destination.port },
        { name: 'admin', containerPort: destination.adminPort },
      ],
    }),
    controlPlaneService(destination.name, 'destination', [
      { name: 'api', port: destination.port, targetPort: 'api' },
      { name: 'admin', port: destination.adminPort, targetPort: 'admin' },
    ]),
  ];
}
