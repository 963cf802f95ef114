// A destination app that stops reading (SIGSTOP) while its caller keeps sending: the connection
// between the sidecars sits at a zero TCP window. It must be held, not taken for a vanished peer
// (TCP_USER_TIMEOUT, tried for that, cut such an upload at its timeout), and the sidecars must
// not buffer what the app does not read. Once the app runs again the upload completes.
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
  (hasCommand('ss') ? undefined : 'ss is not installed') ??
  (hasCommand('curl') ? undefined : 'curl is not installed');

const UPLOAD_BYTES = 200_000_000;
// Counts what it reads and answers with the count.
const APP = `require('node:http').createServer((q, s) => { let n = 0; q.on('data', (c) => { n += c.length; }); q.on('end', () => s.end('got ' + n)); }).listen(8080, '127.0.0.1', () => console.log('listening'))`;

let dir: string;
let network: PodNetwork;
let client: Pod;
let server: Pod;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'netwalk-stalled-'));
  let web: WorkloadFiles;
  let emoji: WorkloadFiles;
  ({ web, emoji, network, client, server } = await createClientServerPods({
    dir,
    prefix: 'netwalks',
    app: APP,
  }));
  await startPodSidecar(server, emoji, ['--mode', 'STRICT']);
  await startPodSidecar(client, web, [
    '--outbound-strict',
    '--destination',
    `${server.address}:8080=${emoji.spiffeId}`,
  ]);
});

after(async () => {
  await network?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The pid listening on `port` in `pod`. */
async function listenerPid(pod: Pod, port: number): Promise<number> {
  const result = await pod.exec('ss', ['-tlnpH', `sport = :${port}`]);
  const pid = /pid=(\d+)/.exec(result.stdout)?.[1];
  assert.ok(pid, `nothing listens on ${port} in ${pod.name}: ${result.stdout}${result.stderr}`);
  return Number(pid);
}

async function rssKb(pid: number): Promise<number> {
  const status = (await client.exec('cat', [`/proc/${pid}/status`])).stdout;
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
}

test('an app that stops reading holds its caller’s upload, sidecar memory flat, and the upload completes once it reads again', {
  skip,
}, async () => {
  const appPid = await listenerPid(server, 8080);
  const sidecars = [await listenerPid(client, 4191), await listenerPid(server, 4191)];
  const before = await Promise.all(sidecars.map(rssKb));
  assert.equal((await server.exec('kill', ['-STOP', String(appPid)])).code, 0);
  let resumed = false;
  try {
    const upload = client.exec(
      'sh',
      [
        '-c',
        `head -c ${UPLOAD_BYTES} /dev/zero | curl -sS -m 90 -X POST -T - -H 'content-type: application/octet-stream' http://${server.address}:8080/ -w ' status=%{http_code}'`,
      ],
      { timeoutMs: 100_000 },
    );
    // Past the retransmission watch (~25 s) and a TCP_USER_TIMEOUT of 30 s.
    await new Promise((resolve) => setTimeout(resolve, 35_000));
    const during = await Promise.all(sidecars.map(rssKb));
    for (const [i, kb] of during.entries()) {
      // Generous: the windows in flight are a few MB; unbounded buffering would be the 200 MB.
      assert.ok(kb - before[i]! < 64 * 1024, `sidecar ${i} grew from ${before[i]} to ${kb} kB`);
    }
    await server.exec('kill', ['-CONT', String(appPid)]);
    resumed = true;
    const result = await upload;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `got ${UPLOAD_BYTES} status=200`);
  } finally {
    if (!resumed) await server.exec('kill', ['-CONT', String(appPid)]);
  }
});
