// Following the README, a policy file of the demo was given a misspelt field while `npm run demo`
// ran: up printed the refusal. Undoing the edit (git checkout) put back the set in force, which the
// policy store takes for no change (no onChange), so up never said the files were good again and
// its terminal ended on the refusal while `mutual check` passed. Now up says so.
import assert from 'node:assert/strict';
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { waitUntil } from '../../src/testing/mesh-pki.ts';
import { type MeshUp, startMeshUp } from './run-mutual.ts';

let dir: string;
let mesh: MeshUp;

const POLICY = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: shop }
spec:
  mtls: { mode: STRICT }
`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-readme-policy-revert-'));
  await mkdir(join(dir, 'policies'));
  await writeFile(join(dir, 'policies', 'strict.yaml'), POLICY);
  await writeFile(
    join(dir, 'mesh.yaml'),
    `policyDir: policies
services:
  - name: api
    namespace: shop
    command: [${JSON.stringify(process.execPath)}, -e, "require('node:http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '127.0.0.1')"]
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

test('up says so when a refused policy edit is undone, back to the set in force', async () => {
  await appendFile(join(dir, 'policies', 'strict.yaml'), '  bogusField: 1\n');
  await waitUntil(async () => mesh.output().includes('refused'), 'up to print the refusal').catch((error) => {
    throw new Error(`${error.message}: ${mesh.output()}`);
  });
  assert.match(mesh.output(), /strict\.yaml:6:3: spec\.bogusField: unknown field "bogusField"/);

  await writeFile(join(dir, 'policies', 'strict.yaml'), POLICY);
  await waitUntil(
    async () => /✓ policies +fixed in \S*policies: the files are the set in force again/.test(mesh.output()),
    'up to say the files are good again',
  ).catch((error) => {
    throw new Error(`${error.message}: ${mesh.output()}`);
  });
  assert.doesNotMatch(mesh.output(), /loaded from/, 'no new set was loaded: the one in force stayed');
});
