// The proxy injector: a Deployment serving the admission webhooks over HTTPS with its own serving
// certificate, the MutatingWebhookConfiguration that sends it every new pod outside the control
// plane and kube-system (it decides from the namespace's and pod's annotations), and the
// ValidatingWebhookConfiguration that sends it every policy created or changed.
import {
  CONTROL_PLANE,
  CONTROL_PLANE_NAMESPACE,
  INJECT_VALUES,
  INJECTOR_WEBHOOK,
  LABELS,
  POLICY_VALIDATOR_WEBHOOK,
  TRUST_ANCHORS_CONFIG_MAP,
} from '../constants.ts';
import { injectorArgs, MOUNTS } from './component-args.ts';
import {
  componentLabels,
  controlPlaneDeployment,
  controlPlaneDisruptionBudget,
  controlPlaneService,
  type K8sObject,
  metadata,
  serviceAccount,
} from './control-plane-workload.ts';
import { base64 } from './identity-manifests.ts';
import type { InstallConfig } from './install-options.ts';
import { POLICY_API_GROUP, POLICY_PLURALS } from './policy-crds.ts';
import type { WebhookCertificate } from './webhook-certificate.ts';

const { injector } = CONTROL_PLANE;
const WEBHOOK_SERVICE_PORT = injector.servicePort;
/** Never injected, whatever their annotations say: the control plane and Kubernetes' own. */
export const NEVER_INJECTED_NAMESPACES = [CONTROL_PLANE_NAMESPACE, 'kube-system'];

export const FAILURE_POLICY_COMMENT = {
  Ignore:
    'failurePolicy Ignore (the default): while the injector is down, pods start WITHOUT a proxy (unmeshed; STRICT peers refuse them) rather than not at all. Choose Fail (--webhook-failure-policy Fail) to refuse such pods instead, at the cost of no pod creation in any selected namespace while the injector is unreachable.',
  Fail: 'failurePolicy Fail: while the injector is unreachable, no pod is created in any namespace the webhook selects (every namespace but mutual-system and kube-system), so no pod ever starts unmeshed by accident. Keep the injector highly available (--control-plane-replicas).',
} as const;

/** Why the policy validator fails closed, whatever --webhook-failure-policy says for pods. */
export const POLICY_VALIDATOR_FAILURE_POLICY_COMMENT =
  "failurePolicy Fail: a policy is stored only once the injector has checked it. With Ignore, a policy created while the injector is unreachable would be stored unchecked, and if it is one the destination service skips, it would not apply (a DENY that denies nothing) with only a log line saying so. Fail costs only this: while the injector is down, creating or changing policies is refused (kubectl says it could not call the webhook; try again once it is back), and deleting them still works. No other object goes through this webhook. Istio's istio-validator ends at Fail too.";

export function injectorManifests(
  config: InstallConfig,
  certificate: WebhookCertificate,
  trustDomain: string,
): K8sObject[] {
  const labels = componentLabels('injector');
  return [
    serviceAccount(injector.serviceAccount, 'injector'),
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: metadata(INJECTOR_WEBHOOK.secretName, labels),
      type: 'kubernetes.io/tls',
      data: {
        'tls.crt': base64(certificate.certificatePem),
        'tls.key': base64(certificate.keyPem),
        'ca.crt': base64(certificate.caPem),
      },
    },
    controlPlaneDeployment({
      component: 'injector',
      name: injector.name,
      serviceAccount: injector.serviceAccount,
      image: config.image,
      imagePullPolicy: config.imagePullPolicy,
      replicas: config.controlPlaneReplicas,
      args: injectorArgs(config, trustDomain),
      ports: [
        { name: 'webhook', containerPort: injector.port },
        { name: 'admin', containerPort: injector.adminPort },
      ],
      volumeMounts: [
        { name: 'tls', mountPath: MOUNTS.injectorTls, readOnly: true },
        // Watched: a changed ConfigMap reaches pods created after it (the kubelet refreshes the mount).
        { name: 'trust-anchors', mountPath: MOUNTS.injectorTrustAnchors, readOnly: true },
      ],
      volumes: [
        { name: 'tls', secret: { secretName: INJECTOR_WEBHOOK.secretName, defaultMode: 0o440 } },
        { name: 'trust-anchors', configMap: { name: TRUST_ANCHORS_CONFIG_MAP.name } },
      ],
    }),
    ...controlPlaneDisruptionBudget('injector', injector.name, config.controlPlaneReplicas),
    controlPlaneService(injector.name, 'injector', [
      { name: 'webhook', port: WEBHOOK_SERVICE_PORT, targetPort: 'webhook' },
    ]),
    mutatingWebhookConfiguration(config, certificate),
    policyValidatingWebhookConfiguration(config, certificate),
  ];
}

