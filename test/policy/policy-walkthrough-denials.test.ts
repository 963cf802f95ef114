// "Which policy denied this?" from the CLI. `mutual check` listed edges with denials and
// `mutual edges` counted them, but neither named the deciding AuthorizationPolicy (only the
// dashboard's Policy tab and the sidecar's log did), so a user with two policies on a workload
// could not tell which one to change. Now the check's line says `denied by shop/deny-admin (2), …`
// and the edge (mutual edges -o json, the dashboard's /api/edges) carries `deniedBy`.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type MeshUp, runMutual, startMeshUp } from '../e2e/run-mutual.ts';

let dir: string;
let mesh: MeshUp;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-walkthrough-denials-'));
  await mkdir(join(dir, 'policies'));
  await writeFile(
    join(dir, 'policies', 'api.yaml'),
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: api-public, namespace: shop }
spec:
  selector: { matchLabels: { app: api } }
  rules: [{ to: [{ operation: { paths: ["/public/*", "/admin/*"] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: shop }
spec:
  selector: { matchLabels: { app: api } }
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/admin/*"] } }] }]
`,
  );
  await writeFile(
    join(dir, 'app.mjs'),
    "import http from 'node:http';\nhttp.createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');\n",
  );
  await writeFile(
    join(dir, 'idle.mjs'),
    "import http from 'node:http';\nhttp.createServer((q, s) => s.end('idle')).listen(Number(process.env.PORT), '127.0.0.1');\n",
  );
  const node = JSON.stringify(process.execPath);
  await writeFile(
    join(dir, 'mesh.yaml'),
    `policyDir: policies
services:
  - name: api
    namespace: shop
    command: [${node}, app.mjs]
    ports: [8080]
  - name: web
    namespace: shop
    command: [${node}, idle.mjs]
    ports: [8080]
    upstreams: [api]
`,
  );
  mesh = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', join(dir, 'state')]);
  assert.match(mesh.output(), /The mesh is up/, mesh.output());
});

after(async () => {
  await mesh?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('mutual check and mutual edges name the policy that denied each call', async () => {
  const runtime = JSON.parse(await readFile(join(dir, 'state', 'runtime.json'), 'utf8'));
  const web = runtime.services.find((service: { name: string }) => service.name === 'web');
  // As web's app calls api: through web's sidecar ($API_URL).
  const call = async (path: string) => {
    const response = await fetch(`http://${web.upstreams[0].localAddress}${path}`);
    await response.arrayBuffer();
    return response.status;
  };
  assert.equal(await call('/public/x'), 200);
  assert.equal(await call('/admin/x'), 403);
  assert.equal(await call('/admin/y'), 403);
  assert.equal(await call('/private'), 403);

  const check = await runMutual(['check', '--state-dir', join(dir, 'state')]);
  assert.match(
    check.stdout,
    /web → api:8080: \d+ connections?, 4 requests, 3 denied by shop\/deny-admin \(2\), shop\/api-public \(1\)/,
    check.stdout,
  );
  const edges = await runMutual(['edges', '--state-dir', join(dir, 'state'), '-o', 'json']);
  const edge = JSON.parse(edges.stdout).edges.find(
    (e: { source: string; destination: string }) => e.source === 'web' && e.destination === 'api',
  );
  assert.deepEqual(edge.deniedBy, { 'shop/deny-admin': 2, 'shop/api-public': 1 });
});
