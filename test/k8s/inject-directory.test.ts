// `mutual inject DIR` (or -f DIR), as `kubectl apply -f k8s/` and `linkerd inject k8s/` take a
// directory: its .yaml, .yml and .json files in name order, not its subdirectories nor other files,
// printed as one stream kubectl reads, each file starting a document of its own, and the report
// naming each file. A directory without manifests, or whose files add up past the limit, is a
// usage error; a bad file stops the run before anything is printed.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../e2e/run-mutual.ts';
import { runInject } from './inject-harness.ts';

const REAL_DIR = join(repoRoot(), 'test', 'k8s', 'golden', 'real');

test('a directory: its manifest files in name order as one YAML stream, every workload injected, the report naming each file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-dir-'));
  try {
    await mkdir(join(dir, 'k8s', 'overlays'), { recursive: true });
    await copyFile(join(REAL_DIR, 'bookinfo.yaml'), join(dir, 'k8s', 'b-bookinfo.yaml'));
    // No newline at its end, and JSON: the next file still starts a document of its own.
    await writeFile(
      join(dir, 'k8s', 'a-pod.yaml'),
      'apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a, image: a}]}',
    );
    await writeFile(
      join(dir, 'k8s', 'c-config.json'),
      '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}',
    );
    await writeFile(join(dir, 'k8s', 'd-svc.yml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: d}\n');
    await writeFile(join(dir, 'k8s', 'README.md'), '# not a manifest\n');
    await copyFile(join(REAL_DIR, 'emojivoto-job.yml'), join(dir, 'k8s', 'overlays', 'job.yml'));
    const run = await runInject('k8s', dir);
    assert.equal(run.code, 0, run.stderr);
    const objects = parseAllDocuments(run.stdout)
      .map((doc) => {
        assert.equal(doc.errors.length, 0, String(doc.errors[0]));
        return doc.toJS() as { kind: string; metadata: { name: string } } | null;
      })
      .filter((object) => object !== null)
      .map((object) => `${object.kind}/${object.metadata.name}`);
    assert.deepEqual(objects, [
      'Pod/a',
      ...['details', 'ratings', 'reviews', 'productpage'].flatMap((name) => [
        `Service/${name}`,
        `ServiceAccount/bookinfo-${name}`,
        ...(name === 'reviews' ? ['v1', 'v2', 'v3'] : ['v1']).map((v) => `Deployment/${name}-${v}`),
      ]),
      'ConfigMap/c',
      'Service/d',
    ]);
    const report = run.stderr.trim().split('\n');
    assert.equal(report.length, 7, run.stderr);
    assert.equal(report[0], `pod/a (${join('k8s', 'a-pod.yaml')}:1): injected`);
    assert.equal(report[1], `deployment/details-v1 (${join('k8s', 'b-bookinfo.yaml')}:67): injected`);
    // Injected again: the same stream, every workload already injected.
    await writeFile(join(dir, 'again.yaml'), run.stdout);
    const again = await runInject('again.yaml', dir);
    assert.equal(again.stdout, run.stdout);
    assert.equal(again.stderr.match(/: skipped: already injected$/gm)?.length, 7);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a directory without manifest files is a usage error naming it; a bad file stops the run, nothing printed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-dir-'));
  try {
    await mkdir(join(dir, 'docs', 'sub'), { recursive: true });
    await writeFile(join(dir, 'docs', 'README.md'), '# nothing to inject\n');
    await writeFile(join(dir, 'docs', 'sub', 'pod.yaml'), 'apiVersion: v1\nkind: Pod\n');
    const empty = await runInject('docs', dir);
    assert.equal(empty.code, 2);
    assert.equal(empty.stdout, '');
    assert.match(
      empty.stderr,
      /^error\[MUTUAL_CLI_USAGE\]: docs is a directory without manifest files \(\.yaml, \.yml, \.json\) in it; subdirectories are not read/,
    );
    await mkdir(join(dir, 'bad'));
    await copyFile(join(REAL_DIR, 'bookinfo.yaml'), join(dir, 'bad', 'a.yaml'));
    await writeFile(join(dir, 'bad', 'b.yaml'), 'kind: [unclosed\n');
    const bad = await runInject('bad', dir);
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, '');
    assert.match(
      bad.stderr,
      new RegExp(`^error\\[MUTUAL_K8S_INJECT_YAML_INVALID\\]: ${join('bad', 'b.yaml')} is not valid YAML`),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
