// `npm run demo` started every app at once, so vote-bot's first call could reach web's sidecar
// before web's app listened: answered 502, and a fresh demo showed `vote-bot → web` at 99.8 %
// NON_5XX in `mutual edges` (found by the README walkthrough). `up` now starts an app once the
// apps it calls listen; services that call each other (a cycle) do not wait on one another.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import {
  helloServer,
  type RecordedProcess,
  type RunningMesh,
  readRuntime,
  upMeshFile,
} from './mesh-processes.ts';

let mesh: RunningMesh | undefined;

/** Listens on $PORT only after `delayMs`, as an app that loads something first. */
const slowServer = (delayMs: number) => `setTimeout(() => { ${helloServer('hi')} }, ${delayMs})`;

/** Calls $API_URL once, at once, and prints the status; then stays up. */
const eagerClient =
  "fetch(process.env.API_URL).then((r) => console.log('first call: ' + r.status), (e) => console.log('first call: ' + e)); setInterval(() => {}, 1000)";

/** Two services that call each other: neither may wait for the other. */
const peer = (upstream: string) =>
  `${helloServer('peer')}; setTimeout(() => fetch(process.env.${upstream}_URL).then((r) => console.log(\`peer call: \${r.status}\`)), 300); setInterval(() => {}, 1000)`;

before(async () => {
  mesh = await upMeshFile('mutual-readme-app-order-', [
    'services:',
    '  - name: api',
    `    command: [node, -e, ${JSON.stringify(slowServer(1500))}]`,
    '    ports: [8080]',
    '  - name: bot',
    `    command: [node, -e, ${JSON.stringify(eagerClient)}]`,
    '    upstreams: [api]',
    '  - name: ping',
    `    command: [node, -e, ${JSON.stringify(peer('PONG'))}]`,
    '    ports: [8080]',
    '    upstreams: [pong]',
    '  - name: pong',
    `    command: [node, -e, ${JSON.stringify(peer('PING'))}]`,
    '    ports: [8080]',
    '    upstreams: [ping]',
  ]);
});

after(async () => {
  await mesh?.stop();
});

interface Runtime {
  services: Array<{ name: string; app: RecordedProcess }>;
}

async function appLog(name: string): Promise<string> {
  const runtime = await readRuntime<Runtime>(mesh!.state);
  return readFile(runtime.services.find((service) => service.name === name)!.app.log, 'utf8');
}

test('up: an app that calls another starts once that one listens, so its first call is answered', async () => {
  let log = '';
  for (let attempt = 0; attempt < 100 && !log.includes('first call'); attempt++) {
    log = await appLog('bot');
    if (!log.includes('first call')) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.match(log, /first call: 200/, `bot's log:\n${log}\nup:\n${mesh!.up.output()}`);
});

test('up: services that call each other both start (no wait on a cycle)', async () => {
  // upMeshFile failed already if the mesh did not come up; both peers' apps run and answer.
  let logs = '';
  for (let attempt = 0; attempt < 100 && (logs.match(/peer call: 200/g) ?? []).length < 2; attempt++) {
    logs = (await appLog('ping')) + (await appLog('pong'));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal((logs.match(/peer call: 200/g) ?? []).length, 2, logs);
});
