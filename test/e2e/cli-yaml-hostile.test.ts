// Hostile YAML given to the commands that read a user's YAML (mutual up -f, policy check, inject),
// with the real binary: a map of 200 000 keys (10 MB), a billion laughs, a 50 MB file, keys
// written twice. Each gets an answer, in the command's own error code, naming the file.
import assert from 'node:assert/strict';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCa, runMutual } from './run-mutual.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-yaml-hostile-'));
  await createCa(join(dir, 'ca'));
  await writeFile(join(dir, 'laughs.yaml'), billionLaughs());
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Nine levels of nine aliases each: 9^9 strings once expanded, in 700 bytes. */
function billionLaughs(): string {
  const lines = ['a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
  for (const [i, name] of [...'bcdefghi'].entries())
    lines.push(`${name}: &${name} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(', ')}]`);
  return `${lines.join('\n')}\n`;
}

/** A ConfigMap of `keys` entries (200 000: 10 MB), as `kubectl create configmap --from-env-file` makes. */
function bigConfigMap(keys: number): string {
  const data = Array.from({ length: keys }, (_, i) => `  key${i}: "${'x'.repeat(40)}"\n`).join('');
  return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n${data}`;
}

test('a 10 MB manifest of 200 000 keys in one map is read, not a hang (the duplicate-key check took minutes)', async () => {
  const file = join(dir, 'big.yaml');
  const text = bigConfigMap(200_000);
  await writeFile(file, text);
  // The timeouts only tell an answer from a hang: before, inject took over 3 minutes.
  const injected = await runMutual(['inject', file, '--trust-anchors-file', join(dir, 'ca', 'bundle.pem')], {
    timeoutMs: 90_000,
  });
  assert.equal(injected.code, 0, injected.stderr);
  assert.equal(injected.stdout, text);
  assert.match(injected.stderr, /no pods or workloads found; printed unchanged/);
  const checked = await runMutual(['policy', 'check', file], { timeoutMs: 90_000 });
  assert.equal(checked.code, 1, checked.stderr);
  assert.match(
    checked.stdout,
    /big\.yaml:2:7: error\[MUTUAL_POLICY_INVALID\]: kind: kind "ConfigMap" is not a policy kind/,
  );
});

test('a billion laughs: policy check and up name the file and the cause in their own code, never MUTUAL_INTERNAL', async () => {
  const file = join(dir, 'laughs.yaml');
  const checked = await runMutual(['policy', 'check', file]);
  assert.equal(checked.code, 1, checked.stdout + checked.stderr);
  assert.match(
    checked.stdout,
    /laughs\.yaml:1:1: error\[MUTUAL_POLICY_YAML_INVALID\]: its aliases \(\*name\) expand too far \(aliases of aliases, as in a "billion laughs" attack\); write the repeated parts out/,
  );
  const up = await runMutual(['up', '-f', file, '--state-dir', join(dir, 'state')]);
  assert.equal(up.code, 1, up.stderr);
  assert.match(
    up.stderr,
    /^error\[MUTUAL_MESH_CONFIG_INVALID\]: \S+laughs\.yaml has a problem:\n {2}\S+laughs\.yaml:1:1: not valid YAML: its aliases \(\*name\) expand too far/,
  );
  for (const run of [checked, up]) assert.doesNotMatch(run.stdout + run.stderr, /MUTUAL_INTERNAL|\n\s+at /);
});

test('a 50 MB file given as mesh.yaml is refused by its size, in one line, before it is read', async () => {
  const file = join(dir, 'huge.bin');
  await writeFile(file, '');
  await truncate(file, 50_000_000);
  const up = await runMutual(['up', '-f', file, '--state-dir', join(dir, 'state')]);
  assert.equal(up.code, 1, up.stderr);
  assert.equal(
    up.stderr.split('\n')[0],
    `error[MUTUAL_MESH_CONFIG_INVALID]: mesh file ${file} is 50000000 bytes; at most 1 MiB are read: a mesh file is a few kilobytes of YAML; is it the right file? Pass one with -f, e.g. -f examples/demo/mesh.yaml`,
  );
  assert.equal(up.stderr.split('\n').length, 3, up.stderr);
});

test('a mesh file of garbage lists its first 20 problems and counts the rest', async () => {
  const file = join(dir, 'garbage.yaml');
  await writeFile(file, Array.from({ length: 60 }, (_, i) => `key${i} value\n: [\n`).join(''));
  const up = await runMutual(['up', '-f', file, '--state-dir', join(dir, 'state')]);
  assert.equal(up.code, 1, up.stderr);
  const listed = up.stderr.split('\n').filter((line) => line.includes('garbage.yaml:'));
  assert.equal(listed.length, 20, up.stderr);
  assert.match(up.stderr, /\n {2}… and \d+ more \(is it a mesh file\?\)\n/);
});

test('keys written twice are still refused at file:line in each reader', async () => {
  await writeFile(join(dir, 'twice-mesh.yaml'), 'trustDomain: a.local\ntrustDomain: b.local\nservices: []\n');
  const up = await runMutual(['up', '-f', join(dir, 'twice-mesh.yaml'), '--state-dir', join(dir, 'state')]);
  assert.equal(up.code, 1, up.stderr);
  assert.match(
    up.stderr,
    /twice-mesh\.yaml:2:1: not valid YAML: Map keys must be unique: "trustDomain" is written twice/,
  );
  await writeFile(
    join(dir, 'twice-policy.yaml'),
    'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a, name: b}\nspec: {mtls: {mode: STRICT}}\n',
  );
  const checked = await runMutual(['policy', 'check', join(dir, 'twice-policy.yaml')]);
  assert.equal(checked.code, 1, checked.stdout);
  assert.match(
    checked.stdout,
    /twice-policy\.yaml:3:21: error\[MUTUAL_POLICY_YAML_INVALID\]: Map keys must be unique: "name"/,
  );
  await writeFile(
    join(dir, 'twice-pod.yaml'),
    'apiVersion: v1\nkind: Pod\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a, image: b}]}\n',
  );
  const injected = await runMutual([
    'inject',
    join(dir, 'twice-pod.yaml'),
    '--trust-anchors-file',
    join(dir, 'ca', 'bundle.pem'),
  ]);
  assert.equal(injected.code, 1, injected.stderr);
  assert.equal(injected.stdout, '');
  assert.match(injected.stderr, /twice-pod\.yaml:3:1: Map keys must be unique: "kind" is written twice/);
});
