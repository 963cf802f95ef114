// A service that only calls others and is done (`restart: never`, exit 0: a batch job) is
// complete, as a Kubernetes pod that exited 0 is: `mutual check` failed "app is running" for it for
// as long as the mesh ran ("callers get connection errors": it has none). One that failed still
// fails, saying how it ended.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitUntil } from '../../src/testing/mesh-pki.ts';
import {
  helloServer,
  type RecordedProcess,
  type RunningMesh,
  readRuntime,
  upMeshFile,
} from './mesh-processes.ts';
import { runMutual } from './run-mutual.ts';

let mesh: RunningMesh | undefined;

/** Calls api once through its sidecar, then exits with `code`. */
const job = (code: number) =>
  `fetch(process.env.API_URL).then((r) => r.text()).then((t) => { console.log(t); process.exit(${code}); })`;

before(async () => {
  mesh = await upMeshFile('mutual-app-completed-', [
    'services:',
    '  - name: api',
    `    command: [node, -e, ${JSON.stringify(helloServer('hi'))}]`,
    '    ports: [8080]',
    '  - name: job',
    `    command: [node, -e, ${JSON.stringify(job(0))}]`,
    '    upstreams: [api]',
    '    restart: never',
    '  - name: broken',
    `    command: [node, -e, ${JSON.stringify(job(3))}]`,
    '    upstreams: [api]',
    '    restart: never',
  ]);
});

after(async () => {
  await mesh?.stop();
});

interface Runtime {
  services: Array<{ name: string; app: RecordedProcess & { exit?: { code: number | null } } }>;
}

test('check: a client-only app that exited 0 under restart: never is complete; one that exited 3 fails', async () => {
  const { state, up } = mesh!;
  const exits = async () =>
    (await readRuntime<Runtime>(state)).services.map((s) => `${s.name}=${s.app.exit?.code ?? '-'}`).join(' ');
  // runtime.json records how each ended (written just after up reports it).
  await waitUntil(
    async () => (await exits()) === 'api=- job=0 broken=3',
    `both jobs ran (output: ${up.output()})`,
  );
  assert.match(
    up.output(),
    /the app job exited \(code 0\), and its restart policy says not to start it again/,
  );
  const check = await runMutual(['check', '--state-dir', state]);
  assert.match(
    check.stdout,
    /× app is running\n\s+broken: the app \(pid \d+\) has exited with code 3 at \S+, not to be started again/,
  );
  assert.doesNotMatch(check.stdout, /\n\s+job: /, 'job is not among the failures');
  // Its own result passes, saying why it is not running (the text shows it beside its name).
  const json = await runMutual(['check', '--state-dir', state, '-o', 'json']);
  const checks = (JSON.parse(json.stdout) as { checks: Array<{ description: string; results: unknown[] }> })
    .checks;
  const results = checks.find((check) => check.description === 'app is running')!.results as Array<{
    status: string;
    subject?: string;
    message: string;
  }>;
  const jobResult = results.find((result) => result.subject === 'job');
  assert.equal(jobResult?.status, 'ok', JSON.stringify(results));
  assert.match(jobResult.message, /^completed, exited with code 0 at \S+$/);
});
