// An injected sidecar in an IPv6-only pod: network namespaces whose link has only an address in
// 2001:2::/64 (127.0.0.1 stays on lo, as in any pod), the init container's `proxy init` and the
// proxy container's listeners exactly as the injector writes them (admin on 0.0.0.0:4191). The
// kubelet probes the pod IP, here IPv6: /ready, /live and the app's rewritten readiness probe must
// answer over it, and a meshed client reaches the app through both sidecars over IPv6 while a
// plaintext caller is refused (STRICT). Root only.
import assert from 'node:assert/strict';
import { chmod, chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DEFAULT_INJECT_OPTIONS, injectPod } from '../../src/k8s/inject/index.ts';
import { createTestPki, type WorkloadFiles } from '../../src/testing/mesh-pki.ts';
import {
  canUseNetns,
  createPodNetwork,
  hasCommand,
  type Pod,
  type PodNetwork,
} from '../../src/testing/netns.ts';
import { repoRoot } from '../e2e/run-mutual.ts';
import { PROXY_UID, startPodSidecar, waitForInPod } from './pod-sidecar.ts';

const skip =
  canUseNetns() ??
  (hasCommand('iptables-restore') ? undefined : 'iptables-restore is not installed') ??
  (hasCommand('ip6tables-restore') ? undefined : 'ip6tables-restore is not installed') ??
  (hasCommand('curl') ? undefined : 'curl is not installed');

const mutual = join(repoRoot(), 'bin', 'mutual.js');
// The app listens as most do, on the wildcard (`::`, dual-stack), and answers who called it.
const APP = `require('node:http').createServer((q, s) => s.end(JSON.stringify({ path: q.url, clientId: q.headers['x-mutual-client-id'] ?? null }))).listen(8080, () => console.log('listening'))`;

let dir: string;
let network: PodNetwork;
let kubelet: Pod;
let client: Pod;
let server: Pod;
let web: WorkloadFiles;
let emoji: WorkloadFiles;

/** The injector's output for a pod with one app container and an HTTP readiness probe. */
function injectedPod(trustAnchorsPem: string) {
  const outcome = injectPod(
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'emoji', namespace: 'demo', labels: { app: 'emoji' } },
      spec: {
        containers: [
          {
            name: 'app',
            image: 'emoji',
            ports: [{ containerPort: 8080 }],
            readinessProbe: { httpGet: { path: '/healthz', port: 8080 } },
          },
        ],
      },
    },
    { ...DEFAULT_INJECT_OPTIONS, trustAnchorsPem },
  );
  assert.equal(outcome.kind, 'injected');
  const spec = (outcome as { pod: { spec: any } }).pod.spec;
  const init = spec.initContainers.find((container: any) => container.name === 'mutual-init');
  const proxy = spec.initContainers.find((container: any) => container.name === 'mutual-proxy');
  const app = spec.containers.find((container: any) => container.name === 'app');
  const proxyArgs: string[] = proxy.args;
  // The listeners as injected; the certificate comes from files here, not the identity service.
  const listenArgs = ['--inbound-listen', '--outbound-listen', '--admin-listen'].flatMap((flag) => {
    const at = proxyArgs.indexOf(flag);
    assert.ok(at > 0, `the injected proxy has ${flag}`);
    return [flag, proxyArgs[at + 1]!];
  });
  const env: Record<string, string> = {};
  for (const entry of proxy.env) {
    if (entry.name === 'MUTUAL_PROXY_APP_PROBES' || entry.name === 'MUTUAL_PROXY_LABEL')
      env[entry.name] = entry.value;
  }
  return {
    initArgs: init.args as string[],
    listenArgs,
    env,
    adminPort: Number(proxyArgs[proxyArgs.indexOf('--admin-listen') + 1]!.split(':').pop()),
    appReadinessPath: app.readinessProbe.httpGet.path as string,
  };
}

/** Leaves the pod's link with its IPv6 address only. */
async function makeIpv6Only(pod: Pod) {
  const flushed = await pod.exec('ip', ['-4', 'addr', 'flush', 'dev', 'eth0']);
  assert.equal(flushed.code, 0, flushed.stderr);
  const left = await pod.exec('ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  assert.equal(left.stdout.trim(), '', 'no IPv4 address left on eth0');
}

let injected: ReturnType<typeof injectedPod>;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'left-ipv6-only-'));
  const pki = await createTestPki(join(dir, 'pki'));
  web = await pki.workload('web');
  emoji = await pki.workload('emoji');
  await chmod(dir, 0o755);
  for (const files of [web, emoji]) {
    for (const file of [files.certFile, files.keyFile]) await chown(file, PROXY_UID, PROXY_UID);
  }
  injected = injectedPod(await readFile(pki.bundleFile, 'utf8'));
  network = await createPodNetwork({ prefix: 'left' });
  kubelet = await network.addPod('kubelet');
  client = await network.addPod('client');
  server = await network.addPod('server');
  for (const pod of [kubelet, client, server]) await makeIpv6Only(pod);

  const app = server.spawn(process.execPath, ['-e', APP]);
  for await (const chunk of app.stdout!) if (String(chunk).includes('listening')) break;
  // The init container, then the native sidecar, as the kubelet starts them.
  const init = await server.exec(process.execPath, [mutual, ...injected.initArgs]);
  assert.equal(init.code, 0, init.stderr);
  assert.match(init.stdout, /installed ip6tables rules \(nat table, IPv6\)/);
  server.spawn(
    process.execPath,
    [
      mutual,
      ...['proxy', 'run', '--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
      ...injected.listenArgs,
      ...['--mode', 'STRICT'],
    ],
    { uid: PROXY_UID, env: { ...process.env, ...injected.env } },
  );
  // Up and ready inside the pod first, so a failure below is about reaching it over IPv6.
  await waitForInPod(server, `http://127.0.0.1:${injected.adminPort}/ready`);
  await startPodSidecar(client, web, [
    ...['--destination', `[${server.address6}]:8080=${emoji.spiffeId}`],
    '--outbound-strict',
  ]);
});

after(async () => {
  await network?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function curlStatus(pod: Pod, url: string) {
  const result = await pod.exec('curl', ['-sS', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', url]);
  return { status: result.stdout, error: result.stderr.trim() };
}

test("the kubelet's probes reach the injected sidecar's admin port at the pod's IPv6 address", {
  skip,
}, async () => {
  const admin = `http://[${server.address6}]:${injected.adminPort}`;
  for (const path of ['/ready', '/live', injected.appReadinessPath]) {
    assert.deepEqual(await curlStatus(kubelet, `${admin}${path}`), { status: '200', error: '' }, path);
  }
});

test('a meshed client reaches the app over IPv6 through both sidecars; plaintext is refused', {
  skip,
}, async () => {
  const called = await client.exec('curl', ['-sS', '-m', '5', `http://[${server.address6}]:8080/hello`]);
  assert.equal(called.code, 0, called.stderr);
  assert.deepEqual(JSON.parse(called.stdout), { path: '/hello', clientId: web.spiffeId });
  const plaintext = await curlStatus(kubelet, `http://[${server.address6}]:8080/hello`);
  assert.notEqual(plaintext.status, '200', 'STRICT refuses a plaintext caller');
});
