// `mutual install`: the whole control plane as Kubernetes objects, in the order `kubectl apply`
// needs them (namespace and CRDs first, the webhook last), then as multi-document YAML.
import { Document } from 'yaml';
import type { Clock } from '../../clock.ts';
import { VERSION } from '../../version.ts';
import {
  ANNOTATIONS,
  CONTROL_PLANE,
  CONTROL_PLANE_NAMESPACE,
  INJECT_VALUES,
  ISSUER_SECRET,
} from '../constants.ts';
import { type K8sObject, partOfLabels } from './control-plane-workload.ts';
import { destinationManifests } from './destination-manifests.ts';
import { type IdentityCa, resolveIdentityCa } from './identity-ca.ts';
import { identityManifests } from './identity-manifests.ts';
import {
  FAILURE_POLICY_COMMENT,
  injectorManifests,
  POLICY_VALIDATOR_FAILURE_POLICY_COMMENT,
} from './injector-manifests.ts';
import type { InstallConfig } from './install-options.ts';
import { policyCrds } from './policy-crds.ts';
import { createWebhookCertificate, type WebhookCertificate, webhookDnsNames } from './webhook-certificate.ts';

export interface RenderedInstall {
  readonly objects: readonly K8sObject[];
  readonly identityCa: IdentityCa;
  readonly webhookCertificate: WebhookCertificate;
}

export async function renderInstall(
  config: InstallConfig,
  deps: { clock: Clock; cwd: string },
): Promise<RenderedInstall> {
  // The identity CA: generated, brought (and checked), or only its anchors (cert-manager).
  const identityCa = await resolveIdentityCa(config.identityCa, {
    trustDomain: config.trustDomain,
    clock: deps.clock,
    cwd: deps.cwd,
  });
  // The webhook's serving certificate, for the name the API server dials.
  const webhookCertificate = await createWebhookCertificate({
    dnsNames: webhookDnsNames(CONTROL_PLANE.injector.name, CONTROL_PLANE_NAMESPACE),
    lifetimeMs: config.webhookCertificateLifetimeMs,
    clock: deps.clock,
  });
  const objects = [
    namespace(),
    ...policyCrds(),
    ...identityManifests(config, identityCa),
    ...destinationManifests(config, identityCa.trustDomain),
    ...injectorManifests(config, webhookCertificate, identityCa.trustDomain),
  ];
  return { objects, identityCa, webhookCertificate };
}

function namespace(): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: CONTROL_PLANE_NAMESPACE,
      labels: { ...partOfLabels(), 'pod-security.kubernetes.io/enforce': 'restricted' },
      annotations: { [ANNOTATIONS.inject]: INJECT_VALUES.disabled },
    },
  };
}

/** Multi-document YAML for `kubectl apply -f -`, with a header saying what it holds. */
export function installYaml(rendered: RenderedInstall, config: InstallConfig): string {
  const ca = rendered.identityCa;
  const caLine =
    config.identityCa.kind === 'generated'
      ? 'identity CA: generated now (trust anchor key discarded; see docs/kubernetes.md before production)'
      : config.identityCa.kind === 'files'
        ? 'identity CA: brought from files (checked: CA, key matches, valid, chains to an anchor)'
        : `identity CA: external; the Secret ${CONTROL_PLANE_NAMESPACE}/${ISSUER_SECRET.name} (kubernetes.io/tls) is NOT rendered, cert-manager writes it`;
  const header = [
    ` Mutual ${VERSION} control plane, rendered by \`mutual install\`.`,
    ` Apply: mutual install ... | kubectl apply -f -      Remove: ... | kubectl delete --ignore-not-found -f -`,
    ` trust domain: ${ca.trustDomain}`,
    ` ${caLine}`,
    ` webhook failurePolicy: ${config.webhookFailurePolicy} (injection); Fail (policy validation${config.validateIstioPolicies ? ', security.istio.io too' : ''})`,
  ].join('\n');
  return rendered.objects
    .map((object, index) => {
      // No &a1 / *a1 for values that happen to repeat: editing one place must not edit another.
      const document = new Document(object, { aliasDuplicateObjects: false });
      const comments: string[] = [];
      if (index === 0) comments.push(header);
      if (object.kind === 'MutatingWebhookConfiguration') {
        comments.push(wrap(FAILURE_POLICY_COMMENT[config.webhookFailurePolicy], 96));
      }
      if (object.kind === 'ValidatingWebhookConfiguration') {
        comments.push(wrap(POLICY_VALIDATOR_FAILURE_POLICY_COMMENT, 96));
      }
      if (comments.length > 0) document.commentBefore = comments.join('\n\n');
      return document.toString({ lineWidth: 0 });
    })
    .join('---\n');
}

/** Words into comment lines of at most `width` characters, each starting with a space (after `#`). */
function wrap(text: string, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(` ${line}`);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(` ${line}`);
  return lines.join('\n');
}
