// The Certificates API when the identity service does not answer: the issuer and trust anchors are
// read from the files it serves them from (the state directory's CA, or the files its runtime.json
// argv names), with where from and why, and every file that cannot be read is a message, not a
// failed or hung answer: garbage, a private key, a missing file, a huge file, a FIFO. Fake mesh
// (real sockets, a refused identity admin port), real CA files made by pki.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fixedClock, systemClock } from '../../src/clock.ts';
import { createCaFileReader } from '../../src/dashboard/ca-files.ts';
import { createDashboard, type Dashboard } from '../../src/dashboard/index.ts';
import type { MeshRuntime } from '../../src/mesh/index.ts';
import { createIssuer, createTrustAnchor } from '../../src/pki/index.ts';
import { writeCaDirectory } from '../../src/store/index.ts';
import { type FakeAdmin, refusingUrl, startFakeAdmin, writeFakeRuntime } from './fake-mesh.ts';

const DAY_MS = 86_400_000;
let dir: string;
let stateDir: string;
let caDir: string;
let dashboard: Dashboard;
let identity: FakeAdmin | undefined;

async function get(path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(new URL(path, dashboard.url));
  return { status: response.status, body: await response.text() };
}

async function certificates() {
  const answer = await get('/api/certificates');
  assert.equal(answer.status, 200, answer.body);
  return { ...JSON.parse(answer.body), raw: answer.body };
}

const fingerprint = (pem: string) =>
  createHash('sha256').update(new X509Certificate(pem).raw).digest('hex').slice(0, 16);
const notAfterOf = (pem: string) => new Date(new X509Certificate(pem).validTo).toISOString();

async function setIdentityArgv(argv: string[]): Promise<void> {
  const file = join(stateDir, 'runtime.json');
  const runtime = JSON.parse(await readFile(file, 'utf8')) as MeshRuntime & { identity: { argv: string[] } };
  runtime.identity.argv = argv;
  await writeFile(file, JSON.stringify(runtime));
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-dashboard-ca-files-'));
  stateDir = join(dir, 'state');
  caDir = join(stateDir, 'ca');
  const anchor = await createTrustAnchor({ trustDomain: 'example.org', clock: systemClock });
  await writeCaDirectory(
    caDir,
    anchor,
    await createIssuer(anchor, { trustDomain: 'example.org', clock: systemClock, lifetimeMs: 20 * DAY_MS }),
  );
  const policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  await writeFakeRuntime(stateDir, { identityAdminUrl: await refusingUrl(), policyDir, services: [] });
  dashboard = await createDashboard(
    { stateDir, host: '127.0.0.1', port: 0, refreshMs: 0, checksTtlMs: 60_000 },
    { clock: systemClock },
  );
});

after(async () => {
  dashboard?.destroy();
  await identity?.close();
  await rm(dir, { recursive: true, force: true });
});

test('identity service refused: issuer and anchors from <state>/ca, with their expiry, where from and why', async () => {
  const c = await certificates();
  const issuerPem = await readFile(join(caDir, 'issuer.crt'), 'utf8');
  const anchorPem = await readFile(join(caDir, 'trust-anchor.crt'), 'utf8');
  assert.equal(c.identityService.reachable, false);
  assert.equal(c.source, 'files');
  assert.equal(c.files.from, caDir);
  assert.match(c.files.reason, /^the identity service is not answering: .*ECONNREFUSED/);
  assert.deepEqual(c.files.issuerCertificate, { path: join(caDir, 'issuer.crt'), error: null });
  assert.deepEqual(c.files.trustAnchors, { path: join(caDir, 'bundle.pem'), error: null });
  assert.equal(c.issuer.notAfter, notAfterOf(issuerPem));
  assert.equal(c.issuer.fingerprint, fingerprint(issuerPem));
  // 20 days left: amber by the CA thresholds (under 30 days), as from the identity service's metrics.
  assert.equal(c.issuer.status, 'warning');
  assert.ok(Math.abs(c.issuer.secondsLeft - 20 * 86_400) < 600, String(c.issuer.secondsLeft));
  assert.equal(c.trustAnchors.length, 1);
  assert.equal(c.trustAnchors[0].fingerprint, fingerprint(anchorPem));
  assert.equal(c.trustAnchors[0].notAfter, notAfterOf(anchorPem));
  assert.equal(c.trustAnchors[0].status, 'ok');
  // The Overview names the amber issuer as it does from the metrics.
  const overview = JSON.parse((await get('/api/overview')).body);
  assert.ok(
    overview.problems.some((p: any) => p.severity === 'warning' && /^the issuer expires at /.test(p.message)),
    JSON.stringify(overview.problems),
  );
});

