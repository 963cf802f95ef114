// An app given as a string runs under `/bin/sh -c`, and runtime.json records the shell: README's
// "kill -9 … and up starts it again" killed only it. Its server, a child in the same process
// group, kept running on $PORT, so every restart failed to bind it (exited with code 1, backing
// off to 30 s, for as long as the mesh ran). `up` now kills what is left of the group first, as a
// container's processes end with it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { processStartTicks } from '../../src/mesh/processes.ts';
import { waitUntil } from '../../src/testing/mesh-pki.ts';
import {
  awaitReplaced,
  callThrough,
  IDLE_APP,
  type RecordedProcess,
  type RunningMesh,
  readRuntime,
  upMeshFile,
} from './mesh-processes.ts';

/** Answers every request with its own pid, on $PORT. */
const PID_SERVER = `require('node:http').createServer((q, s) => s.end(String(process.pid))).listen(Number(process.env.PORT), '127.0.0.1')`;

let mesh: RunningMesh | undefined;

before(async () => {
  mesh = await upMeshFile('mutual-restart-group-', [
    'services:',
    '  - name: api',
    // The shell stays (a command follows the server), with the server as its child.
    `    command: node -e "$SERVER"; echo "server ended with $?"`,
    `    env: { SERVER: ${JSON.stringify(PID_SERVER)} }`,
    '    restart: always',
    '    ports: [8080]',
    '  - name: client',
    `    command: [node, -e, ${JSON.stringify(IDLE_APP)}]`,
    '    upstreams: [api]',
  ]);
});

after(async () => {
  await mesh?.stop();
});

interface Runtime {
  services: Array<{ name: string; app: RecordedProcess; upstreams: Array<{ localAddress: string }> }>;
}

test("a kill -9 of an app's shell ends its server too, and the restarted one serves", async () => {
  const { state, up } = mesh!;
  const runtime = () => readRuntime<Runtime>(state);
  const service = async (name: string) => (await runtime()).services.find((s) => s.name === name)!;
  const callApi = async () => callThrough((await service('client')).upstreams[0]!.localAddress);

  const first = await callApi();
  assert.match(first, /^200 \d+$/, first);
  const server = Number(first.slice(4));
  const shell = (await service('api')).app.pid;
  assert.notEqual(server, shell, 'the server is a child of the shell');

  process.kill(shell, 'SIGKILL');
  await awaitReplaced('the app api', shell, async () => (await service('api')).app.pid, up.output);
  // Gone or a zombie (nothing may reap it here): no longer running either way.
  assert.equal(
    processStartTicks(server),
    undefined,
    `the old server (pid ${server}) was killed with its shell`,
  );
  await waitUntil(async () => /^200 \d+$/.test(await callApi()), 'the restarted api answers');
  assert.notEqual(await callApi(), `200 ${server}`);
  assert.doesNotMatch(up.output(), /the app api exited \(code/, 'the restarted app could bind its port');
});
