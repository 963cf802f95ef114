// Silent connections (TCP open, no byte ever sent) to the admin port of a sidecar, the identity
// service and the destination service: each is closed by the daemon, and /ready is answered
// meanwhile. Node's headersTimeout starts only with a request's first byte, so without an idle
// timeout of their own these were held forever, one file descriptor each, by anyone who reaches
// the port (0.0.0.0 in Kubernetes).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';
import { createCa, type MutualDaemon, startIdentityService, startMutualDaemon } from '../e2e/run-mutual.ts';

const SILENT = 200;

/** Opens `count` connections to `port` and resolves with how many the server closed within 25 s. */
async function silentConnections(
  port: number,
  count: number,
  whileHeld: () => Promise<void>,
): Promise<number> {
  const sockets: Socket[] = [];
  const closed = Array.from(
    { length: count },
    () =>
      new Promise<void>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        sockets.push(socket);
        // Read what the server sends before closing (a 408 once the headers deadline passes), or
        // its FIN would wait unread behind it and 'close' never come.
        socket.resume();
        socket.on('error', () => {}).once('close', () => resolve());
      }),
  );
  let closedByServer = 0;
  for (const done of closed) void done.then(() => closedByServer++);
  try {
    await whileHeld();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(closed),
      new Promise((resolve) => (timer = setTimeout(resolve, 25_000))),
    ]);
    clearTimeout(timer);
    return closedByServer;
  } finally {
    for (const socket of sockets) socket.destroy();
  }
}

test('silent connections to every admin port are closed, and /ready answers meanwhile', {
  timeout: 60_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-admin-silent-'));
  let proxy: ProxyProcess | undefined;
  let identity: MutualDaemon | undefined;
  let destination: MutualDaemon | undefined;
  try {
    const pki = await createTestPki(join(dir, 'pki'));
    const [emoji, own] = await Promise.all([
      pki.workload('emoji'),
      pki.workload('destination', { ns: 'mutual' }),
    ]);
    await writeFile(join(dir, 'table.yaml'), '{}\n');
    await createCa(join(dir, 'ca'));
    [proxy, identity, destination] = await Promise.all([
      startProxyProcess([
        ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
        ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:9`, '--admin-listen', '127.0.0.1:0'],
      ]),
      startIdentityService(join(dir, 'ca'), join(dir, 'state')),
      startMutualDaemon(
        [
          ...['destination', 'serve', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
          ...['--file', join(dir, 'table.yaml')],
          ...['--cert', own.certFile, '--key', own.keyFile, '--bundle', own.bundleFile],
        ],
        'destination service',
      ),
    ]);
    const admins = {
      sidecar: new URL(proxy.adminUrl),
      identity: identity.adminUrl,
      destination: destination.adminUrl,
    };
    const results = await Promise.all(
      Object.entries(admins).map(async ([name, url]) => {
        let readyMeanwhile = 0;
        const closed = await silentConnections(Number(url.port), SILENT, async () => {
          // Give the daemon time to accept them all, then ask as kubelet would.
          await new Promise((resolve) => setTimeout(resolve, 500));
          readyMeanwhile = (await fetch(new URL('/ready', url))).status;
        });
        return { name, closed, readyMeanwhile };
      }),
    );
    assert.deepEqual(
      results,
      Object.keys(admins).map((name) => ({ name, closed: SILENT, readyMeanwhile: 200 })),
    );
    for (const daemon of [proxy.child, identity.child, destination.child])
      assert.equal(daemon.exitCode, null);
  } finally {
    await Promise.all([proxy?.stop(), identity?.stop(), destination?.stop()]);
    await rm(dir, { recursive: true, force: true });
  }
});
