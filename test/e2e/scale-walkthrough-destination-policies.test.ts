// A mesh.yaml with a policyDir: `mutual up` gave every sidecar --policy-dir but started the
// destination service without it, so its GET /v1/policies answered 404 ("serves no policies")
// to any workload that asked. Now up gives the destination service the same directory: it answers
// the namespace's policies, and follows an edit of the files as the sidecars do.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { waitUntil } from '../../src/testing/mesh-pki.ts';
import { get } from '../destination/destination-fixture.ts';
import { helloServer } from './mesh-processes.ts';
import { type MeshUp, runMutual, startMeshUp } from './run-mutual.ts';

let dir: string;
let state: string;
let up: MeshUp | undefined;

const STRICT = [
  'apiVersion: security.istio.io/v1',
  'kind: PeerAuthentication',
  'metadata: { name: default, namespace: shop }',
  'spec: { mtls: { mode: STRICT } }',
  '',
].join('\n');
const ONLY_WEB = [
  'apiVersion: security.istio.io/v1',
  'kind: AuthorizationPolicy',
  'metadata: { name: cart-only-from-web, namespace: shop }',
  'spec:',
  '  selector: { matchLabels: { app: cart } }',
  '  action: ALLOW',
  '  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/web"] } }] }]',
  '',
].join('\n');

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-scale-policies-'));
  state = join(dir, 'state');
  await mkdir(join(dir, 'policies'));
  await writeFile(join(dir, 'policies', 'strict.yaml'), STRICT);
  await writeFile(
    join(dir, 'mesh.yaml'),
    [
      'trustDomain: cluster.local',
      'policyDir: policies',
      'services:',
      '  - name: cart',
      '    namespace: shop',
      `    command: [node, -e, ${JSON.stringify(helloServer('cart'))}]`,
      '    ports: [8080]',
      '  - name: web',
      '    namespace: shop',
      `    command: [node, -e, ${JSON.stringify(helloServer('web'))}]`,
      '    ports: [8080]',
      '    upstreams: [cart]',
      '',
    ].join('\n'),
  );
  up = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', state]);
  assert.match(up.output(), /The mesh is up/, up.output());
});

after(async () => {
  await up?.stop();
  await runMutual(['down', '--state-dir', state]);
  await rm(dir, { recursive: true, force: true });
});

test("up's destination service answers the mesh's policies at GET /v1/policies, and follows edits", async () => {
  // A workload's SVID, as a sidecar asking the destination service would hold.
  const client = join(dir, 'client');
  const issued = await runMutual([
    ...['cert', 'issue', '--ca', join(state, 'ca'), '--out', client],
    ...['--spiffe-id', 'spiffe://cluster.local/ns/shop/sa/web'],
  ]);
  assert.equal(issued.code, 0, issued.stderr);
  const files = {
    spiffeId: 'spiffe://cluster.local/ns/shop/sa/web',
    certFile: join(client, 'cert.pem'),
    keyFile: join(client, 'key.pem'),
    bundleFile: join(client, 'bundle.pem'),
    notAfterMs: 0,
  };
  const runtime = JSON.parse(await readFile(join(state, 'runtime.json'), 'utf8'));
  const ask = () =>
    get(`${runtime.destination.apiUrl}/v1/policies?namespace=shop`, {
      client: files,
      caFile: join(state, 'ca', 'bundle.pem'),
    });
  const names = (body: { policies: Array<{ kind: string; metadata: { name: string } }> }) =>
    body.policies.map((policy) => `${policy.kind} ${policy.metadata.name}`).sort();

  const first = await ask();
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.deepEqual(names(first.body), ['PeerAuthentication default']);

  await writeFile(join(dir, 'policies', 'only-web.yaml'), ONLY_WEB);
  await waitUntil(async () => (await ask()).body.policies?.length === 2, 'the edit to be served');
  const second = await ask();
  assert.deepEqual(names(second.body), [
    'AuthorizationPolicy cart-only-from-web',
    'PeerAuthentication default',
  ]);
  assert.notEqual(second.body.version, first.body.version);
});
