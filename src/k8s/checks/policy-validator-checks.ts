// The policy validator: the ValidatingWebhookConfiguration that sends policies to the injector's
// /validate, checked as the injector webhook is (its caBundle against the same serving
// certificate), plus where it calls and what its failure policy means for policy edits.
import { type CheckCategory, CheckSkipped, fail, failOrSkip, ok } from '../../mesh/checks/index.ts';
import { CONTROL_PLANE, CONTROL_PLANE_NAMESPACE, POLICY_VALIDATOR_WEBHOOK } from '../constants.ts';
import type { ClusterView } from './cluster-view.ts';
import {
  caBundleResults,
  failurePolicies,
  REINSTALL,
  servingCertificate,
  type WebhookLike,
  webhookCount,
} from './injector-serving-certificate.ts';

const { injector } = CONTROL_PLANE;
const CONFIGURATION = `ValidatingWebhookConfiguration ${POLICY_VALIDATOR_WEBHOOK.configurationName}`;
const INJECTOR_ENDPOINT = `Service ${CONTROL_PLANE_NAMESPACE}/${injector.name}:${injector.servicePort}${injector.validatePath}`;

/** Its webhooks, or undefined when it does not exist. */
async function find(view: ClusterView): Promise<readonly WebhookLike[] | undefined> {
  const found = await view.get<{ webhooks?: WebhookLike[] }>(
    `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${POLICY_VALIDATOR_WEBHOOK.configurationName}`,
  );
  return found && (found.webhooks ?? []);
}

/** Its webhooks; a skip when it does not exist, which the first check reports (as a warning). */
async function configuration(view: ClusterView): Promise<readonly WebhookLike[]> {
  const webhooks = await find(view);
  if (!webhooks) throw new CheckSkipped(`${CONFIGURATION} does not exist`);
  return webhooks;
}

/** Where a webhook's calls go, as the API server reads its clientConfig (port 443 and path / when unset). */
function endpoint(webhook: WebhookLike): string {
  const config = webhook.clientConfig ?? {};
  if (config.url !== undefined) return `URL ${config.url}`;
  const { name = '', namespace = '', port = 443, path = '/' } = config.service ?? {};
  return `Service ${namespace}/${name}:${port}${path}`;
}

const POLICY_MEANING: Record<string, string> = {
  Fail: 'while the injector is down, creating or changing a policy is refused; deleting one still works',
  Ignore:
    'while the injector is down, policies are stored unchecked: an invalid one is skipped by the destination service and does not apply',
};

export function policyValidatorChecks(view: ClusterView): CheckCategory {
  return {
    name: 'kubernetes policy validator',
    checks: [
      {
        description: 'the policy validator webhook is configured',
        hint: 'without it `kubectl apply` stores invalid PeerAuthentications and AuthorizationPolicies, which the destination service then skips (a DENY that denies nothing) with only a log line saying so',
        fix: `re-apply the control plane with this version of Mutual and the flags you installed it with: \`mutual install ... | kubectl apply -f -\` renders ${CONFIGURATION} with the serving certificate its caBundle matches (the injector reloads its Secret without a restart)`,
        severity: 'warning',
        async run() {
          try {
            const webhooks = await find(view);
            if (!webhooks) return fail(`${CONFIGURATION} does not exist`);
            return webhookCount(CONFIGURATION, webhooks);
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
      {
        description: "the policy validator's caBundle verifies the injector's serving certificate",
        hint: 'the API server checks the injector against this caBundle; when it does not match, every policy create or update fails its call: refused under failurePolicy Fail',
        fix: REINSTALL,
        severity: 'error',
        async run() {
          try {
            const webhooks = await configuration(view);
            return caBundleResults(webhooks, await servingCertificate(view));
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
      {
        description: 'the policy validator calls the injector',
        hint: `the API server sends each policy where clientConfig says; anywhere but ${INJECTOR_ENDPOINT} the call fails or is not a policy check`,
        fix: REINSTALL,
        severity: 'error',
        async run() {
          try {
            return (await configuration(view)).map((webhook) => {
              const name = webhook.name ?? '(unnamed)';
              const target = endpoint(webhook);
              return target === INJECTOR_ENDPOINT
                ? ok(target, name)
                : fail(`calls ${target}, not the injector's ${INJECTOR_ENDPOINT}`, name);
            });
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
      {
        description: 'policy validator failure policy',
        hint: 'what happens to policy edits while the injector cannot be reached',
        fix: `\`mutual install\` always renders Fail, whatever --webhook-failure-policy says (docs/kubernetes.md, "Policy validation"); ${REINSTALL}`,
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
