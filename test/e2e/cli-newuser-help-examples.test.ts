// What a new user copies first: the Examples of each command's --help (as step, linkerd and
// istioctl print them). Every offline example is run here literally, in help order, by sh from an
// empty directory with `mutual` on PATH; the ones that need a mesh, a cluster or run as daemons are
// only checked to be listed. Required options say "(required)" in the help.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { COMMAND_EXAMPLES } from '../../src/cli/examples.ts';
import { VERSION } from '../../src/version.ts';
import { repoRoot, runMutual } from './run-mutual.ts';

const exec = promisify(execFile);
let dir: string;
let binDir: string;

/** Examples that need a running mesh, a cluster, root or that serve until stopped. */
const NOT_RUN =
  /kubectl|^mutual (up|down|logs|edges|check|dashboard|identity serve|identity show|identity web|proxy run|destination serve)\b/;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-help-examples-'));
  binDir = join(dir, 'bin');
  await mkdir(binDir);
  await writeFile(
    join(binDir, 'mutual'),
    `#!/bin/sh\nexec '${process.execPath}' '${join(repoRoot(), 'bin', 'mutual.js')}' "$@"\n`,
  );
  await chmod(join(binDir, 'mutual'), 0o755);
  await mkdir(join(dir, 'work', 'examples', 'demo'), { recursive: true });
  await cp(
    join(repoRoot(), 'examples', 'demo', 'policies'),
    join(dir, 'work', 'examples', 'demo', 'policies'),
    {
      recursive: true,
    },
  );
  await writeFile(
    join(dir, 'work', 'deploy.yaml'),
    'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: nginx}]\n',
  );
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("every command's --help lists its examples, and required options say so", async () => {
  const entries = Object.entries(COMMAND_EXAMPLES);
  const helps = await Promise.all(entries.map(([path]) => runMutual([...path.split(' '), '--help'])));
  for (const [index, [path, examples]] of entries.entries()) {
    const help = helps[index]!;
    assert.equal(help.code, 0, `${path}: ${help.stderr}`);
    assert.ok(
      help.stdout.includes(`\nExamples:\n${examples.map((line) => `  ${line}`).join('\n')}\n`),
      `${path} --help:\n${help.stdout}`,
    );
  }
  const create = await runMutual(['ca', 'create', '--help']);
  assert.match(
    create.stdout,
    /--trust-domain <name> +SPIFFE trust domain, e\.g\. cluster\.local\n +\(required\)\n/,
  );
  assert.match(create.stdout, /--out <dir> .*\n.* \(required\)\n/);
  assert.doesNotMatch(create.stdout, /--anchor-lifetime.*\(required\)/);
});

test('the offline examples run as printed, one after the other, from an empty directory', async () => {
  const env = { ...process.env, PATH: `${binDir}:${process.env.PATH}`, NO_COLOR: '1' };
  let ran = 0;
  for (const [path, examples] of Object.entries(COMMAND_EXAMPLES)) {
    for (const line of examples) {
      if (line.startsWith('#') || NOT_RUN.test(line)) continue;
      assert.match(line, new RegExp(`^mutual ${path}( |$)`), `an example of ${path} runs ${path}`);
      try {
        await exec('sh', ['-c', line], { cwd: join(dir, 'work'), env, timeout: 30_000 });
      } catch (error) {
        const { stdout, stderr } = error as { stdout: string; stderr: string };
        assert.fail(`\`${line}\` (example of ${path}) failed:\n${stdout}${stderr}`);
      }
      ran++;
    }
  }
  assert.ok(ran >= 20, `ran ${ran} examples`);
});

test('mutual version answers as linkerd version, istioctl version and step version do', async () => {
  const text = await runMutual(['version']);
  assert.equal(text.code, 0, text.stderr);
  assert.equal(
    text.stdout,
    `mutual ${VERSION} (Node.js ${process.versions.node}, OpenSSL ${process.versions.openssl})\n`,
  );
  const json = await runMutual(['version', '-o', 'json']);
  assert.deepEqual(JSON.parse(json.stdout), {
    mutual: VERSION,
    node: process.versions.node,
    openssl: process.versions.openssl,
  });
});
