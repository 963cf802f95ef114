// A write that fails part way (disk full, a file size limit) leaves no file behind and never looks
// like a success: before, `mutual ca create` left five of its six files and the sixth cut short
// (the next run refused to overwrite them), and `mutual install > manifests.yaml` on a full disk
// exited 0 with the manifests cut short.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot, runMutual } from './run-mutual.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-write-failure-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `mutual ARGS` under bash's `ulimit -f 1`: no file it writes may pass 1024 bytes (EFBIG past that). */
async function runWithFileSizeLimit(
  args: readonly string[],
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(
    'bash',
    [
      '-c',
      'ulimit -f 1 && exec "$@"',
      'bash',
      process.execPath,
      join(repoRoot(), 'bin', 'mutual.js'),
      ...args,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code] = await once(child, 'close');
  return { code: code as number | null, stderr };
}

test('ca create whose last file cannot be written leaves no file, and the same command then succeeds', async () => {
  const out = join(dir, 'ca');
  // An ECDSA P-384 CA's bundle.jwks.json is past 1024 bytes; every other file is under.
  const args = [
    'ca',
    'create',
    '--trust-domain',
    'cluster.local',
    '--key-algorithm',
    'ecdsa-p384',
    '--out',
    out,
  ];
  const failed = await runWithFileSizeLimit(args);
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(
    failed.stderr,
    /^error\[MUTUAL_IO_WRITE_FAILED\]: cannot write \S+\/bundle\.jwks\.json: EFBIG/,
  );
  assert.deepEqual(
    await readdir(out),
    [],
    'a failed ca create must leave nothing, not a CA without its bundle',
  );
  const again = await runMutual(args);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual((await readdir(out)).sort(), [
    'bundle.jwks.json',
    'bundle.pem',
    'issuer.crt',
    'issuer.key',
    'trust-anchor.crt',
    'trust-anchor.key',
  ]);
});

test('install, inject and cert inspect whose output file the disk refuses (/dev/full) exit 1 saying the output is incomplete', async () => {
  const full = openSync('/dev/full', 'w');
  try {
    for (const args of [
      ['install'],
      [
        'inject',
        join(repoRoot(), 'test', 'k8s', 'golden', 'inject-deployment.in.yaml'),
        '--trust-anchors-file',
        join(repoRoot(), 'test', 'k8s', 'golden', 'inject-trust-anchors.pem'),
      ],
      [
        'cert',
        'inspect',
        join(repoRoot(), 'test', 'k8s', 'golden', 'inject-trust-anchors.pem'),
        '-o',
        'json',
      ],
    ]) {
      const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'mutual.js'), ...args], {
        stdio: ['ignore', full, 'pipe'],
        timeout: 30_000,
      });
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const [code] = await once(child, 'close');
      assert.equal(code, 1, `${args[0]}: ${stderr}`);
      assert.match(
        stderr,
        /error\[MUTUAL_IO_WRITE_FAILED\]: the output could not all be written to standard output \(ENOSPC: no space left on device, write\), so what was written is incomplete: free space or write it elsewhere/,
        args[0],
      );
    }
  } finally {
    closeSync(full);
  }
});
