// `mutual check` on a real one-service mesh whose CA files the identity service refused (an issuer
// from another CA, a bundle.pem of another CA's root): the check that compares files with what is
// in force fails and names the file; the identity service's certificate and the destination
// service, still served and trusted through what is in force, are not failed with advice of
// their own ("check the identity service runs with the CA", "compare destinations.yaml").
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { CaStatusAnswer } from '../../src/identity/index.ts';
import type { MeshRuntime } from '../../src/mesh/index.ts';
import { createCa, type MeshUp, runMutual, startMeshUp } from './run-mutual.ts';

let dir: string;
let up: MeshUp;
let state: string;
let adminUrl: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-check-ca-refused-'));
  state = join(dir, 'state');
  const server = "require('http').createServer((q,s)=>s.end('ok')).listen(+process.env.PORT,'127.0.0.1')";
  await writeFile(
    join(dir, 'mesh.yaml'),
    `trustDomain: cluster.local\nservices:\n  - name: echo\n    namespace: demo\n    serviceAccount: echo\n    command: [node, -e, "${server}"]\n    ports: [8080]\n`,
  );
  await createCa(join(dir, 'other'));
  up = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', state]);
  assert.match(up.output(), /The mesh is up/, up.output());
  const runtime = JSON.parse(await readFile(join(state, 'runtime.json'), 'utf8')) as MeshRuntime;
  adminUrl = runtime.identity.adminUrl;
});

after(async () => {
  await up?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function untilReload(what: 'issuer' | 'trustAnchors', result: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const inForce = (await (await fetch(`${adminUrl}/ca`)).json()) as CaStatusAnswer;
    if (inForce.lastReload[what]?.result === result) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what} not ${result} within 15 s`);
}

/** Replaces a CA file in one rename, as the watcher should see a finished copy. */
async function replace(file: string, from: string) {
  await copyFile(from, `${file}.next`);
  await rename(`${file}.next`, file);
}

test('a refused issuer or bundle fails the in-force check only; the identity and destination services are not blamed', async () => {
  const ca = join(state, 'ca');
  const keep = join(dir, 'kept');
  await mkdir(keep);
  for (const file of ['issuer.crt', 'issuer.key', 'bundle.pem'])
    await copyFile(join(ca, file), join(keep, file));
  const green = await runMutual(['check', '--state-dir', state]);
  assert.equal(green.code, 0, green.stdout);

  // 1. An issuer from another CA: refused, the previous one keeps signing.
  await replace(join(ca, 'issuer.key'), join(dir, 'other', 'issuer.key'));
  await replace(join(ca, 'issuer.crt'), join(dir, 'other', 'issuer.crt'));
  await untilReload('issuer', 'refused');
  const issuer = await runMutual(['check', '--state-dir', state]);
  assert.equal(issuer.code, 1, issuer.stdout);
  assert.match(
    issuer.stdout,
    /× identity service has the issuer and trust anchors on disk in force\n\s+issuer\.crt: the identity service refused/,
  );
  assert.match(
    issuer.stdout,
    /- destination service answers for every meshed service with its SPIFFE ID \(skipped: the issuer on disk is not the one the identity service signs with/,
  );
  assert.doesNotMatch(issuer.stdout, /compare destinations\.yaml/);

  // 2. Back to the first issuer; then a bundle.pem of another CA's root only: refused.
  await replace(join(ca, 'issuer.key'), join(keep, 'issuer.key'));
  await replace(join(ca, 'issuer.crt'), join(keep, 'issuer.crt'));
  await untilReload('issuer', 'accepted');
  await replace(join(ca, 'bundle.pem'), join(dir, 'other', 'bundle.pem'));
  await untilReload('trustAnchors', 'refused');
  const bundle = await runMutual(['check', '--state-dir', state]);
  assert.equal(bundle.code, 1, bundle.stdout);
  assert.match(
    bundle.stdout,
    /× identity service has the issuer and trust anchors on disk in force\n\s+bundle\.pem: the identity service refused/,
  );
  assert.match(bundle.stdout, /√ identity service presents its SPIFFE ID, chained to the trust bundle/);
  assert.match(
    bundle.stdout,
    /√ destination service answers for every meshed service with its SPIFFE ID \(echo\)/,
  );
  await replace(join(ca, 'bundle.pem'), join(keep, 'bundle.pem'));
  await untilReload('trustAnchors', 'accepted');
});

test('an issuer.crt overwritten with garbage: check says so, and its fix without a backup makes check pass again', async () => {
  const ca = join(state, 'ca');
  await writeFile(join(ca, 'issuer.crt'), 'garbage\n');
  await untilReload('issuer', 'refused');
  const broken = await runMutual(['check', '--state-dir', state]);
  assert.equal(broken.code, 1, broken.stdout);
  assert.match(
    broken.stdout,
    /× issuer certificate and key can be read and belong together\n\s+\S+issuer\.crt: malformed PEM/,
  );
  // What the fix says, as a user follows it: a new issuer under the anchor, copied in.
  assert.ok(
    broken.stdout.includes(
      `without one, make a new issuer under the anchor (\`mutual ca issuer --ca ${ca} --out next\`)`,
    ),
    broken.stdout,
  );
  const next = join(dir, 'next');
  const made = await runMutual(['ca', 'issuer', '--ca', ca, '--out', next]);
  assert.equal(made.code, 0, made.stderr);
  await replace(join(ca, 'issuer.key'), join(next, 'issuer.key'));
  await replace(join(ca, 'issuer.crt'), join(next, 'issuer.crt'));
  await untilReload('issuer', 'accepted');
  const fixed = await runMutual(['check', '--state-dir', state]);
  assert.equal(fixed.code, 0, fixed.stdout);
});
