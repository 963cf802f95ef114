// The injected mutual-proxy container got NODE_OPTIONS="--max-semi-space-size=2
// --initial-old-space-size=64" (the sidecar's Node flags; the image's entrypoint is
// `node bin/mutual.js`). Node refuses to start when NODE_OPTIONS holds a flag it does not allow
// there: "node: --initial-old-space-size= is not allowed in NODE_OPTIONS", exit 9. Every injected
// proxy would crash-loop and, as a native sidecar with a startup probe, keep its pod's app from
// ever starting. The environment is now only what Node takes there. Checked the way the kubelet
// runs the container: the image's entrypoint (this Node, bin/mutual.js) with the injected args' command
// and the injected environment.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import test from 'node:test';
import { parseDocument } from 'yaml';
import { repoRoot } from '../e2e/run-mutual.ts';
import { injectText } from './inject-harness.ts';

test("the injected proxy's environment lets Node start: mutual proxy run answers --help with it", async () => {
  const run = await injectText(
    'pod.yaml',
    'apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: web, image: nginx}]\n',
  );
  assert.equal(run.code, 0, run.stderr);
  const pod = parseDocument(run.stdout).toJS() as {
    spec: { initContainers: { name: string; args: string[]; env: { name: string; value?: string }[] }[] };
  };
  const proxy = pod.spec.initContainers.find((container) => container.name === 'mutual-proxy')!;
  const environment = Object.fromEntries(
    proxy.env.filter((entry) => entry.value !== undefined).map((entry) => [entry.name, entry.value!]),
  );
  assert.ok(environment.NODE_OPTIONS, 'the sidecar still gets its Node flags');
  // What the container runs: ENTRYPOINT ["node", "bin/mutual.js"] + args (proxy run …), here with
  // --help in place of the rest, which needs the cluster.
  const started = spawnSync(
    process.execPath,
    [join(repoRoot(), 'bin', 'mutual.js'), ...proxy.args.slice(0, 2), '--help'],
    { env: { PATH: process.env.PATH, ...environment }, encoding: 'utf8' },
  );
  assert.equal(started.status, 0, `node refused to start: ${started.stderr}`);
  assert.match(started.stdout, /Usage: mutual proxy run/);
  // Each flag given is one this Node takes in NODE_OPTIONS.
  for (const flag of environment.NODE_OPTIONS.split(' ')) {
    assert.ok(process.allowedNodeEnvironmentFlags.has(flag.split('=')[0]!), flag);
  }
});
