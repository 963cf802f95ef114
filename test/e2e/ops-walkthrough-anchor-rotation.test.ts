// An operator rotates the trust anchor of a CA directory (a mesh's STATE/ca) as the README says:
// add the new root to bundle.pem, switch the issuer to the one `mutual ca create` made under it,
// drop the old root. The directory still holds the old root's trust-anchor.crt and key, so the
// next issuer rotation, `mutual ca issuer --ca DIR` as the README says, made an issuer under the
// dropped root and told the user to copy it in: the identity service refused it ("does not chain
// to any trust anchor"). Now `ca issuer` refuses such a directory, writes nothing and says which
// files to copy; once they are copied, the issuer it makes signs certificates the bundle verifies.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCa, runMutual } from './run-mutual.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-ops-anchor-rotation-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

test('after an anchor rotation, ca issuer refuses the stale anchor and names the files to copy', async () => {
  const ca = join(dir, 'ca');
  const fresh = join(dir, 'ca-new');
  await createCa(ca);
  await createCa(fresh);
  // 1. Trust both roots; 2. switch the issuer; 3. drop the old root.
  const oldBundle = await readFile(join(ca, 'bundle.pem'), 'utf8');
  const newBundle = await readFile(join(fresh, 'bundle.pem'), 'utf8');
  await writeFile(join(ca, 'bundle.pem'), oldBundle + newBundle);
  await copyFile(join(fresh, 'issuer.crt'), join(ca, 'issuer.crt'));
  await copyFile(join(fresh, 'issuer.key'), join(ca, 'issuer.key'));
  await writeFile(join(ca, 'bundle.pem'), newBundle);

  const refused = await runMutual(['ca', 'issuer', '--ca', ca, '--out', join(dir, 'next')]);
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(refused.stderr, /MUTUAL_PKI_ANCHOR_NOT_IN_BUNDLE/);
  assert.match(refused.stderr, /trust-anchor\.crt .* is not one of the 1 root\(s\) in .*bundle\.pem/);
  assert.match(refused.stderr, /copy the new root's trust-anchor\.crt and trust-anchor\.key/);
  assert.equal(await exists(join(dir, 'next', 'issuer.crt')), false, 'nothing is written');

  // The fix the message names: the new root's files beside its bundle.
  await copyFile(join(fresh, 'trust-anchor.crt'), join(ca, 'trust-anchor.crt'));
  await copyFile(join(fresh, 'trust-anchor.key'), join(ca, 'trust-anchor.key'));
  const made = await runMutual(['ca', 'issuer', '--ca', ca, '--out', join(dir, 'next')]);
  assert.equal(made.code, 0, made.stderr);
  await copyFile(join(dir, 'next', 'issuer.crt'), join(ca, 'issuer.crt'));
  await copyFile(join(dir, 'next', 'issuer.key'), join(ca, 'issuer.key'));
  const spiffeId = 'spiffe://cluster.local/ns/demo/sa/web';
  const issued = await runMutual([
    'cert',
    'issue',
    '--ca',
    ca,
    '--spiffe-id',
    spiffeId,
    '--out',
    join(dir, 'web'),
  ]);
  assert.equal(issued.code, 0, issued.stderr);
  const verified = await runMutual([
    'cert',
    'verify',
    '--bundle',
    join(ca, 'bundle.pem'),
    '--cert',
    join(dir, 'web', 'cert.pem'),
    '--spiffe-id',
    spiffeId,
  ]);
  assert.equal(verified.code, 0, verified.stderr + verified.stdout);
});
