// A sidecar in a test "pod" (network namespace): `mutual proxy init`'s rules, then `mutual proxy
// run` as the proxy uid with static credentials and the transparent listeners, waited on until
// ready. Shared by the tests that intercept for real.
import assert from 'node:assert/strict';
import { chmod, chown } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestPki, type WorkloadFiles } from '../../src/testing/mesh-pki.ts';
import { createPodNetwork, type Pod } from '../../src/testing/netns.ts';
import { repoRoot } from '../e2e/run-mutual.ts';

export const PROXY_UID = 2102;
const mutual = join(repoRoot(), 'bin', 'mutual.js');

/** Polls `url` with curl from inside `pod` until it answers 200. */
export async function waitForInPod(pod: Pod, url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const result = await pod.exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', url], {
      timeoutMs: 2000,
    });
    if (result.stdout === '200') return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`${url} in pod ${pod.name} never became ready`);
}

/** Installs the rules and starts the proxy; resolves with what `proxy init` printed once it is ready. */
export async function startPodSidecar(
  pod: Pod,
  files: WorkloadFiles,
  extra: string[],
  onLog?: (text: string) => void,
): Promise<string> {
  const init = await pod.exec(process.execPath, [mutual, 'proxy', 'init', '--proxy-uid', String(PROXY_UID)]);
  assert.equal(init.code, 0, init.stderr);
  const sidecar = pod.spawn(
    process.execPath,
    [
      ...[
        mutual,
        'proxy',
        'run',
        '--cert',
        files.certFile,
        '--key',
        files.keyFile,
        '--bundle',
        files.bundleFile,
      ],
      ...['--inbound-listen', '0.0.0.0:4143', '--outbound-listen', '127.0.0.1:4140'],
      ...['--admin-listen', '127.0.0.1:4191'],
      ...extra,
    ],
    { uid: PROXY_UID },
  );
  if (onLog) sidecar.stderr!.on('data', (chunk: Buffer) => onLog(chunk.toString()));
  await waitForInPod(pod, 'http://127.0.0.1:4191/ready');
  return init.stdout;
}

/**
 * The usual set-up of an interception test: web's and emoji's SVIDs under `dir` (readable by the
 * proxy uid, which the rules let out uninterrupted), a new pod network with a client and a server
 * pod (and `otherPods`), and `app` (a `node -e` script that prints 'listening') running in the
 * server pod. The sidecars are the test's to start.
 */
export async function createClientServerPods(options: {
  readonly dir: string;
  readonly prefix: string;
  readonly app: string;
  readonly otherPods?: readonly string[];
}) {
  const pki = await createTestPki(join(options.dir, 'pki'));
  const web = await pki.workload('web');
  const emoji = await pki.workload('emoji');
  await chmod(options.dir, 0o755);
  for (const files of [web, emoji]) {
    for (const file of [files.certFile, files.keyFile]) await chown(file, PROXY_UID, PROXY_UID);
  }
  const network = await createPodNetwork({ prefix: options.prefix });
  const client = await network.addPod('client');
  const server = await network.addPod('server');
  const others: Pod[] = [];
  for (const name of options.otherPods ?? []) others.push(await network.addPod(name));
  const app = server.spawn(process.execPath, ['-e', options.app]);
  for await (const chunk of app.stdout!) if (String(chunk).includes('listening')) break;
  return { web, emoji, network, client, server, others };
}
