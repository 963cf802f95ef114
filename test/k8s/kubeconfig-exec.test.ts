// A kubeconfig whose user gets its credentials from an exec plugin, as every kubeconfig from EKS
// (aws eks get-token), GKE (gke-gcloud-auth-plugin) and AKS (kubelogin) does. Before, Mutual
// refused them all ("exec plugins are not run"), so `mutual check` could not look at a managed
// cluster. Real plugin processes (shell scripts speaking client.authentication.k8s.io) against a
// local HTTPS API server (fake-cluster.ts).
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isMutualError } from '../../src/errors.ts';
import { execCredentialSource } from '../../src/k8s/kube-client/exec-credential.ts';
import { hasCommand } from '../../src/testing/netns.ts';
import { runMutualInProcess } from '../e2e/run-mutual.ts';
import { type FakeCluster, startFakeCluster } from './fake-cluster.ts';

let cluster: FakeCluster;
let dir: string;
let token: string;
let clusterBlock: string;

before(async () => {
  cluster = await startFakeCluster();
  dir = await mkdtemp(join(tmpdir(), 'kubeconfig-exec-'));
  const plain = await readFile(await cluster.kubeconfig(), 'utf8');
  token = /token: (\S+) \}/.exec(plain)![1]!;
  clusterBlock = plain.slice(plain.indexOf('clusters:'), plain.indexOf('users:'));
});

