// A process of a running `mutual up` mesh that dies is started again, as the kubelet restarts a
// pod's containers: sidecars and the control plane always, apps by their `restart` policy. Real
// processes killed with SIGKILL; calls go through the real sidecars afterwards.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCsr } from '../../src/pki/index.ts';
import { waitUntil } from '../../src/testing/mesh-pki.ts';
import { createIdentityClient } from '../../src/workload/index.ts';
import {
  awaitReplaced,
  callThrough,
  helloServer,
  IDLE_APP,
  isAlive,
  type RecordedProcess,
  type RunningMesh,
  readRuntime,
  upMeshFile,
} from './mesh-processes.ts';
import { type MeshUp, runMutual } from './run-mutual.ts';

let state: string;
let up: MeshUp;
let mesh: RunningMesh | undefined;

before(async () => {
  mesh = await upMeshFile('mutual-restarts-', [
    'services:',
    '  - name: api',
    `    command: [node, -e, ${JSON.stringify(helloServer('api says hi'))}]`,
    '    ports: [8080]',
    '  - name: client',
    `    command: [node, -e, ${JSON.stringify(IDLE_APP)}]`,
    '    upstreams: [api]',
    '  - name: batch',
    `    command: [node, -e, ${JSON.stringify(IDLE_APP)}]`,
    '    upstreams: [api]',
    '    restart: never',
  ]);
  ({ state, up } = mesh);
});

after(async () => {
  await mesh?.stop();
});

type Recorded = RecordedProcess;
interface Runtime {
  identity: Recorded & { apiUrl: string };
  destination: Recorded;
  services: Array<{
    name: string;
    app: Recorded;
    proxy: Recorded;
    upstreams: Array<{ localAddress: string }>;
  }>;
}

const runtime = () => readRuntime<Runtime>(state);

/** GET / of api through client's sidecar (its upstream port), over mTLS to api's sidecar. */
async function callApi(): Promise<string> {
  const client = (await runtime()).services.find((service) => service.name === 'client')!;
  return callThrough(client.upstreams[0]!.localAddress);
}

/** Kills `pick`'s process with SIGKILL and waits until runtime.json names a new, live one. */
async function killAndAwaitRestart(what: string, pick: (current: Runtime) => Recorded): Promise<void> {
  const before = pick(await runtime()).pid;
  process.kill(before, 'SIGKILL');
  await awaitReplaced(
    what,
    before,
    async () => pick(await runtime()).pid,
    () => up.output(),
  );
}

test('a sidecar killed while the mesh runs is started again, and calls through it work again', async () => {
  assert.equal(await callApi(), '200 api says hi');
  const service = (current: Runtime) => current.services.find((s) => s.name === 'api')!;
  await killAndAwaitRestart('the sidecar of api', (current) => service(current).proxy);
  assert.match(up.output(), /! the sidecar of api exited \(signal SIGKILL\); starting it again in 1s/);
  assert.match(up.output(), /✓ the sidecar of api started again \(pid \d+\)/);
  const recorded = service(await runtime()).proxy;
  assert.equal(recorded.restarts, 1);
  assert.deepEqual({ ...recorded.lastExit, at: undefined }, { code: null, signal: 'SIGKILL', at: undefined });
  await waitUntil(async () => (await callApi()) === '200 api says hi', 'api answers through its new sidecar');
});

test('the identity service and an app killed are started again (the app by its default policy, on-failure)', async () => {
  await killAndAwaitRestart('the identity service', (current) => current.identity);
  await killAndAwaitRestart('the app api', (current) => current.services.find((s) => s.name === 'api')!.app);
  assert.match(up.output(), /! the app api exited \(signal SIGKILL\); starting it again in 1s/);
  await waitUntil(async () => (await callApi()) === '200 api says hi', 'the new api app answers');
});

test('mutual check warns about the processes started again, with how each last exited', async () => {
  const check = await runMutual(['check', '--state-dir', state]);
  assert.match(
    check.stdout,
    /‼ no process has had to be started again\n\s+3 processes were started again after exiting\n/,
    check.stdout,
  );
  assert.match(
    check.stdout,
    /the identity service: 1 time, the last after it exited \(signal SIGKILL\) at \S+; its log: \S+identity\.log/,
  );
  assert.match(check.stdout, /api's sidecar: 1 time, the last after it exited \(signal SIGKILL\)/);
  assert.match(check.stdout, /the app api: 1 time, the last after it exited \(signal SIGKILL\)/);
});

test('an app with restart: never stays down, and up says so', async () => {
  const batch = (await runtime()).services.find((s) => s.name === 'batch')!.app.pid;
  process.kill(batch, 'SIGKILL');
  await waitUntil(
    async () =>
      /the app batch exited \(signal SIGKILL\), and its restart policy says not to start it again/.test(
        up.output(),
      ),
    `up reports batch's exit (output: ${up.output()})`,
  );
  assert.equal((await runtime()).services.find((s) => s.name === 'batch')!.app.pid, batch);
  assert.doesNotMatch(up.output(), /the app batch started again/);
});

test('revoking a service identity in a running mesh: up mints its tokens again at once, and the new one certifies', async () => {
  const tokenFile = join(state, 'tokens', 'api.token');
  const old = (await readFile(tokenFile, 'utf8')).trim();
  const revoked = await runMutual([
    'identity',
    'token',
    'revoke',
    '--ns',
    'default',
    '--sa',
    'api',
    '--state-dir',
    state,
  ]);
  assert.equal(revoked.code, 0, revoked.stderr);
  await waitUntil(
    async () => /✓ tokens\s+3 join tokens minted again: .*revoked-tokens\.jsonl changed/.test(up.output()),
    `up re-mints (output: ${up.output()})`,
  );
  const fresh = (await readFile(tokenFile, 'utf8')).trim();
  assert.notEqual(fresh, old);
  const bundlePem = await readFile(join(state, 'ca', 'bundle.pem'), 'utf8');
  const client = createIdentityClient({
    url: (await runtime()).identity.apiUrl,
    serverId: 'spiffe://cluster.local/ns/mutual-system/sa/identity',
    trustBundlePem: () => bundlePem,
  });
  const certify = async (token: string) => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const csr = await createCsr({ privateKey, spiffeId: 'spiffe://cluster.local/ns/default/sa/api' });
    return client.certify(token, csr).then(
      (result) => result.spiffeId,
      (error: Error) => error.message,
    );
  };
  assert.equal(await certify(fresh), 'spiffe://cluster.local/ns/default/sa/api');
  assert.match(await certify(old), /was revoked/);
});

test('mutual down stops the processes started again too', async () => {
  const current = await runtime();
  const pids = [
    current.identity.pid,
    current.destination.pid,
    ...current.services.flatMap((service) => [service.app.pid, service.proxy.pid]),
  ].filter(isAlive);
  assert.ok(pids.length >= 7, `live processes: ${pids.length}`);
  const down = await runMutual(['down', '--state-dir', state]);
  assert.equal(down.code, 0, down.stderr);
  await waitUntil(async () => pids.every((pid) => !isAlive(pid)), 'every process stopped');
  assert.doesNotMatch(up.output().split('SIGTERM')[1] ?? '', /started again/);
});
