// `mutual inject` on real manifests kept verbatim (golden/real/, see SOURCES.md), as a user diffs
// or commits its output: a document written kubectl's way (list dashes level with their key) comes
// back with only the injected lines added, every object valid, and injecting the output again
// changes nothing.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../e2e/run-mutual.ts';
import { injectText, runInject } from './inject-harness.ts';

const REAL_DIR = join(repoRoot(), 'test', 'k8s', 'golden', 'real');
const inject = runInject;

/** The lines of `original` missing from `printed` in order: what a diff shows as changed or removed. */
function changedLines(original: string, printed: string): string[] {
  const out = printed.split('\n');
  const missing: string[] = [];
  let at = 0;
  for (const line of original.split('\n')) {
    const found = out.indexOf(line, at);
    if (found === -1) missing.push(line);
    else at = found + 1;
  }
  return missing;
}

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  Deployment,
  StatefulSet,
  Job,
};

test("bookinfo and emojivoto, written kubectl's way: the injected output is the file with lines added, nothing re-indented; every workload valid", async () => {
  for (const [file, injected] of [
    ['bookinfo.yaml', 6],
    ['emojivoto-job.yml', 4],
  ] as const) {
    const original = await readFile(join(REAL_DIR, file), 'utf8');
    const run = await inject(file, REAL_DIR);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr.match(/: injected$/gm)?.length, injected, run.stderr);
    assert.deepEqual(changedLines(original, run.stdout), [], `${file}: lines of the original changed`);
    for (const doc of parseAllDocuments(run.stdout)) {
      const object = doc.toJS() as { kind?: string } | null;
      const Model = MODELS[object?.kind ?? ''];
      if (Model) new Model(object as never).validate();
    }
  }
});

test('every real sample injected twice is injected once: the second run prints the first byte for byte, each workload "already injected"', async () => {
  for (const file of [
    'bookinfo.yaml',
    'emojivoto-job.yml',
    'cassandra-statefulset.yaml',
    'microservices-demo-excerpt.yaml',
  ]) {
    const first = await inject(file, REAL_DIR);
    assert.equal(first.code, 0, first.stderr);
    const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-real-'));
    try {
      await writeFile(join(dir, file), first.stdout);
      const second = await inject(file, dir);
      assert.equal(second.code, 0, second.stderr);
      assert.equal(second.stdout, first.stdout, file);
      const lines = second.stderr.trim().split('\n');
      assert.ok(
        lines.length > 0 && lines.every((line) => line.endsWith(': skipped: already injected')),
        second.stderr,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});

test('a file of comments only (a kustomize or Helm placeholder) is printed as it is, not emptied', async () => {
  const text = '# Source: chart/templates/disabled.yaml\n# nothing rendered: the feature is off\n';
  const run = await injectText('placeholder.yaml', text);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, text);
  assert.equal(run.stderr, 'placeholder.yaml: no pods or workloads found; printed unchanged\n');
});
