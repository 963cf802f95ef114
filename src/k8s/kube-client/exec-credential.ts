// A kubeconfig user's `exec` credential plugin (client.authentication.k8s.io, as kubectl runs it):
// what EKS (`aws eks get-token`), GKE (`gke-gcloud-auth-plugin`) and AKS (`kubelogin`) write into
// every kubeconfig they hand out. The plugin prints an ExecCredential: a bearer token, kept until
// its expirationTimestamp and then fetched again, or a client certificate.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { MutualError } from '../../errors.ts';
import type { KubeConnection } from './kube-client.ts';

/** The `exec` block of a kubeconfig user. */
export interface ExecPluginConfig {
  readonly apiVersion?: string;
  readonly command?: string;
  readonly args?: readonly string[] | null;
  readonly env?: readonly { readonly name: string; readonly value: string }[] | null;
  readonly installHint?: string;
  readonly provideClusterInfo?: boolean;
  readonly interactiveMode?: string;
}

const API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'];
/** A plugin that asks for a browser login or MFA can take a while; one that hangs must not hang us. */
const PLUGIN_TIMEOUT_MS = 60_000;
/** A token is fetched again this long before it expires, so no request carries one about to lapse. */
const REFRESH_BEFORE_EXPIRY_MS = 60_000;
/** Without an expiry, the token is fetched again after this long (kubectl keeps it until a 401). */
const REFRESH_WITHOUT_EXPIRY_MS = 10 * 60_000;

type ExecCredentials = Pick<KubeConnection, 'bearerToken' | 'clientCertPem' | 'clientKeyPem'>;

/**
 * Runs the plugin once now (so a missing or failing plugin is reported before anything else) and
 * returns the credentials it gave: a token source that runs it again near expiry, or a client
 * certificate (used as given for the life of the process).
 */
export async function execCredentialSource(
  exec: ExecPluginConfig,
  options: {
    /** Names the plugin in messages: `FILE: user "u"'s exec plugin`. */
    readonly where: string;
    readonly kubeconfigDir: string;
    /** What provideClusterInfo passes on (the server, its CA). */
    readonly cluster: Record<string, unknown>;
    readonly env?: NodeJS.ProcessEnv;
    readonly now?: () => number;
  },
): Promise<ExecCredentials> {
  const { where } = options;
  const now = options.now ?? Date.now;
  const apiVersion = exec.apiVersion ?? '';
  if (!API_VERSIONS.includes(apiVersion)) {
    throw configInvalid(
      `${where} has apiVersion ${JSON.stringify(apiVersion)}; Mutual runs ${API_VERSIONS.join(' and ')} plugins (v1alpha1 was removed in Kubernetes 1.24): update the plugin and the kubeconfig`,
    );
  }
  if (typeof exec.command !== 'string' || exec.command === '') throw configInvalid(`${where} has no command`);
  if (exec.interactiveMode === 'Always') {
    throw configInvalid(
      `${where} has interactiveMode Always: it needs a terminal, and Mutual runs it without one; log in with the plugin first (e.g. by running kubectl once), or set interactiveMode IfAvailable`,
    );
  }
  const command = await findCommand(exec.command, options.kubeconfigDir, options.env ?? process.env);
  if (!command) {
    throw pluginFailed(
      `${where}, ${JSON.stringify(exec.command)}, is not installed (not found${exec.command.includes('/') ? '' : ' in PATH'})${exec.installHint ? `: ${exec.installHint.trim()}` : ''}`,
    );
  }
  const run = () =>
    runPlugin(command, exec, {
      where,
      apiVersion,
      env: options.env ?? process.env,
      cluster: exec.provideClusterInfo === true ? options.cluster : undefined,
    });
  const first = await run();
  if (first.token === undefined) {
    return { clientCertPem: first.clientCertificateData, clientKeyPem: first.clientKeyData };
  }
  let current: { token: string; refreshAtMs: number } = withRefresh(first.token, first.expiresAtMs, now());
  let pending: Promise<string> | undefined;
  return {
    bearerToken: async () => {
      if (now() < current.refreshAtMs) return current.token;
      // Requests at the same moment share one run of the plugin.
      pending ??= run()
        .then((credential) => {
          if (credential.token === undefined)
            throw pluginFailed(`${where} gave a client certificate this time, where it gave a token before`);
          current = withRefresh(credential.token, credential.expiresAtMs, now());
          return current.token;
        })
        .finally(() => {
          pending = undefined;
        });
      return pending;
    },
  };
}

