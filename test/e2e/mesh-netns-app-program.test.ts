// `mutual up --isolation netns` with a list command naming a bare program that root's PATH finds
// first under a directory a pod's app cannot enter (pyenv's /root/.pyenv/shims/python3 ahead of
// /usr/bin/python3): `up` checked the program as root, started the mesh, and the app died at once
// with `bash: /root/.pyenv/shims/python3: Permission denied` (exit 126). It is now refused before
// anything starts, naming the closed directory and the runnable one later on PATH.
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { netnsUnavailableReason } from '../../src/mesh/netns/index.ts';
import { runMutual } from './run-mutual.ts';

const skip = netnsUnavailableReason();
let dir: string;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-mesh-netns-program-'));
  await chmod(dir, 0o755);
});

after(async () => {
  if (dir) {
    await runMutual(['down', '--state-dir', join(dir, 'state')]);
    await rm(dir, { recursive: true, force: true });
  }
});

test('a bare program that PATH finds first in a directory closed to the app is refused before start', {
  skip,
}, async () => {
  const closed = join(dir, 'closed');
  const open = join(dir, 'open');
  for (const [where, mode] of [
    [closed, 0o700],
    [open, 0o755],
  ] as const) {
    await mkdir(where);
    await writeFile(join(where, 'tool'), '#!/bin/sh\nexec sleep 60\n', { mode: 0o755 });
    await chmod(where, mode);
  }
  await writeFile(
    join(dir, 'mesh.yaml'),
    `services:
  - name: tool
    command: [tool]
    env: { PATH: "${closed}:${open}:/usr/bin:/bin" }
    ports: [8080]
`,
  );
  const run = await runMutual([
    ...['up', '-f', join(dir, 'mesh.yaml'), '--isolation', 'netns'],
    ...['--state-dir', join(dir, 'state'), '--timeout', '10s'],
  ]);
  assert.equal(run.code, 1, run.stdout + run.stderr);
  assert.ok(
    run.stderr.includes(
      `services.tool.command: the app runs in its pod as a uid of its own (2300000 and up, not root) and cannot run tool: PATH finds ${closed}/tool first, and ${closed} (mode 0700, owner uid 0, group gid 0) is closed to it; give the program's full path, e.g. command: [${open}/tool, ...]`,
    ),
    run.stderr,
  );
  assert.doesNotMatch(run.stdout + run.stderr, /✓ network/, 'the network was made');
});
