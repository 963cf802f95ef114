// In a loopback mesh each app listens on a $PORT of its own (printed by `mutual up` under Apps),
// while policies name the ports mesh.yaml declares. A DENY written with the $PORT never matches:
// the sidecar lets the request through. Before, `mutual check` said nothing about it; now it warns
// (port-not-declared), naming the workload's declared ports. The declared port is not warned about.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type MeshUp, runMutual, startMeshUp } from '../e2e/run-mutual.ts';

let dir: string;
let mesh: MeshUp;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-walkthrough-ports-'));
  await mkdir(join(dir, 'policies'));
  await writeFile(
    join(dir, 'app.mjs'),
    "import http from 'node:http';\nhttp.createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');\n",
  );
  await writeFile(
    join(dir, 'mesh.yaml'),
    `policyDir: policies
services:
  - name: web
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

function denyPort(name: string, port: number): string {
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  action: DENY
  rules: [{ to: [{ operation: { ports: ["${port}"] } }] }]
`;
}

test("a DENY naming the app's $PORT never matches, and mutual check says so", async () => {
  const runtime = JSON.parse(await readFile(join(dir, 'state', 'runtime.json'), 'utf8'));
  const { appPort, inboundPort } = runtime.services[0].ports[0];
  await writeFile(join(dir, 'policies', 'deny.yaml'), denyPort('deny-app-port', appPort));
  const log = join(dir, 'state', 'logs', 'web.proxy.log');
  const loaded = async () => ((await readFile(log, 'utf8')).match(/policies loaded/g) ?? []).length;
  const before = await loaded();
  for (let i = 0; i < 100 && (await loaded()) === before; i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok((await loaded()) > before, 'the sidecar loads the policy');
  // The sidecar matches the declared port, so the DENY does not apply.
  const response = await fetch(`http://127.0.0.1:${inboundPort}/`);
  assert.equal(response.status, 200);
  await response.arrayBuffer();

  const check = await runMutual(['check', '--state-dir', join(dir, 'state')]);
  assert.match(
    check.stdout,
    new RegExp(
      `warning\\[port-not-declared\\] \\(shop/deny-app-port\\): port ${appPort} is not declared by any workload this policy selects \\(web: 8080\\): rules on it never match`,
    ),
    check.stdout,
  );

  // The declared port: enforced, and no warning.
  await writeFile(join(dir, 'policies', 'deny.yaml'), denyPort('deny-declared-port', 8080));
  const fixed = await runMutual(['check', '--state-dir', join(dir, 'state')]);
  assert.doesNotMatch(fixed.stdout, /port-not-declared/, fixed.stdout);
});
