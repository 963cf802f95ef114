// An unmeshed destination that stops answering, for real: a client pod with `mutual proxy init`'s
// rules and a sidecar (no destination is meshed, so its calls pass through in plain text) and a
// server pod with a plain app and no sidecar. Then the server pod drops every SYN, as a vanished
// host or a firewall does. The app's own connect had succeeded at once (the sidecar accepts it),
// so its connect timeout could not fire, and the sidecar waited out the kernel's SYN retries
// (127 s) before resetting it. Now the sidecar gives up after 10 s, as it does for meshed
// destinations (and Istio's passthrough cluster does): a reset, counted as connect_timeout.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { WorkloadFiles } from '../../src/testing/mesh-pki.ts';
import { canUseNetns, hasCommand, type Pod, type PodNetwork } from '../../src/testing/netns.ts';
import { createClientServerPods, startPodSidecar } from '../proxy/pod-sidecar.ts';

const skip =
  canUseNetns() ??
  (hasCommand('iptables') ? undefined : 'iptables is not installed') ??
  (hasCommand('curl') ? undefined : 'curl is not installed');

const APP = `
require('node:http').createServer((q, s) => s.end('ok')).listen(8080, '0.0.0.0', () => console.log('listening'));
`;

let dir: string;
let network: PodNetwork;
let client: Pod;
let server: Pod;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'netwalk-unmeshed-'));
  let web: WorkloadFiles;
  ({ web, network, client, server } = await createClientServerPods({ dir, prefix: 'netunm', app: APP }));
  await startPodSidecar(client, web, []);
});

after(async () => {
  await network?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** curl from the client pod, with its own limit far above the 10 s expected. */
function call() {
  return client.exec(
    'curl',
    ['-sS', '-m', '40', '-o', '/dev/null', '-w', 'status=%{http_code}', `http://${server.address}:8080/`],
    { timeoutMs: 45_000 },
  );
}

test('an unmeshed destination that drops SYNs: the call is reset after the connect timeout, not held for the SYN retries', {
  skip,
}, async () => {
  const reachable = await call();
  assert.equal(reachable.stdout, 'status=200', reachable.stderr);
  const metricsBefore = (await client.exec('curl', ['-s', 'http://127.0.0.1:4191/metrics'])).stdout;
  assert.match(
    metricsBefore,
    /mutual_outbound_connections_total\{tls="no_identity",[^}]*no_tls_reason="not_meshed",destination="198\.18\.[0-9.]+:8080"\} 1/,
  );

  const rule = ['INPUT', '-p', 'tcp', '--syn', '-j', 'DROP'];
  assert.equal((await server.exec('iptables', ['-I', ...rule])).code, 0);
  let dropped: Awaited<ReturnType<typeof call>>;
  try {
    dropped = await call();
  } finally {
    await server.exec('iptables', ['-D', ...rule]);
  }
  // Reset by the sidecar (56), not curl's own 40 s timeout (28).
  assert.equal(dropped.code, 56, `curl exit ${dropped.code}: ${dropped.stderr}`);
  const metrics = (await client.exec('curl', ['-s', 'http://127.0.0.1:4191/metrics'])).stdout;
  assert.match(
    metrics,
    /mutual_outbound_refused_total\{reason="connect_timeout",destination="198\.18\.[0-9.]+:8080"\} 1/,
  );
  // The destination answers again: the next call passes through.
  const healed = await call();
  assert.equal(healed.stdout, 'status=200', healed.stderr);
});
