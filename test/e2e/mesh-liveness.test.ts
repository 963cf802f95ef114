// A process of a running `mutual up` mesh that is there but no longer answers (stopped with
// SIGSTOP here, as a wedged event loop or a deadlock would be) is killed and started again, as the
// kubelet's liveness probe does. The mesh's liveness window is shortened in mesh.yaml (2 s period,
// 2 failures: 4 s, also what a process just restarted has to answer a first time) so the test
// does not wait the default 30 s; the processes are real.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitUntil } from '../../src/testing/mesh-pki.ts';
import {
  awaitReplaced,
  callThrough,
  continueStopped,
  helloServer,
  IDLE_APP,
  type RecordedProcess,
  type RunningMesh,
  readRuntime,
  upMeshFile,
} from './mesh-processes.ts';
import { type MeshUp, runMutual } from './run-mutual.ts';

let state: string;
let up: MeshUp;
let mesh: RunningMesh | undefined;
const stopped: number[] = [];

before(async () => {
  mesh = await upMeshFile('mutual-liveness-', [
    'liveness: { periodSeconds: 2, failureThreshold: 2, timeoutSeconds: 1 }',
    'services:',
    '  - name: api',
    `    command: [node, -e, ${JSON.stringify(helloServer('api says hi'))}]`,
    '    ports: [8080]',
    '  - name: client',
    `    command: [node, -e, ${JSON.stringify(IDLE_APP)}]`,
    '    upstreams: [api]',
  ]);
  ({ state, up } = mesh);
});

after(async () => {
  continueStopped(stopped);
  await mesh?.stop();
});

interface Runtime {
  destination: RecordedProcess;
  liveness: { periodSeconds: number; failureThreshold: number; timeoutSeconds: number };
  services: Array<{ name: string; proxy: RecordedProcess; upstreams: Array<{ localAddress: string }> }>;
}

const runtime = () => readRuntime<Runtime>(state);

/** GET / of api through client's sidecar (its upstream port), over mTLS to api's sidecar. */
async function callApi(): Promise<string> {
  const client = (await runtime()).services.find((service) => service.name === 'client')!;
  return callThrough(client.upstreams[0]!.localAddress);
}

/** SIGSTOPs `pick`'s process and waits until runtime.json names a new, live one. */
async function stopAndAwaitRestart(
  what: string,
  pick: (current: Runtime) => RecordedProcess,
): Promise<RecordedProcess> {
  const before = pick(await runtime()).pid;
  process.kill(before, 'SIGSTOP');
  stopped.push(before);
  // The window (4 s) and the first restart's pause (1 s) run past waitUntil's 10 s on a loaded machine.
  await awaitReplaced(
    what,
    before,
    async () => pick(await runtime()).pid,
    () => up.output(),
  );
  return pick(await runtime());
}

test('runtime.json records the liveness settings mesh.yaml gives', async () => {
  assert.deepEqual((await runtime()).liveness, { periodSeconds: 2, failureThreshold: 2, timeoutSeconds: 1 });
});

test('a stopped sidecar is killed and started again, and calls through it work again', async () => {
  assert.equal(await callApi(), '200 api says hi');
  const api = (current: Runtime) => current.services.find((s) => s.name === 'api')!.proxy;
  const recorded = await stopAndAwaitRestart('the sidecar of api', api);
  assert.match(
    up.output(),
    /! the sidecar of api did not answer \/live 2 times in 4 s \(no answer within 1 s\): killed it \(liveness\); starting it again in 1s; its log: \S+api\.proxy\.log\n/,
  );
  assert.match(up.output(), /✓ the sidecar of api started again \(pid \d+\)/);
  assert.equal(recorded.restarts, 1);
  assert.deepEqual(
    { ...recorded.lastExit, at: undefined },
    {
      code: null,
      signal: 'SIGKILL',
      at: undefined,
      reason: 'liveness',
      message: 'did not answer /live 2 times in 4 s (no answer within 1 s)',
    },
  );
  await waitUntil(async () => (await callApi()) === '200 api says hi', 'api answers through its new sidecar');
  // Its log says why, at the end of the run before the restart.
  const logs = await runMutual(['logs', 'api', '--proxy', '--state-dir', state]);
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(
    logs.stdout,
    /\{"time":"[^"]+","level":"error","msg":"killed by mutual up: did not answer \/live 2 times in 4 s \(no answer within 1 s\)"\}\n/,
  );
});

test('a stopped destination service is killed and started again too', async () => {
  const recorded = await stopAndAwaitRestart('the destination service', (current) => current.destination);
  assert.equal(recorded.lastExit?.reason, 'liveness');
  assert.match(up.output(), /! the destination service did not answer \/live 2 times in 4 s/);
});

test('mutual check says which process was killed for liveness, and why', async () => {
  const check = await runMutual(['check', '--state-dir', state]);
  assert.match(
    check.stdout,
    /‼ no process has had to be started again\n\s+2 processes were started again after exiting\n/,
    check.stdout,
  );
  assert.match(
    check.stdout,
    /api's sidecar: 1 time, the last after `mutual up` killed it for liveness: it did not answer \/live 2 times in 4 s \(no answer within 1 s\), at \S+; its log: \S+api\.proxy\.log/,
    check.stdout,
  );
  assert.match(
    check.stdout,
    /the destination service: 1 time, the last after `mutual up` killed it for liveness/,
  );
});
