// Transparent interception for real: two "pods" (network namespaces on a bridge, dual-stack:
// 198.18.0.0/15 and 2001:2::/64), each with an app, `mutual proxy init`'s iptables and ip6tables
// rules and `mutual proxy run` as uid 2102. The client app calls the server app by address (IPv4,
// then IPv6) with plain HTTP and knows nothing of the mesh; a packet capture on the server pod's
// wire shows TLS records and never the request's plaintext.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { WorkloadFiles } from '../../src/testing/mesh-pki.ts';
import { canUseNetns, hasCommand, type Pod, type PodNetwork } from '../../src/testing/netns.ts';
import { repoRoot } from '../e2e/run-mutual.ts';
import { createClientServerPods, startPodSidecar } from './pod-sidecar.ts';

const MARKER = 'PLAINTEXT-MARKER-7f3a';
const skip =
  canUseNetns() ??
  (hasCommand('iptables-restore') ? undefined : 'iptables-restore is not installed') ??
  (hasCommand('tcpdump') ? undefined : 'tcpdump is not installed') ??
  (hasCommand('curl') ? undefined : 'curl is not installed');

let dir: string;
let network: PodNetwork;
let client: Pod;
let server: Pod;
let outsider: Pod;
const _mutual = join(repoRoot(), 'bin', 'mutual.js');

const APP = `require('node:http').createServer((q, s) => s.end(JSON.stringify({ path: q.url, clientId: q.headers['x-mutual-client-id'] ?? null }))).listen(8080, '127.0.0.1', () => console.log('listening'))`;

async function startSidecar(pod: Pod, files: WorkloadFiles, extra: string[]) {
  const init = await startPodSidecar(pod, files, extra);
  // --ipv6 auto: the pods have ip6tables' nat table, so the IPv6 rules go in too.
  assert.match(init, /installed ip6tables rules \(nat table, IPv6\)/);
}

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-transparent-'));
  let web: WorkloadFiles;
  let emoji: WorkloadFiles;
  let others: Pod[];
  ({ web, emoji, network, client, server, others } = await createClientServerPods({
    dir,
    prefix: 'mtp',
    app: APP,
    otherPods: ['outsider'],
  }));
  outsider = others[0]!;
  await startSidecar(server, emoji, ['--mode', 'STRICT']);
  await startSidecar(client, web, [
    '--destination',
    `${server.address}:8080=${emoji.spiffeId}`,
    '--destination',
    `[${server.address6}]:8080=${emoji.spiffeId}`,
    '--outbound-strict',
  ]);
});

after(async () => {
  await network?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Captures TCP on the pod's link to the bridge (not loopback, where the proxy hands plain bytes to the app). */
async function captureWire(pod: Pod, name: string, filter: string) {
  const pcap = join(dir, `${name}.pcap`);
  // The pod's link to the bridge (not loopback, where the proxy hands plain bytes to the app).
  const links = await pod.exec('ip', ['-o', 'link', 'show']);
  const wireInterface = /^\d+: ([^:@]+)/gm.exec(
    links.stdout
      .split('\n')
      .filter((line) => !/: lo:/.test(line))
      .join('\n'),
  )?.[1];
  assert.ok(wireInterface, links.stdout);
  const capture = pod.spawn('tcpdump', [
    '-Z',
    'root',
    '--immediate-mode',
    '-i',
    wireInterface,
    '-U',
    '-n',
    '-w',
    pcap,
    filter,
  ]);
  let captureLog = '';
  const capturing = new Promise<void>((resolve) =>
    capture.stderr!.on('data', (chunk) => {
      captureLog += chunk;
      if (captureLog.includes('listening')) resolve();
    }),
  );
  await capturing;
  return {
    /** Stops the capture (letting the last packets land) and returns the pcap file's bytes. */
    async stop(): Promise<Buffer> {
      await new Promise((resolve) => setTimeout(resolve, 300));
      capture.kill('SIGINT');
      await new Promise((resolve) => capture.once('exit', resolve));
      const wire = await readFile(pcap);
      assert.ok(wire.length > 200, `nothing was captured (${wire.length} bytes): ${captureLog}`);
      return wire;
    },
  };
}

test('the client app calls the server by address in plain HTTP; the wire carries only TLS', {
  skip,
}, async () => {
  const capture = await captureWire(server, 'wire', 'tcp');
  const result = await client.exec('curl', ['-sS', '-m', '5', `http://${server.address}:8080/${MARKER}`]);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), {
    path: `/${MARKER}`,
    clientId: 'spiffe://cluster.local/ns/demo/sa/web',
  });
  const wire = await capture.stop();
  assert.equal(wire.includes(Buffer.from(MARKER)), false, 'the request travelled in plain text');
  assert.ok(wire.includes(Buffer.from([0x17, 0x03, 0x03])), 'no TLS application-data record on the wire');
});

test('IPv6: the client app calls the server by its IPv6 address; both proxies take it, the wire carries only TLS', {
  skip,
}, async () => {
  // Only IPv6 packets are captured, so the TLS records found below crossed the wire over IPv6.
  const capture = await captureWire(server, 'wire6', 'ip6 and tcp');
  const url = `http://[${server.address6}]:8080/${MARKER}`;
  const result = await client.exec('curl', ['-sS', '-g', '-m', '5', url]);
  assert.equal(result.code, 0, result.stderr);
  // The server's proxy verified the client proxy's certificate: the call went through both.
  assert.deepEqual(JSON.parse(result.stdout), {
    path: `/${MARKER}`,
    clientId: 'spiffe://cluster.local/ns/demo/sa/web',
  });
  const wire = await capture.stop();
  assert.equal(wire.includes(Buffer.from(MARKER)), false, 'the request travelled in plain text');
  assert.ok(
    wire.includes(Buffer.from([0x17, 0x03, 0x03])),
    'no TLS application-data record on the IPv6 wire',
  );
});

test('plaintext from an unmeshed pod to a STRICT workload is refused, over IPv4 and IPv6', {
  skip,
}, async () => {
  for (const host of [server.address, `[${server.address6}]`]) {
    const result = await outsider.exec('curl', ['-sS', '-g', '-m', '5', `http://${host}:8080/${MARKER}`]);
    assert.notEqual(result.code, 0, host);
    assert.doesNotMatch(result.stdout, new RegExp(MARKER));
  }
});

test('with outbound STRICT, an unmeshed destination is refused instead of sent in plain text', {
  skip,
}, async () => {
  for (const host of [outsider.address, `[${outsider.address6}]`]) {
    const result = await client.exec('curl', ['-sS', '-g', '-m', '5', `http://${host}:9999/`]);
    assert.notEqual(result.code, 0, host);
  }
  const metrics = await client.exec('curl', ['-s', 'http://127.0.0.1:4191/metrics']);
  assert.match(metrics.stdout, /mutual_outbound_refused_total\{reason="unmeshed_refused"/);
  for (const destination of [`${outsider.address}:9999`, `[${outsider.address6}]:9999`]) {
    const line = `mutual_outbound_refused_total{reason="unmeshed_refused",destination="${destination}"} 1`;
    assert.ok(metrics.stdout.split('\n').includes(line), `no ${line} in\n${metrics.stdout}`);
  }
});
