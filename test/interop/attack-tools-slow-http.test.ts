// slowhttptest (the slowloris tool) against the plain-HTTP admin port that every Mutual daemon
// has (sidecar, identity and destination services, webhook: src/admin), which listens on 0.0.0.0
// in Kubernetes. Its connections trickle a header line every second and never finish the head;
// the port must close them at its 5 s headers deadline and answer /live meanwhile. Measured by
// hand: slowhttptest -H with 1,000 connections and a line every 10 s held them 30-35 s (Node
// checks its headers deadline only every 30 s by default); docs/security.md has the rest.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';

const slowhttptestMissing =
  spawnSync('slowhttptest', ['-h'], { stdio: 'ignore' }).error === undefined
    ? undefined
    : 'slowhttptest is not installed';

/** `slowhttptest args` for at most `seconds`: its last status text, and its CSV (seconds, closed, pending, connected, available). */
async function slowhttptest(args: string[], seconds: number, outPrefix: string) {
  const child = spawn('slowhttptest', [...args, '-l', String(seconds), '-g', '-o', outPrefix], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  await new Promise((resolve) => child.once('close', resolve));
  const rows = (await readFile(`${outPrefix}.csv`, 'utf8'))
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => line.split(',').map(Number));
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the tool colours its output with ANSI escapes
  return { text: text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, ''), rows };
}

describe('slowhttptest against an admin port', { skip: slowhttptestMissing }, () => {
  let dir: string;
  let app: Server;
  let sidecar: ProxyProcess;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-attack-tools-slow-'));
    const pki = await createTestPki(join(dir, 'pki'));
    const emoji = await pki.workload('emoji');
    app = createServer((_request, response) => response.end('ok'));
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    sidecar = await startProxyProcess([
      ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
      ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`, '--admin-listen', '127.0.0.1:0'],
    ]);
    await sidecar.untilReady();
  });

  after(async () => {
    await sidecar?.stop();
    app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('slowloris connections (-H) are closed at the 5 s headers deadline while /live answers', async () => {
    const connections = 40;
    const attack = slowhttptest(
      [
        ...['-H', '-c', String(connections), '-r', String(connections), '-i', '1', '-p', '2'],
        ...['-u', `${sidecar.adminUrl}/live`],
      ],
      25,
      join(dir, 'slowloris'),
    );
    const statuses: number[] = [];
    const probing = (async () => {
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        statuses.push((await fetch(`${sidecar.adminUrl}/live`)).status);
      }
    })();
    const [{ text, rows }] = await Promise.all([attack, probing]);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200]);
    assert.ok(
      rows.some(([, , , connected]) => connected === connections),
      `the attack never held its ${connections} connections:\n${text}`,
    );
    // Before: the tool ran into its 25 s limit with every connection still open.
    assert.match(text, /Exit status: No open connections left/, text);
  });
});
