// Transparent outbound learning identities from the destination service, for real: three "pods"
// (network namespaces, 198.18.0.0/15). `control` runs `mutual destination serve` from a table
// file; `server` runs an app behind a STRICT sidecar; `client`'s sidecar has no --destination at
// all, only --destination-url and --outbound-strict. The client app calls the server by address in
// plain HTTP and arrives over mTLS as web; once the service is gone, a new destination is unknown
// and refused (not waited on), while the one already answered keeps working from the cache.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, metricValue, type WorkloadFiles } from '../../src/testing/mesh-pki.ts';
import {
  canUseNetns,
  createPodNetwork,
  hasCommand,
  type Pod,
  type PodNetwork,
} from '../../src/testing/netns.ts';
import { repoRoot } from '../e2e/run-mutual.ts';
import { PROXY_UID, startPodSidecar, waitForInPod } from '../proxy/pod-sidecar.ts';

const skip =
  canUseNetns() ??
  (hasCommand('iptables-restore') ? undefined : 'iptables-restore is not installed') ??
  (hasCommand('curl') ? undefined : 'curl is not installed');

let dir: string;
let network: PodNetwork;
let client: Pod;
let server: Pod;
let control: Pod;
let destination: ChildProcess;
let web: WorkloadFiles;
const mutual = join(repoRoot(), 'bin', 'mutual.js');
const APP = `require('node:http').createServer((q, s) => s.end(JSON.stringify({ clientId: q.headers['x-mutual-client-id'] ?? null }))).listen(8080, '127.0.0.1', () => console.log('listening'))`;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-proxy-destination-'));
  const pki = await createTestPki(join(dir, 'pki'));
  web = await pki.workload('web');
  const emoji = await pki.workload('emoji');
  const own = await pki.workload('destination', { ns: 'mutual-system', sa: 'destination' });
  await chmod(dir, 0o755);
  for (const files of [web, emoji]) {
    for (const file of [files.certFile, files.keyFile]) await chown(file, PROXY_UID, PROXY_UID);
  }
  network = await createPodNetwork({ prefix: 'mdst' });
  client = await network.addPod('client');
  server = await network.addPod('server');
  control = await network.addPod('control');

  const table = join(dir, 'destinations.yaml');
  await writeFile(
    table,
    `destinations:\n  - address: ${server.address}\n    serverId: ${emoji.spiffeId}\n    ports: [8080, 8081]\n`,
  );
  destination = control.spawn(process.execPath, [
    ...[mutual, 'destination', 'serve', '--listen', '0.0.0.0:8086', '--admin-listen', '127.0.0.1:9996'],
    ...['--file', table, '--cert', own.certFile, '--key', own.keyFile, '--bundle', own.bundleFile],
  ]);
  await waitForInPod(control, 'http://127.0.0.1:9996/ready');

  const app = server.spawn(process.execPath, ['-e', APP]);
  for await (const chunk of app.stdout!) if (String(chunk).includes('listening')) break;
  await startPodSidecar(server, emoji, ['--mode', 'STRICT']);
  await startPodSidecar(client, web, [
    '--destination-url',
    `https://${control.address}:8086`,
    '--destination-timeout',
    '500ms',
    '--outbound-strict',
  ]);
});

after(async () => {
  await network?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('the client sidecar learns the server identity from the destination service', { skip }, async () => {
  const result = await client.exec('curl', ['-sS', '-m', '5', `http://${server.address}:8080/`]);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), { clientId: web.spiffeId });
  const metrics = await client.exec('curl', ['-s', 'http://127.0.0.1:4191/metrics']);
  assert.ok(
    metricValue(metrics.stdout, 'mutual_outbound_destination_lookups_total', { result: 'answered' }) >= 1,
  );
  assert.ok(
    metricValue(metrics.stdout, 'mutual_outbound_connections_total', {
      tls: 'true',
      server_id: 'spiffe://cluster.local/ns/demo/sa/emoji',
    }) >= 1,
    metrics.stdout,
  );
});

test('with the service gone: a new destination is refused, not waited on; a cached one still works', {
  skip,
}, async () => {
  const warm = await client.exec('curl', ['-sS', '-m', '5', `http://${server.address}:8080/`]);
  assert.equal(warm.code, 0, warm.stderr);
  destination.kill('SIGTERM');
  await new Promise((resolve) => destination.once('exit', resolve));

  // Port 8081 was never asked about: the lookup fails within its bound, the destination is
  // unknown and outbound STRICT refuses it (a reset, not curl's own timeout, exit 28).
  const unknown = await client.exec('curl', ['-sS', '-m', '8', `http://${server.address}:8081/`]);
  assert.notEqual(unknown.code, 0);
  assert.notEqual(unknown.code, 28, `curl timed out instead of being refused: ${unknown.stderr}`);
  const metrics = await client.exec('curl', ['-s', 'http://127.0.0.1:4191/metrics']);
  assert.ok(
    metricValue(metrics.stdout, 'mutual_outbound_destination_lookups_total', { result: 'unavailable' }) >= 1,
  );
  assert.match(metrics.stdout, /mutual_outbound_refused_total\{reason="unmeshed_refused"/);

  const cached = await client.exec('curl', ['-sS', '-m', '5', `http://${server.address}:8080/`]);
  assert.equal(cached.code, 0, cached.stderr);
  assert.deepEqual(JSON.parse(cached.stdout), { clientId: web.spiffeId });
});
