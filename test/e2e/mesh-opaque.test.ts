// A server-speaks-first service in the loopback mesh: `greeter` declares its port opaque in
// mesh.yaml and greets as soon as a connection opens, like MySQL or SMTP. Its client's app
// connects through its sidecar's upstream port and says nothing. The greeting must arrive at once:
// a sidecar that waited for the app's first bytes would hold it for the whole detection timeout
// (10 s), which is what Linkerd users meet when a server-speaks-first port is not marked opaque.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { MeshRuntime } from '../../src/mesh/index.ts';
import { type MeshUp, startMeshUp } from './run-mutual.ts';

const GREETING = 'HELLO-FROM-GREETER';
const GREETER = `require('node:net').createServer((s) => s.end('${GREETING}\\n')).listen(Number(process.env.PORT), '127.0.0.1')`;
// Connects to the greeter through the sidecar, sends nothing, answers with what it was told.
const CLIENT = `require('node:http').createServer((q, s) => { const [h, p] = process.env.GREETER_ADDR.split(':'); let d = ''; require('node:net').connect(Number(p), h).on('data', (x) => (d += x)).on('end', () => s.end(d)).on('error', (e) => { s.statusCode = 502; s.end(String(e)); }); }).listen(Number(process.env.PORT), '127.0.0.1')`;
const MESH = `trustDomain: cluster.local
mode: STRICT
services:
  - name: greeter
    namespace: opaque-e2e
    command: [node, -e, ${JSON.stringify(GREETER)}]
    ports: [{ port: 7000, protocol: tcp }]
    opaquePorts: [7000]
  - name: client
    namespace: opaque-e2e
    command: [node, -e, ${JSON.stringify(CLIENT)}]
    ports: [8080]
    upstreams: [greeter]
`;
/** Well inside the 10 s detection timeout a non-opaque upstream would wait out. */
const GREETING_BOUND_MS = 6_000;

let dir: string;
let up: MeshUp;
let runtime: MeshRuntime;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-mesh-opaque-'));
  await writeFile(join(dir, 'mesh.yaml'), MESH);
  up = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', join(dir, 'state')], 'The mesh is up');
  assert.match(up.output(), /The mesh is up: 2 services/, up.output());
  runtime = JSON.parse(await readFile(join(dir, 'state', 'runtime.json'), 'utf8')) as MeshRuntime;
});

after(async () => {
  await up?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("a server-speaks-first upstream declared opaque greets the client's app at once, over mTLS", async () => {
  const client = runtime.services.find((service) => service.name === 'client')!;
  const response = await fetch(`http://127.0.0.1:${client.ports[0]!.appPort}/`, {
    signal: AbortSignal.timeout(GREETING_BOUND_MS),
  });
  assert.equal(response.status, 200);
  assert.equal((await response.text()).trim(), GREETING);
  const metrics = await (await fetch(`${client.adminUrl}/metrics`)).text();
  assert.match(
    metrics,
    /mutual_outbound_connections_total\{[^}]*server_id="spiffe:\/\/cluster\.local\/ns\/opaque-e2e\/sa\/greeter"/,
    'the connection went to the greeter over mTLS',
  );
});
