// Issuer and trust anchors are files the identity service watches. With a real identity-service
// process and a workload renewing 5-second certificates: an issuer replaced on disk (Kubernetes
// Secret style, an atomic `..data` symlink swap) is used for the next certificate with no restart;
// an issuer with the wrong key, an expired one and one under no anchor are refused (event +
// metric) while the old issuer keeps serving; an anchor rotation in three steps (add root, switch
// issuer, drop old root) completes while two workloads keep mutually trusted certificates.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type Clock, systemClock } from '../../src/clock.ts';
import { createJoinTokenIssuer, loadOrCreateJoinTokenKey } from '../../src/identity/index.ts';
import {
  bundleToPem,
  type CertificateAuthority,
  createIssuer,
  createPeerVerifier,
  createTrustAnchor,
  createTrustBundle,
  parseBundlePem,
  parseCertificatesPem,
  privateKeyToPem,
} from '../../src/pki/index.ts';
import {
  createWorkloadIdentity,
  type WorkloadEvent,
  type WorkloadIdentity,
} from '../../src/workload/index.ts';
import { type IdentityServiceProcess, startIdentityService } from './run-mutual.ts';

const TD = 'cluster.local';
const DAY_MS = 86_400_000;
const IDENTITY_ID = `spiffe://${TD}/ns/mutual-system/sa/identity`;
const dirs: string[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const daysAgo = (days: number): Clock => ({ now: () => Date.now() - days * DAY_MS });

async function anchor(): Promise<CertificateAuthority> {
  return createTrustAnchor({ trustDomain: TD, clock: daysAgo(10), lifetimeMs: 365 * DAY_MS });
}

async function issuerUnder(root: CertificateAuthority, clock: Clock = systemClock, lifetimeMs = 30 * DAY_MS) {
  return createIssuer(root, { trustDomain: TD, clock, lifetimeMs });
}

function issuerFiles(issuer: CertificateAuthority, key: CertificateAuthority = issuer) {
  return { 'issuer.crt': issuer.certificatePem, 'issuer.key': privateKeyToPem(key.keys.privateKey) };
}

function bundleFile(...roots: CertificateAuthority[]) {
  return { 'bundle.pem': bundlePemOf(...roots) };
}

function bundlePemOf(...roots: CertificateAuthority[]) {
  return bundleToPem(
    createTrustBundle(
      TD,
      roots.map((root) => Buffer.from(root.certificate.rawData)),
    ),
  );
}

/** Writes files the way kubelet updates a Secret volume: a new timestamped dir, then `..data` swapped. */
async function writeSecretVolume(dir: string, files: Record<string, string>) {
  const version = `..${Date.now()}_${Math.random().toString(16).slice(2)}`;
  await mkdir(join(dir, version), { recursive: true });
  for (const [name, contents] of Object.entries(files)) await writeFile(join(dir, version, name), contents);
  let previous: string | undefined;
  try {
    previous = await readlink(join(dir, '..data'));
  } catch {}
  await symlink(version, join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const name of Object.keys(files)) {
    await symlink(join('..data', name), join(dir, name)).catch(() => {});
  }
  if (previous) await rm(join(dir, previous), { recursive: true, force: true });
}

/** Writes each file to a temporary name and renames it over the old one (atomic replace). */
async function writeAtomically(dir: string, files: Record<string, string>) {
  for (const [name, contents] of Object.entries(files)) {
    await writeFile(join(dir, `.${name}.tmp`), contents);
    await rename(join(dir, `.${name}.tmp`), join(dir, name));
  }
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function metric(service: IdentityServiceProcess, pattern: RegExp): Promise<number> {
  const text = await (await fetch(new URL('/metrics', service.adminUrl))).text();
  return Number(pattern.exec(text)?.[1] ?? 0);
}

async function startService(caDir: string, stateDir: string) {
  const service = await startIdentityService(caDir, stateDir, ['--lifetime', '4s', '--skew', '1s']);
  cleanups.push(() => service.stop());
  let log = '';
  service.child.stderr!.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  return { service, log: () => log };
}

interface Workload {
  readonly identity: WorkloadIdentity;
  readonly events: WorkloadEvent[];
}

async function startWorkload(
  service: IdentityServiceProcess,
  stateDir: string,
  sa: string,
  bundlePem: string,
): Promise<Workload> {
  // The key `mutual identity serve --state-dir DIR` signs join tokens with lives in DIR/identity.
  const key = await loadOrCreateJoinTokenKey(join(stateDir, 'identity'));
  const token = await createJoinTokenIssuer({ signingKey: key.privateKey, clock: systemClock }).mint({
    namespace: 'demo',
    serviceAccount: sa,
    ttlMs: 600_000,
  });
  const events: WorkloadEvent[] = [];
  const identity = createWorkloadIdentity({
    spiffeId: `spiffe://${TD}/ns/demo/sa/${sa}`,
    identityUrl: service.apiUrl.href.replace(/\/$/, ''),
    identityServerId: IDENTITY_ID,
    readToken: async () => token,
    initialBundlePem: bundlePem,
    clock: systemClock,
    retryBaseMs: 200,
    retryMaxMs: 1000,
    bundleWaitS: 2,
    onEvent: (event) => events.push(event),
  });
  cleanups.push(() => identity.close());
  identity.start();
  await until(`the first certificate of ${sa}`, () => identity.current() !== undefined || undefined);
  return { identity, events };
}

/** The issuer certificate (DER) that signed the workload's current certificate. */
function signerOf(workload: Workload): Buffer {
  const chain = parseCertificatesPem(workload.identity.current()!.certificateChainPem, 'chain');
  return Buffer.from(chain[1]!.der);
}

function isSignedBy(workload: Workload, issuer: CertificateAuthority): boolean {
  return signerOf(workload).equals(Buffer.from(issuer.certificate.rawData));
}

/** Waits for a certificate issued after `since` events, and returns the new event count. */
async function nextCertificate(workload: Workload, since = workload.events.length): Promise<number> {
  await until('the next certificate', () =>
    workload.events.slice(since).some((event) => event.kind === 'issued'),
  );
  return workload.events.length;
}

/** Each workload's certificate verifies against the other's bundle, as peers would check. */
function assertMutuallyTrusted(a: Workload, b: Workload) {
  for (const [peer, verifier] of [
    [a, b],
    [b, a],
  ] as const) {
    const credentials = peer.identity.current()!;
    const anchors = parseBundlePem(verifier.identity.current()!.trustBundlePem).rootsDer;
    const chain = parseCertificatesPem(credentials.certificateChainPem, 'chain').map((cert) => cert.der);
    const verdict = createPeerVerifier({ anchors }).verifySvid(chain, { expectedId: credentials.spiffeId });
    assert.ok(verdict.ok, `${credentials.spiffeId}: ${JSON.stringify(verdict)}`);
  }
}

test('an issuer replaced on disk is used without a restart; bad issuers are refused and the old one keeps serving', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-issuer-reload-'));
  dirs.push(dir);
  const root = await anchor();
  const first = await issuerUnder(root);
  const secret = join(dir, 'secret');
  await writeSecretVolume(secret, { ...issuerFiles(first), ...bundleFile(root) });
  const { service, log } = await startService(secret, join(dir, 'state'));
  const pid = service.child.pid;
  const web = await startWorkload(service, join(dir, 'state'), 'web', bundlePemOf(root));
  assert.ok(isSignedBy(web, first));

  // A new issuer under the same anchor, swapped in as kubelet does: the next certificate uses it.
  const second = await issuerUnder(root);
  await writeSecretVolume(secret, { ...issuerFiles(second), ...bundleFile(root) });
  await until('a certificate from the new issuer', async () => {
    await nextCertificate(web);
    return isSignedBy(web, second);
  });
  assert.equal(service.child.pid, pid);
  assert.equal(service.child.exitCode, null);
  assert.equal(await metric(service, /mutual_identity_issuer_reload_total\{result="accepted"\} (\d+)/), 1);
  assert.match(log(), /ca reload: issuer accepted/);

  // Three bad issuers, one after another: each is refused, counted, logged, and the old one serves on.
  const foreignRoot = await anchor();
  const bad: Array<[string, Record<string, string>, RegExp]> = [
    ['wrong key', issuerFiles(await issuerUnder(root), first), /MUTUAL_PKI_KEY_MISMATCH/],
    [
      'expired',
      issuerFiles(await issuerUnder(root, daysAgo(5), DAY_MS)),
      /MUTUAL_PKI_ISSUER_INVALID.*expired/,
    ],
    [
      'not under any anchor',
      issuerFiles(await issuerUnder(foreignRoot)),
      /MUTUAL_IDENTITY_CA_RELOAD_REFUSED.*does not chain to any trust anchor/,
    ],
  ];
  for (const [index, [what, files, logged]] of bad.entries()) {
    await writeSecretVolume(secret, { ...files, ...bundleFile(root) });
    await until(`the ${what} issuer to be refused`, async () =>
      (await metric(service, /mutual_identity_issuer_reload_total\{result="refused"\} (\d+)/)) === index + 1
        ? true
        : undefined,
    );
    assert.match(log(), logged, what);
    await nextCertificate(web);
    assert.ok(isSignedBy(web, second), `after the ${what} issuer, certificates still come from the old one`);
    assert.equal(web.identity.lastError(), undefined);
  }
  const ready = await fetch(new URL('/ready', service.adminUrl));
  assert.equal(ready.status, 200);
});

test('an anchor rotation (add root, switch issuer, drop old root) needs no restart and keeps workloads trusting each other', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-anchor-rotation-'));
  dirs.push(dir);
  const oldRoot = await anchor();
  const oldIssuer = await issuerUnder(oldRoot);
  const ca = join(dir, 'ca');
  await mkdir(ca);
  await writeAtomically(ca, { ...issuerFiles(oldIssuer), ...bundleFile(oldRoot) });
  const { service, log } = await startService(ca, join(dir, 'state'));
  const pid = service.child.pid;
  const web = await startWorkload(service, join(dir, 'state'), 'web', bundlePemOf(oldRoot));
  const db = await startWorkload(service, join(dir, 'state'), 'db', bundlePemOf(oldRoot));
  assertMutuallyTrusted(web, db);
  const newRoot = await anchor();
  const newIssuer = await issuerUnder(newRoot);
  const rootsOf = (workload: Workload) =>
    parseBundlePem(workload.identity.current()!.trustBundlePem).rootsDer.length;

  // 1. Add the new root: the served bundle changes and both workloads pick it up (long poll).
  await writeAtomically(ca, bundleFile(oldRoot, newRoot));
  for (const workload of [web, db]) {
    await until('the two-root bundle at the workload', () => rootsOf(workload) === 2);
  }
  assertMutuallyTrusted(web, db);

  // Dropping the old root now would orphan the issuer in use: refused, the two roots stay.
  await writeAtomically(ca, bundleFile(newRoot));
  await until('the premature root removal to be refused', async () =>
    (await metric(service, /mutual_identity_trust_anchors_reload_total\{result="refused"\} (\d+)/)) === 1
      ? true
      : undefined,
  );
  assert.match(log(), /trust-anchors refused .*do not cover the issuer in use/);
  await writeAtomically(ca, bundleFile(oldRoot, newRoot));

  // 2. Switch the issuer to one under the new root: renewed certificates chain to it.
  await writeAtomically(ca, issuerFiles(newIssuer));
  for (const workload of [web, db]) {
    await until('a certificate from the issuer under the new root', async () => {
      await nextCertificate(workload);
      return isSignedBy(workload, newIssuer);
    });
  }
  assertMutuallyTrusted(web, db);

  // 3. Drop the old root: the bundle shrinks everywhere, and renewals go on (the service's own
  // certificate was re-issued under the new root when the issuer changed).
  await writeAtomically(ca, bundleFile(newRoot));
  for (const workload of [web, db]) {
    await until('the one-root bundle at the workload', () => rootsOf(workload) === 1);
    await nextCertificate(workload);
    assert.ok(isSignedBy(workload, newIssuer));
    assert.equal(workload.identity.lastError(), undefined);
  }
  assertMutuallyTrusted(web, db);
  assert.equal(service.child.pid, pid);
  assert.equal(
    await metric(service, /mutual_identity_trust_anchors_reload_total\{result="accepted"\} (\d+)/),
    3,
  );
  assert.equal((await metric(service, /mutual_identity_trust_bundle_sequence (\d+)/)) >= 3, true);
});

