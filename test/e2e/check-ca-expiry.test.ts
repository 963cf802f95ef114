// `mutual check` on a state directory whose trust anchor expires within the warning period,
// followed as an operator follows it. Before, the issuer's fix (`mutual ca issuer`) made an issuer
// clamped to the same anchor, so the warning stayed; and the anchor's fix repeated "add the new
// root to bundle.pem" after that was done, never naming the next step. The CA checks read the
// files only, so no mesh is started.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fixedClock } from '../../src/clock.ts';
import { createIssuer, createTrustAnchor } from '../../src/pki/index.ts';
import { writeCaDirectory } from '../../src/store/index.ts';
import { runMutual } from './run-mutual.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-check-ca-expiry-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface CheckJson {
  checks: Array<{
    category: string;
    description: string;
    status: string;
    fix: string;
    results: Array<{ status: string; message: string }>;
  }>;
}

/** The failed results' messages of one check of `mutual check -o json`. */
async function failures(state: string, description: string): Promise<string[]> {
  const run = await runMutual(['check', '--state-dir', state, '-o', 'json']);
  const report = JSON.parse(run.stdout) as CheckJson;
  const entry = report.checks.find((check) => check.description === description);
  assert.ok(entry, `no check "${description}" in ${run.stdout}`);
  return entry.results.filter((result) => result.status === 'fail').map((result) => result.message);
}

const ANCHOR_LIFETIME = 'trust anchors are valid for at least the warning period';
const ISSUER_LIFETIME = 'issuer is valid for at least the warning period';

test('an anchor near its end: the issuer warning says to rotate the anchor, and each rotation step names the next', async () => {
  const state = join(dir, 'state');
  const ca = join(state, 'ca');
  const made = await runMutual([
    ...['ca', 'create', '--trust-domain', 'cluster.local', '--out', ca],
    ...['--anchor-lifetime', '30d', '--issuer-lifetime', '20d'],
  ]);
  assert.equal(made.code, 0, made.stderr);

  // The issuer expires first, but a new one under this anchor would be clamped to its 30 days.
  const [issuer] = await failures(state, ISSUER_LIFETIME);
  // 20 days less the moment since it was made, shown to the hour: 19d 23h, or 20d 0h rounded up.
  assert.match(issuer ?? '', /expires in (19d 23h|20d 0h)/);
  assert.match(issuer ?? '', /an issuer cannot outlive its root: .*rotate the trust anchor first/);
  const next = join(dir, 'next');
  assert.equal((await runMutual(['ca', 'issuer', '--ca', ca, '--out', next])).code, 0);
  await copyFile(join(next, 'issuer.crt'), join(ca, 'issuer.crt'));
  await copyFile(join(next, 'issuer.key'), join(ca, 'issuer.key'));
  const [clamped] = await failures(state, ISSUER_LIFETIME);
  assert.match(clamped ?? '', /expires in (29d 23h|30d 0h).*rotate the trust anchor first/);

  // Step 1 of the anchor's fix: a new CA, its root added to bundle.pem.
  const [before] = await failures(state, ANCHOR_LIFETIME);
  assert.doesNotMatch(before ?? '', /rotation under way/);
  const newca = join(dir, 'newca');
  assert.equal(
    (await runMutual(['ca', 'create', '--trust-domain', 'cluster.local', '--out', newca])).code,
    0,
  );
  const oldBundle = await readFile(join(ca, 'bundle.pem'), 'utf8');
  const newRoot = await readFile(join(newca, 'trust-anchor.crt'), 'utf8');
  await writeFile(join(ca, 'bundle.pem'), oldBundle + newRoot);
  // Both roots are named: a root added to bundle.pem widens who is trusted ('2 roots' said no more).
  const read = JSON.parse(
    (await runMutual(['check', '--state-dir', state, '-o', 'json'])).stdout,
  ) as CheckJson;
  assert.match(
    read.checks.find((check) => check.description === 'trust anchors can be read')?.results[0]?.message ?? '',
    /^2 roots: O=Mutual, CN=Mutual trust anchor cluster\.local \w+ \(until \S+\); O=Mutual, CN=Mutual trust anchor cluster\.local \w+ \(until /,
  );
  const [added] = await failures(state, ANCHOR_LIFETIME);
  assert.match(added ?? '', /rotation under way: .*bundle\.pem also holds .*next step: switch the issuer/);

  // Step 2: the new CA's issuer and anchor files into the state directory.
  for (const file of ['issuer.crt', 'issuer.key', 'trust-anchor.crt', 'trust-anchor.key'])
    await copyFile(join(newca, file), join(ca, file));
  const [switched] = await failures(state, ANCHOR_LIFETIME);
  assert.match(switched ?? '', /the issuer chains to .* now, last step: remove this root from .*bundle\.pem/);
  assert.deepEqual(await failures(state, ISSUER_LIFETIME), []);

  // Step 3: the old root dropped; nothing left to warn of.
  await writeFile(join(ca, 'bundle.pem'), newRoot);
  assert.deepEqual(await failures(state, ANCHOR_LIFETIME), []);
  assert.deepEqual(await failures(state, 'issuer chains to a current trust anchor'), []);
});

test('an anchor and issuer expired 10 days ago: one error each with a fix that works, no "expires in 0s" warnings', async () => {
  const state = join(dir, 'expired-state');
  const ca = join(state, 'ca');
  const clock = fixedClock(Date.now() - 40 * 86_400_000);
  const anchor = await createTrustAnchor({
    trustDomain: 'cluster.local',
    clock,
    lifetimeMs: 30 * 86_400_000,
  });
  await writeCaDirectory(ca, anchor, await createIssuer(anchor, { trustDomain: 'cluster.local', clock }));

  const run = await runMutual(['check', '--state-dir', state, '-o', 'json']);
  const report = JSON.parse(run.stdout) as CheckJson;
  const entry = (description: string) => report.checks.find((check) => check.description === description)!;
  // The warnings were 'expires in 0s, less than 60d' for certificates that expired 10 days ago.
  assert.equal(entry(ANCHOR_LIFETIME).status, 'skip');
  assert.equal(entry(ISSUER_LIFETIME).status, 'skip');
  const [issuer] = await failures(state, 'issuer is within its validity period');
  assert.match(
    issuer ?? '',
    /expired 10d .*has expired too, so no new issuer can be made under it: replace the whole CA/,
  );
  // The anchor's fix, followed as printed (was 'create a new anchor and issuer and roll them out').
  const fix = entry('trust anchors are within their validity period').fix;
  assert.match(
    fix,
    /`mutual ca create --trust-domain cluster\.local --out newca`, copy every file of newca into /,
  );
  const newca = join(dir, 'replacement');
  assert.equal(
    (await runMutual(['ca', 'create', '--trust-domain', 'cluster.local', '--out', newca])).code,
    0,
  );
  for (const file of [
    'trust-anchor.crt',
    'trust-anchor.key',
    'issuer.crt',
    'issuer.key',
    'bundle.pem',
    'bundle.jwks.json',
  ])
    await copyFile(join(newca, file), join(ca, file));
  const fixed = JSON.parse(
    (await runMutual(['check', '--state-dir', state, '-o', 'json'])).stdout,
  ) as CheckJson;
  const failing = fixed.checks.filter(
    (check) => (check.category === 'trust anchors' || check.category === 'issuer') && check.status !== 'ok',
  );
  assert.deepEqual(failing, []);
});
