// `mutual up --isolation netns` kept each pod's network apart but ran every pod's app as the same uid
// 2103 in the host's PID namespace: the app of one pod could signal (kill) the app of another, read
// its /proc/PID/environ (its secrets) and ptrace it, i.e. run code in the other pod's network as the
// other service's identity. In Kubernetes another pod's processes are out of reach. Each pod's app
// now runs as a uid and gid of its own: an app asking the kernel about another pod's app gets EPERM
// / EACCES, while its own pod still works (HOME and log its own, calls by name through both sidecars).
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { MeshRuntime } from '../../src/mesh/index.ts';
import { netnsUnavailableReason } from '../../src/mesh/netns/index.ts';
import { hasCommand } from '../../src/testing/netns.ts';
import { runMutual, startMeshUp } from './run-mutual.ts';

const skip = netnsUnavailableReason() ?? (hasCommand('curl') ? undefined : 'curl is not installed');

// /peek?pid=N: what this app may do to process N (signal 0, read its environment); /call: the other
// service by name, through the sidecars.
const APP = `const fs = require('node:fs');
const attempt = (f) => { try { f(); return 'allowed'; } catch (e) { return e.code; } };
require('node:http').createServer(async (q, s) => {
  const url = new URL(q.url, 'http://x');
  if (url.pathname === '/peek') {
    const pid = Number(url.searchParams.get('pid'));
    s.end(JSON.stringify({ uid: process.getuid(), gid: process.getgid(), home: process.env.HOME,
      signal: attempt(() => process.kill(pid, 0)),
      environ: attempt(() => fs.readFileSync('/proc/' + pid + '/environ')) }));
  } else if (url.pathname === '/call') {
    const r = await fetch('http://' + process.env.OTHER + ':8080/whoami');
    s.end(await r.text());
  } else s.end(String(q.headers['x-mutual-client-id']));
}).listen(8080, '127.0.0.1')`;

let dir: string;
const started: ChildProcess[] = [];
const sh = (command: string, args: string[]) => execFileSync(command, args, { encoding: 'utf8' });

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-mesh-netns-uids-'));
  await chmod(dir, 0o755); // each app runs as a uid of its own with this as its working directory
});

after(async () => {
  for (const child of started) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }
  if (dir) {
    await runMutual(['down', '--state-dir', join(dir, 'state')]);
    await rm(dir, { recursive: true, force: true });
  }
});

test("a pod's app cannot signal or read another pod's app: each runs as a uid of its own", {
  skip,
}, async () => {
  const meshFile = join(dir, 'mesh.yaml');
  const service = (name: string, other: string) => `  - name: ${name}
    namespace: uids
    command: [node, -e, ${JSON.stringify(APP)}]
    env: { OTHER: ${other} }
    ports: [8080]
    upstreams: [${other}]
`;
  await writeFile(
    meshFile,
    `mode: STRICT\nservices:\n${service('alpha', 'beta')}${service('beta', 'alpha')}`,
  );
  const stateDir = join(dir, 'state');
  const mesh = await startMeshUp(
    ['-f', meshFile, '--isolation', 'netns', '--state-dir', stateDir, '--timeout', '30s'],
    'The mesh is up',
  );
  started.push(mesh.child);
  assert.match(mesh.output(), /The mesh is up: 2 services/, mesh.output());
  const runtime = JSON.parse(await readFile(join(stateDir, 'runtime.json'), 'utf8')) as MeshRuntime;
  const alpha = runtime.services.find((s) => s.name === 'alpha')!;
  const beta = runtime.services.find((s) => s.name === 'beta')!;
  const curl = (netns: string, path: string) =>
    sh('ip', ['netns', 'exec', netns, 'curl', '-sS', '-m', '10', `http://127.0.0.1:8080${path}`]);

  const fromAlpha = JSON.parse(curl(alpha.pod!.netns, `/peek?pid=${beta.app.pid}`));
  const fromBeta = JSON.parse(curl(beta.pod!.netns, `/peek?pid=${alpha.app.pid}`));
  assert.deepEqual(
    { signal: fromAlpha.signal, environ: fromAlpha.environ },
    { signal: 'EPERM', environ: 'EACCES' },
    "alpha's app reached beta's",
  );
  assert.deepEqual(
    { signal: fromBeta.signal, environ: fromBeta.environ },
    { signal: 'EPERM', environ: 'EACCES' },
  );
  assert.notEqual(fromAlpha.uid, fromBeta.uid);
  for (const app of [fromAlpha, fromBeta]) {
    assert.ok(![0, 2102].includes(app.uid), `an app runs as uid ${app.uid}`);
    assert.equal(app.gid, app.uid);
  }
  // Each still owns its HOME and its log, and may inspect itself.
  const own = JSON.parse(curl(alpha.pod!.netns, `/peek?pid=${alpha.app.pid}`));
  assert.deepEqual([own.signal, own.environ], ['allowed', 'allowed']);
  assert.equal((await stat(fromAlpha.home)).uid, fromAlpha.uid);
  assert.equal((await stat(alpha.app.log)).uid, fromAlpha.uid);
  // Calls between the pods still go through both sidecars, as the caller's identity.
  assert.equal(curl(alpha.pod!.netns, '/call'), 'spiffe://cluster.local/ns/uids/sa/alpha');

  await mesh.stop();
  assert.doesNotMatch(sh('ip', ['netns', 'list']), new RegExp(`^${runtime.network!.id}-`, 'm'));
});
