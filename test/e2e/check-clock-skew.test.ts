// `mutual check` run on a clock three hours ahead of a real one-service mesh (libfaketime, from
// Debian's faketime package, for the check process only). The clock checks name the difference;
// the destination check, whose client certificate is signed on the check's clock and so is not
// valid to the service yet, failed 'socket hang up' for every address with the advice to compare
// destinations.yaml with mesh.yaml. It now says why it cannot ask.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type MeshUp, repoRoot, startMeshUp } from './run-mutual.ts';

const FAKETIME_LIBRARY = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const hasFaketime = existsSync(FAKETIME_LIBRARY);

let dir: string;
let up: MeshUp | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-check-clock-skew-'));
  if (!hasFaketime) return;
  const server = "require('http').createServer((q,s)=>s.end('ok')).listen(+process.env.PORT,'127.0.0.1')";
  await writeFile(
    join(dir, 'mesh.yaml'),
    `trustDomain: cluster.local\nservices:\n  - name: echo\n    namespace: demo\n    serviceAccount: echo\n    command: [node, -e, "${server}"]\n    ports: [8080]\n`,
  );
  up = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', join(dir, 'state')]);
  assert.match(up.output(), /The mesh is up/, up.output());
});

after(async () => {
  await up?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('check on a clock 3 hours ahead: the clocks are named, the destination check says why it cannot ask', {
  skip: hasFaketime ? false : 'faketime is not installed (apt-get install faketime)',
}, async () => {
  const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    execFile(
      process.execPath,
      [join(repoRoot(), 'bin', 'mutual.js'), 'check', '--state-dir', join(dir, 'state')],
      {
        env: { ...process.env, NO_COLOR: '1', LD_PRELOAD: FAKETIME_LIBRARY, FAKETIME: '+3h' },
        timeout: 30_000,
      },
      (error, out) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout: out }),
    );
  });
  assert.equal(code, 1, stdout);
  assert.match(
    stdout,
    /× identity service's clock agrees with this machine's\n\s+the identity service's clock is 3h 0m behind/,
  );
  assert.match(stdout, /echo: the sidecar of echo's clock is 3h 0m behind/);
  assert.match(
    stdout,
    /- destination service answers for every meshed service with its SPIFFE ID \(skipped: the destination service's clock is 3h 0m behind this machine's: a client certificate signed here is not valid to it/,
  );
  assert.doesNotMatch(stdout, /socket hang up|compare destinations\.yaml/);
});
