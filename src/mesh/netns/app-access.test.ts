import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { podAppAccessProblem, podRuntimeAccessProblem } from './app-access.ts';
import { hasCommand } from './commands.ts';

// Asked of the kernel as the pods' uids (setpriv): needs root.
const skip =
  process.getuid?.() !== 0
    ? 'needs root (runs test(1) as other uids)'
    : hasCommand('setpriv')
      ? undefined
      : 'setpriv is not installed';

test('what the pods cannot reach: a closed directory on the way is named with its mode', {
  skip,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-app-access-'));
  try {
    await chmod(dir, 0o755);
    const home = join(dir, 'home');
    const inner = join(home, 'mutual');
    await mkdir(inner, { recursive: true, mode: 0o755 });
    await chmod(home, 0o750); // Ubuntu's home directories
    await writeFile(join(inner, 'mutual.js'), '', { mode: 0o644 });

    const runtime = await podRuntimeAccessProblem(join(inner, 'mutual.js'));
    assert.match(
      runtime ?? '',
      new RegExp(
        `uid 2102 in their pods and cannot read mutual itself \\(${inner}/mutual\\.js\\): ${home} \\(mode 0750, owner uid 0, group gid 0\\) is closed to them; let other users in \\(\`chmod o\\+x ${home}\`\\)`,
      ),
    );
    const app = await podAppAccessProblem(inner, './server.sh');
    assert.match(
      app ?? '',
      new RegExp(`cannot enter ${home}, on the way to its working directory ${inner} \\(mode 0750`),
    );

    await chmod(home, 0o751); // others may pass through
    assert.equal(await podRuntimeAccessProblem(join(inner, 'mutual.js')), undefined);
    assert.equal(await podAppAccessProblem(inner, 'node'), undefined);
    await chmod(join(inner, 'mutual.js'), 0o600);
    assert.match(
      (await podRuntimeAccessProblem(join(inner, 'mutual.js'))) ?? '',
      /mutual\.js \(mode 0600, owner uid 0, group gid 0\) is closed to them; let other users in \(`chmod o\+r /,
    );
    await writeFile(join(inner, 'server.sh'), '#!/bin/sh\n', { mode: 0o700 });
    assert.match(
      (await podAppAccessProblem(inner, './server.sh')) ?? '',
      /cannot read and run .*server\.sh \(mode 0700/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the mutual running this is readable from the pods here', { skip }, async () => {
  const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..'); // dist/src/mesh/netns → the repository
  assert.equal(await podRuntimeAccessProblem(join(repo, 'bin', 'mutual.js')), undefined);
});