function withRefresh(token: string, expiresAtMs: number | undefined, nowMs: number) {
  return {
    token,
    refreshAtMs:
      expiresAtMs === undefined
        ? nowMs + REFRESH_WITHOUT_EXPIRY_MS
        : Math.max(nowMs, expiresAtMs - REFRESH_BEFORE_EXPIRY_MS),
  };
}

interface PluginCredential {
  token?: string;
  clientCertificateData?: string;
  clientKeyData?: string;
  expiresAtMs?: number;
}

async function runPlugin(
  command: string,
  exec: ExecPluginConfig,
  context: {
    where: string;
    apiVersion: string;
    env: NodeJS.ProcessEnv;
    cluster: Record<string, unknown> | undefined;
  },
): Promise<PluginCredential> {
  const { where } = context;
  const execInfo = {
    apiVersion: context.apiVersion,
    kind: 'ExecCredential',
    spec: { interactive: false, ...(context.cluster ? { cluster: context.cluster } : {}) },
  };
  const env: NodeJS.ProcessEnv = { ...context.env, KUBERNETES_EXEC_INFO: JSON.stringify(execInfo) };
  for (const entry of exec.env ?? []) env[entry.name] = entry.value;
  const stdout = await new Promise<string>((resolvePromise, reject) => {
    execFile(
      command,
      [...(exec.args ?? [])],
      { env, timeout: PLUGIN_TIMEOUT_MS, maxBuffer: 1024 * 1024, encoding: 'utf8' },
      (error, out, err) => {
        if (!error) return resolvePromise(out);
        const said = oneLine(err) || oneLine(out);
        const how = error.killed
          ? `did not finish within ${PLUGIN_TIMEOUT_MS / 1000} s`
          : `failed (${typeof error.code === 'number' ? `exit code ${error.code}` : (error.code ?? error.message)})`;
        reject(pluginFailed(`${where} (${command}) ${how}${said ? `: ${said}` : ''}`, error));
      },
    );
  });
  let credential: {
    apiVersion?: unknown;
    kind?: unknown;
    status?: {
      token?: unknown;
      clientCertificateData?: unknown;
      clientKeyData?: unknown;
      expirationTimestamp?: unknown;
    };
  };
  try {
    credential = JSON.parse(stdout);
  } catch {
    throw pluginFailed(
      `${where} (${command}) printed no ExecCredential JSON: ${JSON.stringify(stdout.slice(0, 200))}`,
    );
  }
  if (credential?.kind !== 'ExecCredential' || credential.apiVersion !== context.apiVersion) {
    throw pluginFailed(
      `${where} (${command}) printed kind ${JSON.stringify(credential?.kind)}, apiVersion ${JSON.stringify(credential?.apiVersion)}; expected an ExecCredential of ${context.apiVersion}, as the kubeconfig asks`,
    );
  }
  const status = credential.status ?? {};
  const result: PluginCredential = {};
  if (typeof status.expirationTimestamp === 'string') {
    const expiresAtMs = Date.parse(status.expirationTimestamp);
    if (Number.isNaN(expiresAtMs))
      throw pluginFailed(
        `${where} (${command}) gave an expirationTimestamp that is not a time: ${JSON.stringify(status.expirationTimestamp)}`,
      );
    result.expiresAtMs = expiresAtMs;
  }
  if (typeof status.token === 'string' && status.token !== '') return { ...result, token: status.token };
  if (typeof status.clientCertificateData === 'string' && typeof status.clientKeyData === 'string') {
    return {
      ...result,
      clientCertificateData: status.clientCertificateData,
      clientKeyData: status.clientKeyData,
    };
  }
  throw pluginFailed(
    `${where} (${command}) gave neither a token nor a client certificate and key in its ExecCredential's status`,
  );
}

/** kubectl's lookup: a command with a slash is a path (relative to the kubeconfig's directory), else PATH. */
async function findCommand(command: string, kubeconfigDir: string, env: NodeJS.ProcessEnv) {
  const candidates = command.includes('/')
    ? [isAbsolute(command) ? command : resolve(kubeconfigDir, command)]
    : (env.PATH ?? '')
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** A plugin's complaint on one line: gke-gcloud-auth-plugin's spans 12, its advice in the middle. */
function oneLine(text: string): string {
  const line = text
    .split('\n')
    .map((part) => part.trim())
    .filter(Boolean)
    .join(' ');
  return line.length > 600 ? `${line.slice(0, 600)}…` : line;
}

function configInvalid(message: string): MutualError {
  return new MutualError('MUTUAL_K8S_CONFIG_INVALID', message);
}

function pluginFailed(message: string, cause?: unknown): MutualError {
  return new MutualError('MUTUAL_K8S_EXEC_PLUGIN_FAILED', message, cause === undefined ? {} : { cause });
}
