// A state directory a year old: the anchor (10 years) is fine, the issuer (365 days) has expired.
// `mutual up` refused it with the hint "create a new one with `mutual ca create`", which refuses a
// directory that holds a CA; `mutual ca issuer` is what makes a new issuer under the same anchor.
// The hint followed as written, the mesh starts.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fixedClock } from '../../src/clock.ts';
import { createIssuer, createTrustAnchor } from '../../src/pki/index.ts';
import { writeCaDirectory } from '../../src/store/index.ts';
import { type MeshUp, runMutual, startMeshUp } from './run-mutual.ts';

let dir: string;
let up: MeshUp | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-cli-expired-issuer-'));
});

after(async () => {
  await up?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('up with an expired issuer: the hint names mutual ca issuer, and following it the mesh starts', async () => {
  const ca = join(dir, 'state', 'ca');
  const clock = fixedClock(Date.now() - 400 * 86_400_000);
  const anchor = await createTrustAnchor({ trustDomain: 'cluster.local', clock });
  await writeCaDirectory(
    ca,
    anchor,
    await createIssuer(anchor, { trustDomain: 'cluster.local', clock, lifetimeMs: 365 * 86_400_000 }),
  );
  const server = "require('http').createServer((q,s)=>s.end('ok')).listen(+process.env.PORT,'127.0.0.1')";
  const meshFile = join(dir, 'mesh.yaml');
  await writeFile(
    meshFile,
    `trustDomain: cluster.local\nservices:\n  - name: echo\n    namespace: demo\n    serviceAccount: echo\n    command: [node, -e, "${server}"]\n    ports: [8080]\n`,
  );
  const refused = await runMutual(['up', '-f', meshFile, '--state-dir', join(dir, 'state')]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /error\[MUTUAL_PKI_ISSUER_INVALID\]: .*issuer\.crt: .* expired at/);
  assert.match(refused.stderr, /hint: .*`mutual ca issuer --ca DIR --out next`/);
  assert.doesNotMatch(refused.stderr, /create a new one with `mutual ca create`/);

  const next = join(dir, 'next');
  const made = await runMutual(['ca', 'issuer', '--ca', ca, '--out', next]);
  assert.equal(made.code, 0, made.stderr);
  await copyFile(join(next, 'issuer.crt'), join(ca, 'issuer.crt'));
  await copyFile(join(next, 'issuer.key'), join(ca, 'issuer.key'));
  up = await startMeshUp(['-f', meshFile, '--state-dir', join(dir, 'state')]);
  assert.match(up.output(), /The mesh is up/, up.output());
});
