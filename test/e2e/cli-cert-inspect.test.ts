// `mutual cert inspect -o json` of a certificate that is not valid yet (issued on a clock ahead,
// as a skewed signer does): the text said "not valid for another …", the JSON only isExpired:
// false, so a script reading it took the certificate for good.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, type TestPki } from '../../src/testing/mesh-pki.ts';
import { runMutual } from './run-mutual.ts';

let dir: string;
let pki: TestPki;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-cli-cert-inspect-'));
  pki = await createTestPki(dir);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('cert inspect -o json says a certificate is not valid yet, as the text does', async () => {
  const future = await pki.workload('future', { atMs: Date.now() + 2 * 3_600_000, lifetimeMs: 3_600_000 });
  const text = await runMutual(['cert', 'inspect', future.certFile]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /not valid for another 1h 59m|not valid for another 2h/);
  const [leaf] = JSON.parse((await runMutual(['cert', 'inspect', future.certFile, '-o', 'json'])).stdout);
  assert.equal(leaf.isNotYetValid, true);
  assert.equal(leaf.isExpired, false);

  const expired = await pki.workload('expired', { atMs: Date.now() - 2 * 3_600_000, lifetimeMs: 3_600_000 });
  const [old] = JSON.parse((await runMutual(['cert', 'inspect', expired.certFile, '-o', 'json'])).stdout);
  assert.deepEqual([old.isNotYetValid, old.isExpired], [false, true]);
  const now = await pki.workload('now');
  const [current] = JSON.parse((await runMutual(['cert', 'inspect', now.certFile, '-o', 'json'])).stdout);
  assert.deepEqual([current.isNotYetValid, current.isExpired], [false, false]);
});
