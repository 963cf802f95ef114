// How to reach the API server: in-cluster (the pod's environment and ServiceAccount files) or a
// kubeconfig file (its current context: server, CA, token, client certificate, or an exec
// credential plugin such as aws eks get-token or gke-gcloud-auth-plugin).
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse } from 'yaml';
import { MutualError } from '../../errors.ts';
import { IN_CLUSTER_FILES } from '../../identity/index.ts';
import { readTextFile } from '../../store/index.ts';
import { type ExecPluginConfig, execCredentialSource } from './exec-credential.ts';
import type { KubeConnection } from './kube-client.ts';

/** In-cluster: KUBERNETES_SERVICE_HOST/PORT from the pod environment, the token re-read per request. */
export async function inClusterConnection(
  env: Readonly<Record<string, string | undefined>>,
  files: { token: string; ca: string } = IN_CLUSTER_FILES,
): Promise<KubeConnection> {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new MutualError(
      'MUTUAL_K8S_CONFIG_INVALID',
      '--kubernetes in-cluster needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, which only exist inside a pod; outside a cluster give --kubeconfig FILE',
    );
  }
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    caPem: await readTextFile(files.ca, 'the in-cluster CA'),
    bearerToken: () => readFile(files.token, 'utf8'),
  };
}

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: { name: string; context?: { cluster?: string; user?: string } }[];
  clusters?: {
    name: string;
    cluster?: {
      server?: string;
      'certificate-authority'?: string;
      'certificate-authority-data'?: string;
      'insecure-skip-tls-verify'?: boolean;
    };
  }[];
  users?: {
    name: string;
    user?: {
      token?: string;
      tokenFile?: string;
      'client-certificate'?: string;
      'client-certificate-data'?: string;
      'client-key'?: string;
      'client-key-data'?: string;
      exec?: ExecPluginConfig;
      'auth-provider'?: unknown;
    };
  }[];
}

/** The current context of a kubeconfig file (`context` picks another); relative paths are relative to the file. */
export async function kubeconfigConnection(file: string, context?: string): Promise<KubeConnection> {
  const text = await readTextFile(file, 'the kubeconfig');
  let config: KubeconfigFile;
  try {
    config = (parse(text) ?? {}) as KubeconfigFile;
  } catch (error) {
    throw invalid(`${file} is not valid YAML: ${(error as Error).message.split('\n')[0]}`, error);
  }
  const contextName = context ?? config['current-context'];
  if (!contextName) throw invalid(`${file} has no current-context: set one with kubectl config use-context`);
  const found = config.contexts?.find((entry) => entry.name === contextName)?.context;
  if (!found) throw invalid(`${file} has no context named ${JSON.stringify(contextName)}`);
  const cluster = config.clusters?.find((entry) => entry.name === found.cluster)?.cluster;
  if (!cluster?.server) {
    throw invalid(
      `${file}: context ${contextName} names cluster ${JSON.stringify(found.cluster)}, which has no server`,
    );
  }
  if (!cluster.server.startsWith('https://')) {
    throw invalid(
      `${file}: the API server ${cluster.server} is not https://; Mutual talks to the API server over TLS only`,
    );
  }
  const user = config.users?.find((entry) => entry.name === found.user)?.user ?? {};
  if (user['auth-provider']) {
    throw invalid(
      `${file}: user ${JSON.stringify(found.user)} authenticates with an auth-provider plugin, which Kubernetes removed in 1.26 and Mutual does not run; use its exec plugin (e.g. gke-gcloud-auth-plugin, kubelogin), a ServiceAccount token or a client certificate`,
    );
  }
  const base = dirname(resolve(file));
  const path = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const dataOrFile = async (data: string | undefined, name: string | undefined, what: string) =>
    data ? Buffer.from(data, 'base64').toString('utf8') : name ? readTextFile(path(name), what) : undefined;
  const caPem = await dataOrFile(
    cluster['certificate-authority-data'],
    cluster['certificate-authority'],
    'the cluster CA',
  );
  if (user.exec) {
    const credentials = await execCredentialSource(user.exec, {
      where: `${file}: user ${JSON.stringify(found.user)}'s exec plugin`,
      kubeconfigDir: base,
      cluster: {
        server: cluster.server,
        ...(caPem ? { 'certificate-authority-data': Buffer.from(caPem).toString('base64') } : {}),
        ...(cluster['insecure-skip-tls-verify'] === true ? { 'insecure-skip-tls-verify': true } : {}),
      },
    });
    return {
      server: cluster.server,
      ...(caPem ? { caPem } : {}),
      ...credentials,
      ...(cluster['insecure-skip-tls-verify'] === true ? { unsafeSkipTlsVerify: true } : {}),
    };
  }
  const clientCertPem = await dataOrFile(
    user['client-certificate-data'],
    user['client-certificate'],
    'the client certificate',
  );
  const clientKeyPem = await dataOrFile(user['client-key-data'], user['client-key'], 'the client key');
  if (Boolean(clientCertPem) !== Boolean(clientKeyPem)) {
    throw invalid(
      `${file}: user ${JSON.stringify(found.user)} has a client certificate without its key, or a key without its certificate`,
    );
  }
  const token = user.token;
  const tokenFile = user.tokenFile ? path(user.tokenFile) : undefined;
  return {
    server: cluster.server,
    ...(caPem ? { caPem } : {}),
    ...(clientCertPem ? { clientCertPem, clientKeyPem } : {}),
    ...(token
      ? { bearerToken: async () => token }
      : tokenFile
        ? { bearerToken: () => readFile(tokenFile, 'utf8') }
        : {}),
    ...(cluster['insecure-skip-tls-verify'] === true ? { unsafeSkipTlsVerify: true } : {}),
  };
}

function invalid(message: string, cause?: unknown): MutualError {
  return new MutualError('MUTUAL_K8S_CONFIG_INVALID', message, cause === undefined ? {} : { cause });
}
