import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { systemClock } from '../clock.ts';
import { createTestPki, type WorkloadFiles } from '../testing/mesh-pki.ts';
import { isMeshServerName } from './mesh-server-name.ts';
import { createMeshTls, type MeshTls } from './mesh-tls.ts';

let dir: string;
let web: MeshTls;
let grpc: MeshTls;
let odd: MeshTls;

async function meshTlsOf(files: WorkloadFiles, bundleFile: string): Promise<MeshTls> {
  return createMeshTls(
    {
      spiffeId: files.spiffeId,
      privateKeyPem: await readFile(files.keyFile, 'utf8'),
      // The whole chain, leaf first: the leaf's names count, the issuer's do not.
      certificateChainPem: await readFile(files.certFile, 'utf8'),
      trustBundlePem: await readFile(bundleFile, 'utf8'),
      notBeforeMs: Date.now() - 60_000,
      notAfterMs: files.notAfterMs,
    },
    systemClock,
  );
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-server-name-'));
  const pki = await createTestPki(dir);
  web = await meshTlsOf(await pki.workload('web', { ns: 'demo' }), pki.bundleFile);
  grpc = await meshTlsOf(
    await pki.workload('grpc', { dnsNames: ['emoji.demo.svc', '*.emoji.example'] }),
    pki.bundleFile,
  );
  odd = await meshTlsOf(
    await pki.workload('odd', { spiffeId: `spiffe://${pki.trustDomain}/workloads/odd` }),
    pki.bundleFile,
  );
});

after(() => rm(dir, { recursive: true, force: true }));

test("the identity's host-name form is the sidecar's; the app's own names are not", () => {
  assert.equal(isMeshServerName(web, 'web.demo.serviceaccount.identity.cluster.local'), true);
  assert.equal(isMeshServerName(web, 'web.demo'), false);
  assert.equal(isMeshServerName(web, 'localhost'), false);
});

test("another workload's identity name is a peer proxy's too: terminated, so that client sees wrong_identity", () => {
  assert.equal(isMeshServerName(web, 'api.demo.serviceaccount.identity.cluster.local'), true);
  assert.equal(isMeshServerName(web, 'API.demo.serviceaccount.identity.other.example'), true);
  // Not the shape <sa>.<ns>.serviceaccount.identity.<td>: an app's own name.
  assert.equal(isMeshServerName(web, 'demo.serviceaccount.identity.cluster.local'), false);
  assert.equal(isMeshServerName(web, 'api.demo.serviceaccount.identity.'), false);
  assert.equal(isMeshServerName(web, 'serviceaccount.identity.cluster.local'), false);
});

test("the SVID's DNS SANs are the sidecar's, wildcards as TLS matches them", () => {
  assert.equal(isMeshServerName(grpc, 'emoji.demo.svc'), true);
  assert.equal(isMeshServerName(grpc, 'a.emoji.example'), true);
  assert.equal(isMeshServerName(grpc, 'a.b.emoji.example'), false);
  assert.equal(isMeshServerName(grpc, 'web.demo'), false);
});

test('an identity with no host-name form: peers send the host they dial, so every name is the sidecar’s', () => {
  assert.equal(isMeshServerName(odd, 'web.demo'), true);
});
