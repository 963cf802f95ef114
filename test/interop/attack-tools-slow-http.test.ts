// slowhttptest (the slowloris tool) against the plain-HTTP admin port that every Mutual daemon
// has (sidecar, identity and destination services, webhook: src/admin), which listens on 0.0.0.0
// in Kubernetes, and against the dashboard (`mutual dashboard`, --allow-remote for other
// machines). Its connections trickle a header line every second and never finish the head; each
// port must close them at its headers deadline (admin 5 s, dashboard 10 s) and answer meanwhile.
// Measured by hand: slowhttptest -H with 1,000 connections and a line every 10 s held the admin
// ports 30-35 s and the dashboard over 45 s (node:http checks its headers deadline only every
// 30 s by default, and the dashboard kept node's 60 s); docs/security.md has the rest.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';
import { repoRoot } from '../e2e/run-mutual.ts';

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

describe('slowhttptest against the admin ports and the dashboard', { skip: slowhttptestMissing }, () => {
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

  /** 40 slowloris connections (a header line a second) at `url` for at most 25 s, with a GET of `url` every second meanwhile. */
  async function slowloris(url: string, name: string) {
    const connections = 40;
    const attack = slowhttptest(
      [...['-H', '-c', String(connections), '-r', String(connections), '-i', '1', '-p', '2'], ...['-u', url]],
      25,
      join(dir, name),
    );
    const statuses: number[] = [];
    const probing = (async () => {
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        statuses.push((await fetch(url)).status);
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
  }

  test('slowloris connections (-H) to an admin port are closed at its 5 s headers deadline while /live answers', async () => {
    await slowloris(`${sidecar.adminUrl}/live`, 'admin');
  });

  test('slowloris connections (-H) to the dashboard are closed at its 10 s headers deadline while it answers', async () => {
    const stateDir = join(dir, 'empty-state');
    await mkdir(stateDir);
    const child: ChildProcess = spawn(
      process.execPath,
      [join(repoRoot(), 'bin', 'mutual.js'), 'dashboard', '--state-dir', stateDir, '--listen', '127.0.0.1:0'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      let output = '';
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          const match = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(output);
          if (match) resolve(match[1]!);
        });
        child.once('exit', () => reject(new Error(`the dashboard did not start: ${output}`)));
      });
      await slowloris(url, 'dashboard');
    } finally {
      child.kill('SIGTERM');
    }
  });
});
