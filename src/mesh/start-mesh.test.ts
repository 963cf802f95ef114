// startMesh when a port chosen for the mesh is taken by another process before the mesh's own
// process binds it (two meshes starting at once on one machine): everything started is stopped
// and the mesh starts again on new ports, with real processes.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../clock.ts';
import { loadMeshConfig } from './mesh-config.ts';
import { allocateLoopbackPorts } from './processes.ts';
import { type MeshProgress, startMesh } from './start-mesh.ts';

function mutualBin(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return join(dir, 'bin', 'mutual.js');
}

test("a sidecar's admin port taken between allocation and start: the mesh starts again on new ports", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-port-taken-'));
  const app =
    "require('node:http').createServer((q, s) => s.end('ok')).listen(process.env.PORT, '127.0.0.1')";
  await writeFile(
    join(dir, 'mesh.yaml'),
    `trustDomain: cluster.local
services:
  - name: hello
    namespace: demo
    serviceAccount: hello
    command: [${JSON.stringify(process.execPath)}, -e, ${JSON.stringify(app)}]
    ports: [8080]
`,
  );
  const config = await loadMeshConfig(join(dir, 'mesh.yaml'));
  let taker: Server | undefined;
  let takenPort = 0;
  const allocations: number[][] = [];
  const events: MeshProgress[] = [];
  try {
    const mesh = await startMesh(config, {
      clock: systemClock,
      stateDir: join(dir, 'state'),
      nodePath: process.execPath,
      mutualBin: mutualBin(),
      baseEnv: process.env,
      readyTimeoutMs: 30_000,
      onProgress: (event) => events.push(event),
      allocatePorts: async (count, host) => {
        const ports = await allocateLoopbackPorts(count, host);
        allocations.push(ports);
        if (allocations.length === 1) {
          // Port 4 is the first service's sidecar admin (plan.ts): someone else binds it now.
          takenPort = ports[4]!;
          taker = createServer();
          await new Promise<void>((resolve) => taker!.listen(takenPort, '127.0.0.1', resolve));
        }
        return ports;
      },
    });
    try {
      assert.equal(allocations.length, 2, 'ports allocated twice');
      const retries = events.filter((event) => event.kind === 'port-taken');
      assert.equal(retries.length, 1);
      assert.match(JSON.stringify(retries[0]), /the sidecar of hello/);
      const service = mesh.runtime.services[0]!;
      assert.notEqual(new URL(service.adminUrl).port, String(takenPort));
      const answer = await fetch(`${service.adminUrl}/ready`);
      assert.equal(answer.status, 200);
    } finally {
      await mesh.close();
    }
  } finally {
    taker?.close();
    await rm(dir, { recursive: true, force: true });
  }
});
