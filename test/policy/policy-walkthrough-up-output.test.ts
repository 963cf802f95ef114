// `mutual up` runs in the user's terminal while they edit the policy files. An edit the sidecars
// refused (a misspelt field) used to show nowhere there: the request still got the old answer,
// and only the sidecar logs and `mutual check` said why. Now up prints the refusal with the
// error's file:line and what to run, and prints again once the fixed files are loaded.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { waitUntil } from '../../src/testing/mesh-pki.ts';
import { type MeshUp, startMeshUp } from '../e2e/run-mutual.ts';

let dir: string;
let mesh: MeshUp;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-walkthrough-up-output-'));
  await mkdir(join(dir, 'policies'));
  await writeFile(
    join(dir, 'app.mjs'),
    "import http from 'node:http';\nhttp.createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');\n",
  );
  await writeFile(
    join(dir, 'mesh.yaml'),
    `policyDir: policies
services:
  - name: api
    namespace: shop
    command: [${JSON.stringify(process.execPath)}, app.mjs]
    ports: [8080]
`,
  );
  mesh = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', join(dir, 'state')]);
  assert.match(mesh.output(), /The mesh is up/, mesh.output());
});

after(async () => {
  await mesh?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('up prints a policy edit the sidecars refuse, and the fix once loaded', async () => {
  await writeFile(
    join(dir, 'policies', 'deny.yaml'),
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-other, namespace: shop }
spec:
  action: DENY
  rules:
    - from: [{ source: { namespace: ["other"] } }]
`,
  );
  await waitUntil(async () => mesh.output().includes('refused'), 'up to print the refusal').catch((error) => {
    throw new Error(`${error.message}: ${mesh.output()}`);
  });
  const refusal = mesh.output().slice(mesh.output().indexOf('! policy files'));
  assert.match(
    refusal,
    /^! policy files in \S*policies refused: the sidecars keep the last good set in force/,
  );
  assert.match(refusal, /mutual policy check \S*policies/);
  assert.match(refusal, /deny\.yaml:7:\d+: .*unknown field "namespace" \(did you mean "namespaces"\?/);

  await writeFile(
    join(dir, 'policies', 'deny.yaml'),
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-other, namespace: shop }
spec:
  action: DENY
  rules:
    - from: [{ source: { namespaces: ["other"] } }]
`,
  );
  await waitUntil(
    async () => /policies +loaded from \S*policies/.test(mesh.output()),
    'up to print the load',
  );
});
