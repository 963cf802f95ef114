// A bigger mesh than the demo: ten services, each calling the next. `mutual check` said a time per
// sidecar on its renewal line and a SPIFFE ID per sidecar on its identities line, one line each of
// 1,600 and 2,200 characters at 40 services; past eight services a passing mesh now gets one
// phrase for each. `mutual edges` lists every edge once with both identities, and `mutual down`
// leaves no process of the 22 behind. (Figures for 5/20/40 services are in the commit messages.)
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { callThrough, helloServer, isAlive } from './mesh-processes.ts';
import { type MeshUp, runMutual, startMeshUp } from './run-mutual.ts';

const COUNT = 10;
const names = Array.from({ length: COUNT }, (_, at) => `svc${at}`);

interface Runtime {
  supervisor: { pid: number };
  identity: { pid: number };
  destination: { pid: number };
  services: Array<{
    name: string;
    app: { pid: number };
    proxy: { pid: number };
    upstreams: Array<{ service: string; localAddress: string }>;
  }>;
}

let dir: string;
let state: string;
let up: MeshUp | undefined;
let runtime: Runtime;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-scale-ten-'));
  state = join(dir, 'state');
  const services = names.flatMap((name, at) => [
    `  - name: ${name}`,
    '    namespace: scale',
    `    command: [node, -e, ${JSON.stringify(helloServer(name))}]`,
    '    ports: [8080]',
    `    upstreams: [${names[(at + 1) % COUNT]}]`,
  ]);
  await writeFile(
    join(dir, 'mesh.yaml'),
    ['trustDomain: cluster.local', 'services:', ...services, ''].join('\n'),
  );
  up = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', state, '--timeout', '60s']);
  assert.match(up.output(), /The mesh is up: 10 services/, up.output());
  runtime = JSON.parse(await readFile(join(state, 'runtime.json'), 'utf8'));
});

after(async () => {
  await up?.stop();
  await runMutual(['down', '--state-dir', state]);
  await rm(dir, { recursive: true, force: true });
});

test('check: one phrase for ten renewals and ten identities; edges: every call once, as whom', async () => {
  for (const service of runtime.services) {
    const upstream = service.upstreams[0]!;
    assert.equal(await callThrough(upstream.localAddress), `200 ${upstream.service}`);
  }

  const check = await runMutual(['check', '--state-dir', state]);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  const line = (start: string) => check.stdout.split('\n').find((text) => text.startsWith(start)) ?? '';
  assert.match(
    line('√ certificate is renewed on time'),
    /^√ certificate is renewed on time: 10 sidecars, (all at \S+|the first svc\d at \S+, the last svc\d at \S+) \(`mutual identity SERVICE/,
  );
  assert.equal(
    line('√ identities the sidecars present'),
    '√ identities the sidecars present: 10 of 10 present the one mesh.yaml gives them (spiffe://cluster.local/ns/NAMESPACE/sa/SERVICE_ACCOUNT)',
  );

  const edges = await runMutual(['edges', '--state-dir', state, '-o', 'json']);
  assert.equal(edges.code, 0, edges.stderr);
  const listed = (JSON.parse(edges.stdout) as { edges: Array<Record<string, unknown>> }).edges.map(
    (edge) => `${edge.source}>${edge.destination} ${edge.clientId} ${edge.serverId} ${edge.requests}`,
  );
  const id = (name: string) => `spiffe://cluster.local/ns/scale/sa/${name}`;
  assert.deepEqual(
    listed.sort(),
    names
      .map((name, at) => {
        const next = names[(at + 1) % COUNT]!;
        return `${name}>${next} ${id(name)} ${id(next)} 1`;
      })
      .sort(),
  );
});

test('down stops every process of the ten services, and up, at once', async () => {
  const pids = [
    runtime.supervisor.pid,
    runtime.identity.pid,
    runtime.destination.pid,
    ...runtime.services.flatMap((service) => [service.app.pid, service.proxy.pid]),
  ];
  assert.equal(pids.length, 2 * COUNT + 3);
  const down = await runMutual(['down', '--state-dir', state]);
  assert.equal(down.code, 0, down.stderr);
  await up?.stop();
  assert.deepEqual(
    pids.filter((pid) => isAlive(pid)),
    [],
    'processes left running',
  );
});