test('an identity service that answers without the issuer sample: the files, saying so', async () => {
  identity = await startFakeAdmin('mutual_identity_certificates_issued_total 3\n');
  await setIdentityArgv([]);
  const file = join(stateDir, 'runtime.json');
  const runtime = JSON.parse(await readFile(file, 'utf8'));
  runtime.identity.adminUrl = identity.url;
  await writeFile(file, JSON.stringify(runtime));
  try {
    const c = await certificates();
    assert.equal(c.identityService.reachable, true);
    assert.equal(c.source, 'files');
    assert.equal(c.files.reason, 'the identity service answers but reports no issuer');
    assert.ok(c.issuer.notAfter);
    // With the sample back, the metrics are the source again.
    identity.metrics = `mutual_identity_issuer_expiry_timestamp_seconds ${Math.round(Date.now() / 1000) + 40 * 86_400}\n`;
    const back = await certificates();
    assert.equal(back.source, 'identity-service');
    assert.equal(back.files, null);
    assert.equal(back.issuer.status, 'ok');
  } finally {
    runtime.identity.adminUrl = await refusingUrl();
    await writeFile(file, JSON.stringify(runtime));
  }
});

test('an expired issuer on disk is expired, and an error on the Overview', async () => {
  const past = fixedClock(Date.now() - 400 * DAY_MS);
  const anchor = await createTrustAnchor({ trustDomain: 'example.org', clock: past });
  const old = join(dir, 'old-ca');
  await writeCaDirectory(
    old,
    anchor,
    await createIssuer(anchor, { trustDomain: 'example.org', clock: past, lifetimeMs: 365 * DAY_MS }),
  );
  await setIdentityArgv(['mutual', 'identity', 'serve', '--ca', old, '--state-dir', stateDir]);
  try {
    const c = await certificates();
    assert.equal(c.files.from, old);
    assert.equal(c.issuer.status, 'expired');
    assert.ok(c.issuer.secondsLeft < -30 * 86_400, String(c.issuer.secondsLeft));
    assert.equal(c.trustAnchors[0].status, 'ok');
    const overview = JSON.parse((await get('/api/overview')).body);
    assert.ok(
      overview.problems.some((p: any) => p.severity === 'error' && /^the issuer expired at /.test(p.message)),
      JSON.stringify(overview.problems),
    );
  } finally {
    await setIdentityArgv([]);
  }
});

test('bring-your-own CA files (--issuer-cert, --trust-anchors as JWKS), relative to the state directory', async () => {
  const byo = join(dir, 'byo');
  await mkdir(byo);
  const issuerPem = await readFile(join(caDir, 'issuer.crt'), 'utf8');
  await writeFile(join(byo, 'my-issuer.pem'), issuerPem);
  await writeFile(join(byo, 'roots.json'), await readFile(join(caDir, 'bundle.jwks.json')));
  await setIdentityArgv([
    'mutual',
    'identity',
    'serve',
    '--ca',
    join(dir, 'nowhere'),
    '--issuer-cert',
    '../byo/my-issuer.pem',
    '--issuer-key',
    '../byo/my-issuer.key',
    `--trust-anchors=${join(byo, 'roots.json')}`,
  ]);
  try {
    const c = await certificates();
    assert.equal(c.files.issuerCertificate.path, join(byo, 'my-issuer.pem'));
    assert.equal(c.files.trustAnchors.path, join(byo, 'roots.json'));
    assert.equal(c.files.from, byo);
    assert.equal(c.issuer.fingerprint, fingerprint(issuerPem));
    assert.equal(c.trustAnchors.length, 1);
    assert.equal(c.files.trustAnchors.error, null);
  } finally {
    await setIdentityArgv([]);
  }
});

