// What both of the injector's webhook configurations are checked against: the serving certificate
// in its Secret, and whether a webhook's caBundle signs it (the API server's own test); and the two
// results both report alike (how many webhooks, what their failure policies mean).
import { type CheckResult, fail, ok } from '../../mesh/checks/index.ts';
import { type ParsedCertificate, parseCertificatesPem } from '../../pki/index.ts';
import { CONTROL_PLANE_NAMESPACE, INJECTOR_WEBHOOK } from '../constants.ts';
import { secretValue } from './cluster-ca-checks.ts';
import type { ClusterView } from './cluster-view.ts';

export const INJECTOR_SECRET = `Secret ${CONTROL_PLANE_NAMESPACE}/${INJECTOR_WEBHOOK.secretName}`;

export const REINSTALL = `re-apply the control plane with the flags you installed it with (your CA files or cert-manager: a generated CA would be replaced by a new one, docs/kubernetes.md): \`mutual install ... | kubectl apply -f -\` renders the serving certificate and the caBundle together (the injector reloads its Secret without a restart)`;

/** A webhook of a Mutating- or ValidatingWebhookConfiguration, as far as the checks read it. */
export interface WebhookLike {
  readonly name?: string;
  readonly failurePolicy?: string;
  readonly clientConfig?: {
    readonly caBundle?: string;
    readonly url?: string;
    readonly service?: {
      readonly name?: string;
      readonly namespace?: string;
      readonly path?: string;
      readonly port?: number;
    };
  };
}

/** The configuration holds webhooks (how many), or it is empty. */
export function webhookCount(configuration: string, webhooks: readonly WebhookLike[]): CheckResult {
  return webhooks.length > 0
    ? ok(`${configuration}, ${webhooks.length} webhook${webhooks.length === 1 ? '' : 's'}`)
    : fail(`${configuration} has no webhooks`);
}

/** Each failure policy in use (Fail when unset, as the API server reads it), with what it means. */
export function failurePolicies(
  webhooks: readonly WebhookLike[],
  meanings: Readonly<Record<string, string>>,
): CheckResult {
  const policies = [...new Set(webhooks.map((webhook) => webhook.failurePolicy ?? 'Fail'))];
  return ok(policies.map((policy) => `${policy} (${meanings[policy] ?? 'unknown policy'})`).join('; '));
}

export async function servingCertificate(view: ClusterView): Promise<ParsedCertificate> {
  const secret = await view.get<{ data?: Record<string, string> }>(
    `/api/v1/namespaces/${CONTROL_PLANE_NAMESPACE}/secrets/${INJECTOR_WEBHOOK.secretName}`,
  );
  if (!secret) throw new Error(`${INJECTOR_SECRET} does not exist`);
  const [leaf] = parseCertificatesPem(
    secretValue(secret, 'tls.crt', INJECTOR_SECRET),
    `${INJECTOR_SECRET} (tls.crt)`,
  );
  return leaf!;
}

export const certificateLabel = (certificate: ParsedCertificate): string =>
  certificate.subject || certificate.fingerprintSha256;

/** Does one of the caBundle's certificates sign the serving certificate? */
function verifiesWith(caBundle: string | undefined, leaf: ParsedCertificate): CheckResult | undefined {
  if (!caBundle)
    return fail('has no clientConfig.caBundle: the API server would verify the injector with its own roots');
  let roots: ParsedCertificate[];
  try {
    roots = parseCertificatesPem(Buffer.from(caBundle, 'base64').toString('utf8'), 'caBundle');
  } catch (error) {
    return fail(`its caBundle is not PEM certificates: ${(error as Error).message}`);
  }
  const signer = roots.find(
    (root) => leaf.native.checkIssued(root.native) && leaf.native.verify(root.publicKey),
  );
  return signer
    ? undefined
    : fail(
        `its caBundle (${roots.map(certificateLabel).join('; ')}) did not sign the serving certificate in ${INJECTOR_SECRET}, which ${leaf.issuer} issued`,
      );
}

/** One result per webhook, named after it: ok, or why its caBundle does not verify `leaf`. */
export function caBundleResults(webhooks: readonly WebhookLike[], leaf: ParsedCertificate): CheckResult[] {
  return webhooks.map((webhook) => {
    const result = verifiesWith(webhook.clientConfig?.caBundle, leaf);
    const name = webhook.name ?? '(unnamed)';
    return result ? { ...result, subject: name } : ok('', name);
  });
}
