// A loopback mesh (`mutual up`) whose policy directory gets a file with an error while it runs:
// the sidecars refuse the whole set and keep the last good one. The dashboard's Policy view
// (GET /api/policy) used to compile what of the files still parsed and show it as enforced: a
// STRICT PeerAuthentication added in the same edit was shown in force, with no error, while the
// sidecar still let plaintext in. It now says the files are refused and names the error.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { createDashboard, type Dashboard } from '../../src/dashboard/index.ts';
import { waitUntil } from '../../src/testing/mesh-pki.ts';
import { type MeshUp, startMeshUp } from '../e2e/run-mutual.ts';

let dir: string;
let mesh: MeshUp;
let dashboard: Dashboard;

const PERMISSIVE = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: shop }
spec: { mtls: { mode: PERMISSIVE } }
`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-walkthrough-dashboard-'));
  await mkdir(join(dir, 'policies'));
  await writeFile(join(dir, 'policies', 'mtls.yaml'), PERMISSIVE);
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
  dashboard = await createDashboard(
    { host: '127.0.0.1', port: 0, stateDir: join(dir, 'state') },
    { clock: systemClock },
  );
});

after(async () => {
  dashboard?.destroy();
  await mesh?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function inboundPort(): Promise<number> {
  const runtime = JSON.parse(await readFile(join(dir, 'state', 'runtime.json'), 'utf8'));
  return runtime.services[0].ports[0].inboundPort;
}

async function plaintextStatus(): Promise<number | string> {
  try {
    const response = await fetch(`http://127.0.0.1:${await inboundPort()}/`);
    await response.arrayBuffer();
    return response.status;
  } catch (error) {
    return (error as Error).message;
  }
}

interface PolicyWorkload {
  service: string;
  ports: { mode: string }[];
  error: string | null;
}

async function apiWorkload(): Promise<PolicyWorkload> {
  const response = await fetch(`${dashboard.url}api/policy`);
  const policy = (await response.json()) as { workloads: PolicyWorkload[] };
  return policy.workloads.find((w) => w.service === 'api')!;
}

test('an edit the sidecars refuse is not shown as enforced: the Policy view names the error', async () => {
  assert.equal(await plaintextStatus(), 200);
  assert.equal((await apiWorkload()).ports[0]?.mode, 'PERMISSIVE');

  // One edit: the namespace turns STRICT, and a new file has a misspelt field.
  await writeFile(join(dir, 'policies', 'mtls.yaml'), PERMISSIVE.replace('PERMISSIVE', 'STRICT'));
  await writeFile(
    join(dir, 'policies', 'deny.yaml'),
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-other, namespace: shop }
spec:
  action: DENY
  rules: [{ from: [{ source: { namespace: ["other"] } }] }]
`,
  );
  const sidecarLog = join(dir, 'state', 'logs', 'api.proxy.log');
  await waitUntil(
    async () => (await readFile(sidecarLog, 'utf8')).includes('policy files refused'),
    'the sidecar to refuse the policy files',
  );
  // The sidecar keeps the last good set: plaintext still gets in.
  assert.equal(await plaintextStatus(), 200);

  // The dashboard reads the files again at its next refresh (every 2 s).
  await waitUntil(
    async () => (await apiWorkload()).ports[0]?.mode !== 'PERMISSIVE',
    'the dashboard to read the files',
  );
  const workload = await apiWorkload();
  assert.notEqual(
    workload.ports[0]?.mode,
    'STRICT',
    'the dashboard must not show the refused STRICT in force',
  );
  assert.match(workload.error ?? '', /the sidecars refuse the policy files .* keep the last good set/);
  assert.match(workload.error ?? '', /deny\.yaml:6:\d+: .*unknown field "namespace"/);
  assert.match(workload.error ?? '', /mutual policy check /);

  // Fixed: the sidecar loads the set, and the dashboard shows it.
  await rm(join(dir, 'policies', 'deny.yaml'));
  await waitUntil(
    async () => (await apiWorkload()).ports[0]?.mode === 'STRICT',
    'the dashboard to show STRICT',
  );
  await waitUntil(async () => (await plaintextStatus()) !== 200, 'the sidecar to refuse plaintext');
  assert.equal((await apiWorkload()).error, null);
});
