// A mesh left running keeps its logs bounded: a 40-minute soak (bench/soak.bench.ts) saw every
// file in STATE/logs grow for as long as the mesh ran (each sidecar's by ~130 KB an hour with
// 2-minute certificates, an app's by whatever it prints). `up` now rotates a log past 10 MiB, as
// the kubelet does: the old content in <name>.log.1, the file truncated in place, and the process
// goes on writing at its new start (O_APPEND), with no hole of zero bytes.
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { LOG_MAX_BYTES } from '../../src/mesh/log-rotation.ts';
import { waitUntil } from '../../src/testing/mesh-pki.ts';
import { type RunningMesh, upMeshFile } from './mesh-processes.ts';
import { runMutual } from './run-mutual.ts';

let mesh: RunningMesh | undefined;

// Prints 11 MiB at once (an app's access log after a busy while), then a numbered tick every 100 ms.
const chattyApp = `
const line = 'x'.repeat(1023) + '\\n';
for (let i = 0; i < 11 * 1024; i++) process.stdout.write(line);
let tick = 0;
setInterval(() => console.log('tick ' + ++tick), 100);
require('node:http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');
`;

before(async () => {
  mesh = await upMeshFile('mutual-soak-log-rotation-', [
    'services:',
    '  - name: chatty',
    `    command: [node, -e, ${JSON.stringify(chattyApp)}]`,
    '    ports: [8080]',
  ]);
});

after(async () => {
  await mesh?.stop();
});

test('up rotates a log past 10 MiB: old lines in .log.1, the app goes on writing at the start of .log', async () => {
  const { state } = mesh!;
  const log = join(state, 'logs', 'chatty.log');
  const sizeOf = (path: string) =>
    stat(path).then(
      (s) => s.size,
      () => -1,
    );
  // up looks every 10 s.
  for (const deadline = Date.now() + 20_000; (await sizeOf(`${log}.1`)) <= LOG_MAX_BYTES; ) {
    assert.ok(Date.now() < deadline, `chatty.log not rotated within 20 s (${await sizeOf(log)} bytes)`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  // Ticks keep landing in the truncated file, from its start: no zero bytes where the old content was.
  const afterRotation = await sizeOf(log);
  await waitUntil(
    async () => (await sizeOf(log)) > afterRotation + 50,
    'the app keeps writing to chatty.log',
  );
  const current = await readFile(log);
  assert.ok(current.length < 1024 * 1024, `chatty.log is ${current.length} bytes after its rotation`);
  assert.equal(current.indexOf(0), -1, 'chatty.log holds zero bytes: the app wrote past a hole');
  assert.match(current.toString(), /^(x+\n)*tick \d+\n/);
  const rotated = await readFile(`${log}.1`, 'utf8');
  assert.ok(rotated.startsWith('x'.repeat(1023)), 'chatty.log.1 holds the first lines');
  // `mutual logs` shows the current file.
  const logs = await runMutual(['logs', 'chatty', '--state-dir', state]);
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /tick \d+\n$/);
});
