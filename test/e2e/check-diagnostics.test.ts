// `mutual check`, `identity` and `edges` as a user reads them when something is broken: the fixed
// mesh of the golden tests (real CA files, tiny real admin servers, runtime.json), broken one way
// at a time. Each says what is wrong and what to do, with commands for the state directory it was
// given, and finishes quickly even when every process hangs.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { MeshRuntime } from '../../src/mesh/index.ts';
import { type GoldenMesh, startGoldenMesh } from '../golden/golden-mesh.ts';

let mesh: GoldenMesh;

before(async () => {
  mesh = await startGoldenMesh();
});

after(async () => {
  await mesh?.close();
});

/** A state directory of the golden mesh with its runtime.json changed by `change`. */
async function stateWith(name: string, change: (runtime: MeshRuntime) => MeshRuntime): Promise<string> {
  const stateDir = await mesh.makeState(name);
  const file = join(stateDir, 'runtime.json');
  const runtime = JSON.parse(await readFile(file, 'utf8')) as MeshRuntime;
  await writeFile(file, JSON.stringify(change(runtime)));
  return stateDir;
}

/** A loopback port that accepts connections and never answers (a hung process). */
async function silentServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

test('the advice of check, edges and identity names the state directory it was given', async () => {
  await mesh.makeState('advice');
  const check = await mesh.run(['check', '--state-dir', 'advice']);
  assert.equal(check.code, 1);
  // Without --state-dir, `mutual logs` reads the default directory: another mesh, or none.
  const commands = [...check.stdout.matchAll(/`(mutual (?:logs|down|up -f|identity|edges|check)[^`]*)`/g)];
  assert.ok(commands.length > 5, check.stdout);
  for (const [, command] of commands) {
    for (const part of command!.split(' && '))
      assert.match(part, /--state-dir advice$|--state-dir advice /, `${part} in ${check.stdout}`);
  }
  assert.match(check.stdout, /`mutual logs SERVICE --proxy --state-dir advice`/);
  const edges = await mesh.run(['edges', '--state-dir', 'advice']);
  assert.match(edges.stdout, /See `mutual logs payments --proxy --state-dir advice`/);
  const identity = await mesh.run(['identity', 'payments', '--state-dir', 'advice']);
  assert.match(
    identity.stdout,
    /error\[MUTUAL_MESH_ADMIN_UNREACHABLE\]: the sidecar of payments did not answer/,
  );
  assert.match(identity.stdout, /`mutual logs payments --proxy --state-dir advice`/);
});

test('check finishes within seconds when the identity service and a sidecar accept but never answer', async () => {
  const hung = await silentServer();
  try {
    const { port } = new URL(hung.url);
    await stateWith('hung', (runtime) => ({
      ...runtime,
      identity: { ...runtime.identity, adminUrl: hung.url, apiUrl: `https://127.0.0.1:${port}` },
      services: runtime.services.map((service) =>
        service.name === 'cart' ? { ...service, adminUrl: hung.url } : service,
      ),
    }));
    const startedMs = Date.now();
    const result = await mesh.run(['check', '--state-dir', 'hung']);
    const tookMs = Date.now() - startedMs;
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      /× identity service is reachable and ready\n\s+http:\/\/127\.0\.0\.1:\d+ did not answer: no answer within 2000 ms/,
    );
    assert.match(
      result.stdout,
      /× sidecar is ready\n\s+cart: the sidecar does not answer at http:\/\/127\.0\.0\.1:\d+: no answer within 2000 ms/,
    );
    // One check after the other, the 2-3 s waits added up to more than 15 s.
    assert.ok(tookMs < 8000, `check took ${tookMs} ms`);
  } finally {
    await hung.close();
  }
});