after(async () => {
  await cluster?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Writes an executable shell script; each run appends a line to `<name>.runs` and its environment to `<name>.env`. */
async function plugin(name: string, body: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, `#!/bin/sh\necho run >> "${file}.runs"\nenv > "${file}.env"\n${body}\n`);
  await chmod(file, 0o755);
  return file;
}

const credential = (status: string, apiVersion = 'client.authentication.k8s.io/v1') =>
  `printf '%s' '{"apiVersion":"${apiVersion}","kind":"ExecCredential","status":${status}}'`;

async function kubeconfigWithExec(name: string, exec: string): Promise<string> {
  const file = join(dir, `${name}.kubeconfig`);
  await writeFile(
    file,
    `apiVersion: v1\nkind: Config\ncurrent-context: fake\ncontexts:\n  - name: fake\n    context: { cluster: fake, user: sso }\n${clusterBlock}users:\n  - name: sso\n    user:\n      exec:\n${exec
      .split('\n')
      .map((line) => `        ${line}`)
      .join('\n')}\n`,
  );
  return file;
}

/** `mutual check --kubeconfig FILE -o json`: the "can reach the Kubernetes API server" check. */
async function apiCheck(kubeconfig: string) {
  const run = await runMutualInProcess(['check', '--kubeconfig', kubeconfig, '-o', 'json'], { cwd: dir });
  const checks = (
    JSON.parse(run.stdout) as {
      checks: { description: string; status: string; results: { message: string }[] }[];
    }
  ).checks;
  const api = checks.find((entry) => entry.description === 'can reach the Kubernetes API server');
  assert.ok(api, run.stdout);
  return api;
}

test('an exec plugin that prints a token: check reaches the API server with it, running the plugin once', async () => {
  const command = await plugin('get-token', credential(`{"token":"${token}"}`));
  const kubeconfig = await kubeconfigWithExec(
    'token',
    `apiVersion: client.authentication.k8s.io/v1\ncommand: ./get-token\nargs: [eks, get-token]\nenv: [{name: AWS_PROFILE, value: dev}]\ninteractiveMode: IfAvailable\nprovideClusterInfo: true`,
  );
  const api = await apiCheck(kubeconfig);
  assert.equal(api.status, 'ok', JSON.stringify(api.results));
  // The check makes many API requests; the token is kept, not fetched for each.
  assert.equal((await readFile(`${command}.runs`, 'utf8')).trim().split('\n').length, 1);
  const env = await readFile(`${command}.env`, 'utf8');
  assert.match(env, /^AWS_PROFILE=dev$/m);
  const info = JSON.parse(/^KUBERNETES_EXEC_INFO=(.*)$/m.exec(env)![1]!);
  assert.equal(info.kind, 'ExecCredential');
  assert.equal(info.spec.interactive, false);
  assert.equal(info.spec.cluster.server, cluster.url);
});

test('a plugin that is not installed, fails, or prints something else: the check says what and what to do', async () => {
  const missing = await kubeconfigWithExec(
    'missing',
    'apiVersion: client.authentication.k8s.io/v1beta1\ncommand: gke-gcloud-auth-plugin-not-here\ninstallHint: Install gke-gcloud-auth-plugin for use with kubectl by following https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl',
  );
  const notInstalled = await apiCheck(missing);
  assert.equal(notInstalled.status, 'fail');
  assert.match(
    notInstalled.results[0]!.message,
    /exec plugin, "gke-gcloud-auth-plugin-not-here", is not installed \(not found in PATH\): Install gke-gcloud-auth-plugin for use with kubectl/,
  );

  await plugin('expired-sso', 'echo "Error loading SSO Token: Token for dev does not exist" >&2; exit 255');
  const failing = await apiCheck(
    await kubeconfigWithExec(
      'failing',
      'apiVersion: client.authentication.k8s.io/v1beta1\ncommand: ./expired-sso',
    ),
  );
  assert.equal(failing.status, 'fail');
  assert.match(
    failing.results[0]!.message,
    /failed \(exit code 255\): Error loading SSO Token: Token for dev does not exist/,
  );

  await plugin('old-version', credential(`{"token":"${token}"}`, 'client.authentication.k8s.io/v1alpha1'));
  const mismatched = await apiCheck(
    await kubeconfigWithExec(
      'mismatched',
      'apiVersion: client.authentication.k8s.io/v1\ncommand: ./old-version',
    ),
  );
  assert.match(
    mismatched.results[0]!.message,
    /expected an ExecCredential of client\.authentication\.k8s\.io\/v1/,
  );

  const interactive = await apiCheck(
    await kubeconfigWithExec(
      'interactive',
      'apiVersion: client.authentication.k8s.io/v1\ncommand: ./old-version\ninteractiveMode: Always',
    ),
  );
  assert.match(interactive.results[0]!.message, /interactiveMode Always: it needs a terminal/);
});

test('a token with an expiry is fetched again a minute before it lapses; one run serves requests made together', async () => {
  // Each run prints the next token: token-1, token-2, ...
  const command = await plugin(
    'rotating',
    `n=$(wc -l < "${join(dir, 'rotating')}.runs")\n${credential('{"token":"token-\'$n\'","expirationTimestamp":"2030-01-01T00:05:00Z"}')}`,
  );
  let nowMs = Date.parse('2030-01-01T00:00:00Z');
  const source = await execCredentialSource(
    { apiVersion: 'client.authentication.k8s.io/v1', command },
    { where: 'test', kubeconfigDir: dir, cluster: {}, now: () => nowMs },
  );
  assert.equal(await source.bearerToken!(), 'token-1');
  nowMs += 3 * 60_000; // 2 minutes before expiry
  assert.equal(await source.bearerToken!(), 'token-1');
  nowMs += 90_000; // 30 s before expiry
  const together = await Promise.all([source.bearerToken!(), source.bearerToken!(), source.bearerToken!()]);
  assert.deepEqual(together, ['token-2', 'token-2', 'token-2']);
  assert.equal((await readFile(`${command}.runs`, 'utf8')).trim().split('\n').length, 2);

  await plugin('bad-json', 'echo "not json"');
  await assert.rejects(
    execCredentialSource(
      { apiVersion: 'client.authentication.k8s.io/v1', command: './bad-json' },
      { where: 'test', kubeconfigDir: dir, cluster: {} },
    ),
    (error) =>
      isMutualError(error) &&
      error.code === 'MUTUAL_K8S_EXEC_PLUGIN_FAILED' &&
      /printed no ExecCredential JSON/.test(error.message),
  );
});

test('the real gke-gcloud-auth-plugin, not logged in: its advice reaches the check', {
  skip: hasCommand('gke-gcloud-auth-plugin') ? undefined : 'gke-gcloud-auth-plugin is not installed',
}, async () => {
  const api = await apiCheck(
    await kubeconfigWithExec(
      'gke',
      'apiVersion: client.authentication.k8s.io/v1beta1\ncommand: gke-gcloud-auth-plugin\nprovideClusterInfo: true\ninteractiveMode: IfAvailable',
    ),
  );
  assert.equal(api.status, 'fail');
  assert.match(
    api.results[0]!.message,
    /failed \(exit code 1\): .*You do not currently have an active account selected\. Please run: \$ gcloud auth login/,
  );
});

test('a kubeconfig that does not exist, or a directory given for it: said in words, not ENOENT or EISDIR', async () => {
  const missing = await apiCheck(join(dir, 'no-such.kubeconfig'));
  assert.match(
    missing.results[0]!.message,
    /cannot read the kubeconfig .*no-such\.kubeconfig: it does not exist/,
  );
  const directory = await apiCheck(dir);
  assert.match(directory.results[0]!.message, /it is a directory, not a file: give the path of a file in it/);
});
