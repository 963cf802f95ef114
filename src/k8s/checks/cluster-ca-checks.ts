// The trust anchors ConfigMap and the issuer Secret in mutual-system, judged by the same anchor
// and issuer checks as the state directory of `mutual up` (mesh/checks/ca-checks.ts).
import {
  type CaSource,
  type CheckCategory,
  issuerCategory,
  trustAnchorCategory,
} from '../../mesh/checks/index.ts';
import { CONTROL_PLANE_NAMESPACE, ISSUER_SECRET, TRUST_ANCHORS_CONFIG_MAP } from '../constants.ts';
import type { ClusterView } from './cluster-view.ts';

const ns = CONTROL_PLANE_NAMESPACE;
export const TRUST_ANCHORS_PATH = `/api/v1/namespaces/${ns}/configmaps/${TRUST_ANCHORS_CONFIG_MAP.name}`;
const ISSUER_PATH = `/api/v1/namespaces/${ns}/secrets/${ISSUER_SECRET.name}`;
const ANCHORS_NAME = `ConfigMap ${ns}/${TRUST_ANCHORS_CONFIG_MAP.name}`;
const ISSUER_NAME = `Secret ${ns}/${ISSUER_SECRET.name}`;

interface ConfigMapLike {
  readonly data?: Readonly<Record<string, string>>;
}
interface SecretLike {
  readonly metadata?: { readonly annotations?: Readonly<Record<string, string>> };
  readonly data?: Readonly<Record<string, string>>;
}

/** The anchors' PEM from the ConfigMap; throws saying what is missing. */
export async function clusterAnchorsPem(view: ClusterView): Promise<string> {
  const configMap = await view.get<ConfigMapLike>(TRUST_ANCHORS_PATH);
  if (!configMap) throw new Error(`${ANCHORS_NAME} does not exist`);
  const pem = configMap.data?.[TRUST_ANCHORS_CONFIG_MAP.key];
  if (!pem) throw new Error(`${ANCHORS_NAME} has no key ${TRUST_ANCHORS_CONFIG_MAP.key}`);
  return pem;
}

/** A key of a Secret's data, decoded; throws naming the Secret and key when absent. */
export function secretValue(secret: SecretLike, key: string, name: string): string {
  const value = secret.data?.[key];
  if (!value) throw new Error(`${name} has no key ${key}`);
  return Buffer.from(value, 'base64').toString('utf8');
}

export function clusterCa(view: ClusterView): CaSource {
  return {
    async anchors() {
      return {
        pem: await clusterAnchorsPem(view),
        where: `${ANCHORS_NAME} (${TRUST_ANCHORS_CONFIG_MAP.key})`,
      };
    },
    async issuer() {
      const secret = await view.get<SecretLike>(ISSUER_PATH);
      if (!secret) {
        throw new Error(
          `${ISSUER_NAME} does not exist (with --identity-external-issuer, cert-manager writes it)`,
        );
      }
      const certificateName = secret.metadata?.annotations?.['cert-manager.io/certificate-name'];
      return {
        certificate: {
          pem: secretValue(secret, ISSUER_SECRET.certKey, ISSUER_NAME),
          where: `${ISSUER_NAME} (${ISSUER_SECRET.certKey})`,
        },
        key: async () => ({
          pem: secretValue(secret, ISSUER_SECRET.keyKey, ISSUER_NAME),
          where: `${ISSUER_NAME} (${ISSUER_SECRET.keyKey})`,
        }),
        ...(certificateName ? { renewedBy: `cert-manager (Certificate ${certificateName})` } : {}),
      };
    },
  };
}

const ROTATE = 'docs/kubernetes.md, "Rotate the trust anchor"';
const REPLACE_ISSUER = `\`kubectl -n ${ns} create secret tls ${ISSUER_SECRET.name} --cert=issuer.crt --key=issuer.key --dry-run=client -o yaml | kubectl apply -f -\` (the identity service reloads it without a restart)`;

export function clusterCaChecks(view: ClusterView): CheckCategory[] {
  const source = clusterCa(view);
  return [
    trustAnchorCategory('kubernetes trust anchors', source, {
      read: `restore the anchors you installed with: \`kubectl -n ${ns} create configmap ${TRUST_ANCHORS_CONFIG_MAP.name} --from-file=${TRUST_ANCHORS_CONFIG_MAP.key}=bundle.pem\``,
      algorithm: `rotate to an ECDSA P-256 anchor (${ROTATE})`,
      validity: `create a new anchor and issuer and roll them out (${ROTATE})`,
      lifetime: `plan an anchor rotation now (${ROTATE})`,
    }),
    issuerCategory('kubernetes issuer', source, {
      read: `recreate the Secret from the issuer's files: ${REPLACE_ISSUER}; with cert-manager, \`kubectl -n ${ns} describe certificate\``,
      validity: `make a new issuer under the current anchor (\`mutual ca issuer --ca DIR --out next\`, DIR holding trust-anchor.crt and .key) and replace the Secret: ${REPLACE_ISSUER}`,
      lifetime: `rotate the issuer before it expires: ${REPLACE_ISSUER}`,
      chain: `add the issuer's root to the ${ANCHORS_NAME}, or issue a new issuer under a root that is there`,
    }),
  ];
}