test('hostile files: garbage, a private key, missing, huge, a FIFO: each a message, the other file still shown', async () => {
  const issuerPath = join(caDir, 'issuer.crt');
  const bundlePath = join(caDir, 'bundle.pem');
  const issuerPem = await readFile(issuerPath, 'utf8');
  const bundlePem = await readFile(bundlePath, 'utf8');
  const keyPem = await readFile(join(caDir, 'issuer.key'), 'utf8');
  const keyBody = keyPem.split('\n')[1]!;
  try {
    await writeFile(
      issuerPath,
      Buffer.from('\x00\xffnot a certificate -----BEGIN garbage'.repeat(1000), 'latin1'),
    );
    let c = await certificates();
    assert.equal(c.issuer, null);
    assert.match(
      c.files.issuerCertificate.error,
      /issuer\.crt: .*(no PEM block|BEGIN line has no matching END)/,
    );
    assert.equal(c.trustAnchors.length, 1, 'the anchors are still read');

    // A key where the certificate belongs: said, never shown.
    await writeFile(issuerPath, keyPem);
    c = await certificates();
    assert.match(c.files.issuerCertificate.error, /found "PRIVATE KEY" \(this is a private key/);
    assert.ok(!c.raw.includes(keyBody), 'no key material in the answer');

    await writeFile(issuerPath, issuerPem);
    await rm(bundlePath);
    c = await certificates();
    assert.equal(c.files.trustAnchors.error, `${bundlePath} does not exist`);
    assert.deepEqual(c.trustAnchors, []);
    assert.equal(c.issuer.fingerprint, fingerprint(issuerPem));

    // 2 GiB, sparse: refused by its size, not read.
    await writeFile(bundlePath, '');
    await truncate(bundlePath, 2 * 1024 ** 3);
    c = await certificates();
    assert.match(
      c.files.trustAnchors.error,
      /bundle\.pem is 2147483648 bytes; a certificate file is at most 1 MiB/,
    );
    await rm(bundlePath);

    // A FIFO no one writes to: reading it would hang the dashboard.
    execFileSync('mkfifo', [bundlePath]);
    c = await certificates();
    assert.match(c.files.trustAnchors.error, /bundle\.pem is a FIFO, not a certificate file/);
    await rm(bundlePath);
    await writeFile(bundlePath, bundlePem);
    c = await certificates();
    assert.equal(c.files.trustAnchors.error, null);
    assert.equal(c.trustAnchors.length, 1);
  } finally {
    await writeFile(issuerPath, issuerPem);
    await rm(bundlePath, { force: true });
    await writeFile(bundlePath, bundlePem);
  }
});

test('a changed issuer file is read again (same path, new certificate)', async () => {
  const issuerPath = join(caDir, 'issuer.crt');
  const first = (await certificates()).issuer.fingerprint;
  const saved = await readFile(issuerPath, 'utf8');
  const anchor = await createTrustAnchor({ trustDomain: 'example.org', clock: systemClock });
  const next = await createIssuer(anchor, { trustDomain: 'example.org', clock: systemClock });
  try {
    await writeFile(issuerPath, next.certificatePem);
    const second = (await certificates()).issuer;
    assert.notEqual(second.fingerprint, first);
    assert.equal(second.fingerprint, fingerprint(next.certificatePem));
  } finally {
    await writeFile(issuerPath, saved);
  }
});

test('an unchanged file is not read again: the same result until its size or mtime changes', async () => {
  const runtime = JSON.parse(await readFile(join(stateDir, 'runtime.json'), 'utf8')) as MeshRuntime;
  const reader = createCaFileReader();
  const first = await reader.read(runtime, stateDir);
  const second = await reader.read(runtime, stateDir);
  assert.equal(second.issuer, first.issuer, 'the cached read is returned');
  assert.equal(second.trustAnchors, first.trustAnchors);
  const issuerPath = join(caDir, 'issuer.crt');
  await writeFile(issuerPath, `${await readFile(issuerPath, 'utf8')}\n`);
  const third = await reader.read(runtime, stateDir);
  assert.notEqual(third.issuer, first.issuer, 'a changed file is read again');
  assert.deepEqual(third.issuer.value, first.issuer.value);
  assert.equal(third.trustAnchors, first.trustAnchors);
});