function policyValidatingWebhookConfiguration(
  config: InstallConfig,
  certificate: WebhookCertificate,
): K8sObject {
  const rule = (apiGroup: string, apiVersions: string[]) => ({
    // DELETE is not sent: deleting a policy is always allowed.
    operations: ['CREATE', 'UPDATE'],
    apiGroups: [apiGroup],
    apiVersions,
    resources: [...POLICY_PLURALS],
    scope: 'Namespaced',
  });
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: {
      name: POLICY_VALIDATOR_WEBHOOK.configurationName,
      labels: componentLabels('injector'),
      annotations: { 'mutual.dev/failure-policy': POLICY_VALIDATOR_FAILURE_POLICY_COMMENT },
    },
    webhooks: [
      {
        name: POLICY_VALIDATOR_WEBHOOK.webhookName,
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: 'Fail',
        matchPolicy: 'Equivalent',
        timeoutSeconds: 10,
        clientConfig: {
          service: {
            name: injector.name,
            namespace: CONTROL_PLANE_NAMESPACE,
            path: injector.validatePath,
            port: WEBHOOK_SERVICE_PORT,
          },
          caBundle: base64(certificate.caPem),
        },
        // Every namespace: policies in mutual-system are the mesh-wide ones.
        rules: [
          rule(POLICY_API_GROUP, ['v1']),
          // Istio's own only when asked: where istiod runs, its istio-validator checks them.
          ...(config.validateIstioPolicies ? [rule('security.istio.io', ['v1', 'v1beta1'])] : []),
        ],
      },
    ],
  };
}

function mutatingWebhookConfiguration(config: InstallConfig, certificate: WebhookCertificate): K8sObject {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: {
      name: INJECTOR_WEBHOOK.configurationName,
      labels: componentLabels('injector'),
      annotations: { 'mutual.dev/failure-policy': FAILURE_POLICY_COMMENT[config.webhookFailurePolicy] },
    },
    webhooks: [
      // Namespaces labelled mutual.dev/inject=enabled: every pod but those annotated disabled.
      webhook(INJECTOR_WEBHOOK.namespaceWebhookName, injector.namespacePath, 'In', config, certificate),
      // Everywhere else: only pods annotated mutual.dev/inject: enabled (the injector decides).
      webhook(INJECTOR_WEBHOOK.podWebhookName, injector.path, 'NotIn', config, certificate),
    ],
  };
}

function webhook(
  name: string,
  path: string,
  namespaceLabel: 'In' | 'NotIn',
  config: InstallConfig,
  certificate: WebhookCertificate,
) {
  return {
    name,
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: config.webhookFailurePolicy,
    matchPolicy: 'Equivalent',
    reinvocationPolicy: 'Never',
    timeoutSeconds: 10,
    clientConfig: {
      service: { name: injector.name, namespace: CONTROL_PLANE_NAMESPACE, path, port: WEBHOOK_SERVICE_PORT },
      caBundle: base64(certificate.caPem),
    },
    rules: [
      {
        operations: ['CREATE'],
        apiGroups: [''],
        apiVersions: ['v1'],
        resources: ['pods'],
        scope: 'Namespaced',
      },
    ],
    namespaceSelector: {
      matchExpressions: [
        // NotIn also matches namespaces without the label, so the two webhooks never both fire.
        { key: LABELS.inject, operator: namespaceLabel, values: [INJECT_VALUES.enabled] },
        // Every namespace has the label kubernetes.io/metadata.name (Kubernetes 1.21+).
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: NEVER_INJECTED_NAMESPACES },
      ],
    },
    // Control-plane pods are labelled, so even a copy outside mutual-system is never injected.
    objectSelector: {
      matchExpressions: [{ key: LABELS.controlPlaneComponent, operator: 'DoesNotExist' }],
    },
  };
}
