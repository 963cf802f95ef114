// Policies kept in a subdirectory of the policy directory (`policies/other/deny-all.yaml`, as
// one might sort them by namespace) are not read: the sidecar does not enforce them. Before,
// nothing said so: `mutual policy check` counted the top-level files only, with no warning, and the
// DENY was silently not applied. Now `policy check` (and so `mutual check` and `mutual up`) warns,
// naming the subdirectory and its files; hidden subdirectories (a ConfigMap's `..data`) are not.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';
import { runMutual } from '../e2e/run-mutual.ts';

let dir: string;
let policies: string;
let app: Server;
let proxy: ProxyProcess;

const DENY_ALL = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-all, namespace: other }
spec: { action: DENY, rules: [{}] }
`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-walkthrough-subdirectory-'));
  policies = join(dir, 'policies');
  await mkdir(join(policies, 'other'), { recursive: true });
  await mkdir(join(policies, '..data'));
  await writeFile(
    join(policies, 'mtls.yaml'),
    `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: other }
spec: { mtls: { mode: PERMISSIVE } }
`,
  );
  await writeFile(join(policies, 'other', 'deny-all.yaml'), DENY_ALL);
  await writeFile(join(policies, '..data', 'deny-all.yaml'), DENY_ALL);
  app = createServer((_request, response) => response.end('ok'));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const pki = await createTestPki(join(dir, 'pki'));
  const workload = await pki.workload('ext', { ns: 'other' });
  proxy = await startProxyProcess([
    ...['--cert', workload.certFile, '--key', workload.keyFile, '--bundle', workload.bundleFile],
    ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`],
    ...['--policy-dir', policies, '--namespace', 'other', '--label', 'app=ext'],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await proxy.untilReady();
});

after(async () => {
  await proxy?.stop();
  app?.close();
  await rm(dir, { recursive: true, force: true });
});

test('a DENY in a subdirectory is not enforced, and policy check says so', async () => {
  // What the sidecar does: the subdirectory's deny-all is not applied.
  const response = await fetch(`http://127.0.0.1:${proxy.inbound[0]!.port}/`);
  assert.equal(response.status, 200);
  await response.arrayBuffer();

  const check = await runMutual(['policy', 'check', policies]);
  const output = check.stdout + check.stderr;
  assert.match(
    output,
    /policies\/other:1:1: warning\[policy-subdirectory-not-read\]: 1 policy file in the subdirectory other\/ \(deny-all\.yaml\) is not read/,
  );
  assert.match(output, /hint: Move the files up into /);
  assert.doesNotMatch(output, /\.\.data/);
  assert.match(output, /1 warning/);
});
