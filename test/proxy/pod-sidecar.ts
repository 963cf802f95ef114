// A sidecar in a test "pod" (network namespace): `mutual proxy init`'s rules, then `mutual proxy
// run` as the proxy uid with static credentials and the transparent listeners, waited on until
// ready. Shared by the tests that intercept for real.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { WorkloadFiles } from '../../src/testing/mesh-pki.ts';
import type { Pod } from '../../src/testing/netns.ts';
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
