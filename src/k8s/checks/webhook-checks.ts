// The injector's admission webhook: its MutatingWebhookConfiguration, the serving certificate in
// its Secret (valid, not expiring soon) and whether each webhook's caBundle verifies it.
import { type CheckCategory, failOrSkip, lifetimeLeft, ok, validity } from '../../mesh/checks/index.ts';
import { CONTROL_PLANE, INJECTOR_WEBHOOK } from '../constants.ts';
import type { ClusterView } from './cluster-view.ts';
import {
  caBundleResults,
  failurePolicies,
  certificateLabel as label,
  REINSTALL,
  servingCertificate,
  type WebhookLike,
  webhookCount,
} from './injector-serving-certificate.ts';

const CONFIGURATION = `MutatingWebhookConfiguration ${INJECTOR_WEBHOOK.configurationName}`;

async function configuration(view: ClusterView): Promise<readonly WebhookLike[]> {
  const found = await view.get<{ webhooks?: WebhookLike[] }>(
    `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${INJECTOR_WEBHOOK.configurationName}`,
  );
  if (!found) throw new Error(`${CONFIGURATION} does not exist`);
  return found.webhooks ?? [];
}

const POLICY_MEANING: Record<string, string> = {
  Ignore: 'while the injector is down, new pods start without a proxy',
  // The per-pod webhook (opt-in by annotation, which selectors cannot see) is called for every pod.
  Fail: 'while the injector is down, no pod is created in any namespace but mutual-system and kube-system',
};

export function webhookChecks(view: ClusterView): CheckCategory {
  return {
    name: 'kubernetes webhook',
    checks: [
      {
        description: 'the injector webhook is configured',
        hint: 'without it the API server never calls the injector: new pods start without a proxy',
        fix: REINSTALL,
        severity: 'error',
        async run() {
          try {
            const webhooks = await configuration(view);
            return webhookCount(CONFIGURATION, webhooks);
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
      {
        description: "the webhook's caBundle verifies the injector's serving certificate",
        hint: 'the API server checks the injector against this caBundle; when it does not match, every injection call fails',
        fix: REINSTALL,
        severity: 'error',
        async run() {
          try {
            const leaf = await servingCertificate(view);
            return caBundleResults(await configuration(view), leaf);
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
      {
        description: "the injector's serving certificate is within its validity period",
        hint: `the API server refuses an expired certificate: every injection call fails (${CONTROL_PLANE.injector.name})`,
        fix: REINSTALL,
        severity: 'error',
        async run(context) {
          try {
            const leaf = await servingCertificate(view);
            return validity(leaf, label(leaf), context.clock.now());
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
      {
        description: "the injector's serving certificate is valid for at least the warning period",
        hint: 'when it expires, injection stops; renew it before then',
        fix: REINSTALL,
        severity: 'warning',
        async run(context) {
          try {
            const leaf = await servingCertificate(view);
            const result = lifetimeLeft(leaf, label(leaf), context);
            return result.status === 'ok'
              ? ok(`expires ${new Date(leaf.notAfterMs).toISOString().replace(/\.\d{3}Z$/, 'Z')}`)
              : result;
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
      {
        description: 'webhook failure policy',
        hint: 'what happens to new pods while the injector cannot be reached',
        fix: `choose with \`mutual install --webhook-failure-policy Ignore|Fail\` (docs/kubernetes.md, "The webhook's failure policy")`,
        severity: 'info',
        async run() {
          try {
            return failurePolicies(await configuration(view), POLICY_MEANING);
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
    ],
  };
}
