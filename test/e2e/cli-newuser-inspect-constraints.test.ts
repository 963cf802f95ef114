// `mutual cert inspect` of a CA shows what it may sign, as `step certificate inspect` and
// `openssl x509 -text` show the Name Constraints: an issuer made by `ca create` (restricted to
// spiffe://<td>/...) and one made with --no-name-constraint looked the same.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runMutual } from './run-mutual.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-inspect-constraints-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('cert inspect shows the name constraints of CA certificates, none for leaves', async () => {
  for (const [name, extra] of [
    ['constrained', []],
    ['open', ['--no-name-constraint']],
  ] as const) {
    const created = await runMutual([
      ...['ca', 'create', '--trust-domain', 'cluster.local', '--out', join(dir, name), ...extra],
    ]);
    assert.equal(created.code, 0, created.stderr);
  }
  const constrained = await runMutual(['cert', 'inspect', join(dir, 'constrained', 'issuer.crt')]);
  assert.match(constrained.stdout, /\n {2}constraints {4}names permitted: URI:cluster\.local\n/);
  const open = await runMutual(['cert', 'inspect', join(dir, 'open', 'issuer.crt')]);
  assert.match(open.stdout, /\n {2}constraints {4}none \(may sign any name\)\n/);
  const anchor = await runMutual([
    'cert',
    'inspect',
    join(dir, 'constrained', 'trust-anchor.crt'),
    '-o',
    'json',
  ]);
  assert.equal(JSON.parse(anchor.stdout)[0].nameConstraints, null);
  const json = await runMutual(['cert', 'inspect', join(dir, 'constrained', 'issuer.crt'), '-o', 'json']);
  assert.deepEqual(JSON.parse(json.stdout)[0].nameConstraints, {
    permitted: ['URI:cluster.local'],
    excluded: [],
  });
  const issued = await runMutual([
    ...['cert', 'issue', '--ca', join(dir, 'constrained'), '--spiffe-id', 'spiffe://cluster.local/ns/a/sa/b'],
    ...['--out', join(dir, 'leaf')],
  ]);
  assert.equal(issued.code, 0, issued.stderr);
  const leaf = await runMutual(['cert', 'inspect', join(dir, 'leaf', 'cert.pem'), '-o', 'json']);
  const [leafView, issuerView] = JSON.parse(leaf.stdout);
  assert.equal('nameConstraints' in leafView, false);
  assert.deepEqual(issuerView.nameConstraints.permitted, ['URI:cluster.local']);
});
