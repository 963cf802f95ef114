// A daemon whose log cannot be written (a full disk: its stdout and stderr on /dev/full, where
// every write fails with ENOSPC) keeps serving: the lines are lost, not the service. It used to
// die on its first line ('listening on …'), as `mutual up` reported with 'log … is empty'.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { allocateLoopbackPorts } from '../../src/mesh/processes.ts';
import { createCa, repoRoot } from './run-mutual.ts';

test('the identity service with its log on a full disk starts, answers /ready and stops on SIGTERM', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-log-full-'));
  const full = openSync('/dev/full', 'w');
  try {
    await createCa(join(dir, 'ca'));
    const [api, admin] = await allocateLoopbackPorts(2);
    const child = spawn(
      process.execPath,
      [
        join(repoRoot(), 'bin', 'mutual.js'),
        ...['identity', 'serve', '--ca', join(dir, 'ca'), '--state-dir', join(dir, 'state')],
        ...['--listen', `127.0.0.1:${api}`, '--admin-listen', `127.0.0.1:${admin}`],
      ],
      { stdio: ['ignore', full, full] },
    );
    const exited = once(child, 'exit');
    try {
      const deadline = Date.now() + 10_000;
      let status = 0;
      while (status !== 200 && child.exitCode === null && Date.now() < deadline) {
        status = await fetch(`http://127.0.0.1:${admin}/ready`).then(
          (response) => response.status,
          () => 0,
        );
        if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(child.exitCode, null, 'the identity service exited: its log could not be written');
      assert.equal(status, 200);
    } finally {
      if (child.exitCode === null) child.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 0);
    }
  } finally {
    closeSync(full);
    await rm(dir, { recursive: true, force: true });
  }
});