test('dropping the old root while certificates under it are still valid is held until they expire, then applied by itself', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-early-root-drop-'));
  dirs.push(dir);
  const oldRoot = await anchor();
  const oldIssuer = await issuerUnder(oldRoot);
  const ca = join(dir, 'ca');
  await mkdir(ca);
  await writeAtomically(ca, { ...issuerFiles(oldIssuer), ...bundleFile(oldRoot) });
  const { service, log } = await startService(ca, join(dir, 'state'));
  const web = await startWorkload(service, join(dir, 'state'), 'web', bundlePemOf(oldRoot));
  const db = await startWorkload(service, join(dir, 'state'), 'db', bundlePemOf(oldRoot));
  const newRoot = await anchor();
  const newIssuer = await issuerUnder(newRoot);
  const rootsOf = (workload: Workload) =>
    parseBundlePem(workload.identity.current()!.trustBundlePem).rootsDer.length;
  await writeAtomically(ca, bundleFile(oldRoot, newRoot));
  for (const workload of [web, db]) {
    await until('the two-root bundle at the workload', () => rootsOf(workload) === 2);
  }

  // The issuer moves to the new root; its log line says how long the old root must stay.
  await writeAtomically(ca, issuerFiles(newIssuer));
  await until('the new issuer', () => /issuer accepted: now signing with .*under another root/.test(log()));
  const switchedAt = Date.now();
  assert.match(log(), /stay valid until \S+Z: keep its root \(O=Mutual, CN=Mutual trust anchor/);

  // The user drops the old root at once: workloads still present certificates under it (until
  // they renew), so every peer would refuse them. Held, said once, and the bundle keeps both roots.
  await writeAtomically(ca, bundleFile(newRoot));
  await until('the early root drop to be held', async () =>
    (await metric(service, /mutual_identity_trust_anchors_reload_total\{result="refused"\} (\d+)/)) === 1
      ? true
      : undefined,
  );
  assert.match(
    log(),
    /trust-anchors refused \[MUTUAL_IDENTITY_CA_RELOAD_REFUSED\]: .*drop the root .*stay valid until \S+Z.*applied by itself/,
  );
  assert.equal(rootsOf(web), 2);
  assert.equal(rootsOf(db), 2);
  assertMutuallyTrusted(web, db);

  // Once every certificate under the old root has expired (lifetime 4 s + skew 1 s after the
  // switch), the file is applied with no further write, and the workloads trust only the new root.
  for (const workload of [web, db]) {
    await until('the one-root bundle at the workload', () => rootsOf(workload) === 1);
    assert.ok(Date.now() - switchedAt >= 4000, 'not before the old certificates expired');
    assert.ok(isSignedBy(workload, newIssuer));
  }
  assertMutuallyTrusted(web, db);
  assert.equal(log().match(/drop the root/g)?.length, 1, 'the held drop is logged once');
  assert.equal(
    await metric(service, /mutual_identity_trust_anchors_reload_total\{result="refused"\} (\d+)/),
    1,
  );
});
