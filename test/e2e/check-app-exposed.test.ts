// `mutual check` on a loopback mesh whose app listens on every interface, as python3 -m
// http.server does by default: other machines reach it in plain text past its sidecar. `up` warns
// once at start; check must keep saying so, for that app only.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runMutual, startMeshUp } from './run-mutual.ts';

const DESCRIPTION = 'apps listen only where their sidecar guards them';
let dir: string | undefined;

after(async () => {
  if (!dir) return;
  await runMutual(['down', '--state-dir', join(dir, 'state')]);
  await rm(dir, { recursive: true, force: true });
});

test('check fails for the app on 0.0.0.0 (naming it, where it listens and the fix), not for the one on 127.0.0.1', async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-check-exposed-'));
  const file = join(dir, 'mesh.yaml');
  await writeFile(
    file,
    [
      'services:',
      '  - name: exposed',
      '    command: python3 -m http.server $PORT',
      '    ports: [8000]',
      '  - name: guarded',
      '    command: python3 -m http.server $PORT --bind 127.0.0.1',
      '    ports: [8000]',
      '',
    ].join('\n'),
  );
  const state = join(dir, 'state');
  const up = await startMeshUp(['-f', file, '--state-dir', state]);
  try {
    assert.match(up.output(), /The mesh is up/, up.output());

    const table = await runMutual(['check', '--state-dir', state]);
    assert.equal(table.code, 1, table.stdout + table.stderr);
    // The failure and its subjects, up to the next check's line.
    const block = /^× apps listen only where their sidecar guards them\n((?: {4}.*\n)+)/m.exec(table.stdout);
    assert.ok(block, table.stdout);
    assert.match(
      block[1]!,
      /^ {4}exposed: listens on (0\.0\.0\.0|\[::\]):\d+ \(its \$PORT for port 8000\): other machines reach it there in plain text, past its sidecar$/m,
    );
    assert.doesNotMatch(block[1]!, /guarded/);
    assert.match(
      block[1]!,
      /fix: make the app listen on 127\.0\.0\.1:\$PORT only .*`python3 -m http\.server \$PORT --bind 127\.0\.0\.1`/,
    );

    const json = await runMutual(['check', '--state-dir', state, '-o', 'json']);
    assert.equal(json.code, 1, json.stderr);
    const report = JSON.parse(json.stdout) as {
      checks: Array<{
        description: string;
        severity: string;
        status: string;
        results: Array<Record<string, string>>;
      }>;
    };
    const entry = report.checks.find((check) => check.description === DESCRIPTION);
    assert.ok(entry, `no check "${DESCRIPTION}" in ${json.stdout}`);
    assert.equal(entry.severity, 'error');
    assert.equal(entry.status, 'fail');
    const bySubject = Object.fromEntries(entry.results.map((result) => [result.subject, result.status]));
    assert.deepEqual(bySubject, { exposed: 'fail', guarded: 'ok' });
  } finally {
    await up.stop();
  }
});
