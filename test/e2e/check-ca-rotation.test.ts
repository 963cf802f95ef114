// `mutual check` during a CA rotation, with a real identity service watching STATE/ca and two real
// sidecars (static certificates, so which issuer signed each is fixed): an issuer the service
// refused fails check (the files alone looked fine), a root added to bundle.pem that a sidecar
// does not trust yet and an issuer switch are counted as rotation progress, and a bundle dropping
// the old root, held by the service until certificates under it expire, is reported as held.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { CaStatusAnswer } from '../../src/identity/index.ts';
import { processStartTicks } from '../../src/mesh/index.ts';
import { createCa, repoRoot, runMutual, startIdentityService } from './run-mutual.ts';

const TD = 'cluster.local';
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** `mutual proxy run` on static files; resolves with its admin URL. */
async function startSidecar(dir: string): Promise<{ child: ChildProcess; adminUrl: string }> {
  const child = spawn(
    process.execPath,
    [
      join(repoRoot(), 'bin', 'mutual.js'),
      ...['proxy', 'run', '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem')],
      ...['--bundle', join(dir, 'bundle.pem'), '--inbound', '127.0.0.1:0=9', '--admin-listen', '127.0.0.1:0'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  cleanups.push(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await once(child, 'exit');
  });
  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  for await (const chunk of child.stdout!) {
    output += String(chunk);
    const match = /admin\s+(http:\/\/\S+)/.exec(output);
    if (match) {
      child.stdout!.resume();
      return { child, adminUrl: match[1]! };
    }
  }
  throw new Error(`mutual proxy run exited: ${output}`);
}

/** Replaces a file in one rename, as `cp` of a finished file would look to the watcher. */
async function replace(path: string, contents: string) {
  await writeFile(`${path}.tmp`, contents);
  await rename(`${path}.tmp`, path);
}

test('check shows a refused issuer, rotation progress and a held trust bundle', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-check-rotation-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const state = join(dir, 'state');
  const caDir = join(state, 'ca');
  // A: the mesh's CA; B: the next anchor and its issuer; C: a CA the mesh never trusts.
  await Promise.all([createCa(caDir), createCa(join(dir, 'b')), createCa(join(dir, 'c'))]);
  const [rootA, rootB, issuerA, keyA] = await Promise.all([
    readFile(join(caDir, 'bundle.pem'), 'utf8'),
    readFile(join(dir, 'b', 'bundle.pem'), 'utf8'),
    readFile(join(caDir, 'issuer.crt'), 'utf8'),
    readFile(join(caDir, 'issuer.key'), 'utf8'),
  ]);
  // web: from the first issuer, trusting root A only; cart: from issuer B, trusting both.
  for (const [name, ca] of [
    ['web', caDir],
    ['cart', join(dir, 'b')],
  ] as const) {
    const issued = await runMutual([
      ...['cert', 'issue', '--ca', ca, '--spiffe-id', `spiffe://${TD}/ns/shop/sa/${name}`],
      ...['--out', join(dir, name)],
    ]);
    assert.equal(issued.code, 0, issued.stderr);
  }
  await writeFile(join(dir, 'cart', 'bundle.pem'), rootA + rootB);

  const identity = await startIdentityService(caDir, join(state, 'identity'), ['--lifetime', '1h']);
  cleanups.push(() => identity.stop());
  const [web, cart] = await Promise.all([startSidecar(join(dir, 'web')), startSidecar(join(dir, 'cart'))]);
  const self = { pid: process.pid, startTicks: processStartTicks(process.pid) ?? 0 };
  const proc = (child: ChildProcess) => ({
    pid: child.pid!,
    startTicks: processStartTicks(child.pid!) ?? 0,
    log: '/dev/null',
    argv: [],
  });
  const service = (name: string, sidecar: { child: ChildProcess; adminUrl: string }) => ({
    name,
    namespace: 'shop',
    serviceAccount: name,
    spiffeId: `spiffe://${TD}/ns/shop/sa/${name}`,
    labels: { app: name },
    ports: [],
    upstreams: [],
    adminUrl: sidecar.adminUrl,
    app: { ...self, log: '/dev/null', argv: [] },
    proxy: proc(sidecar.child),
  });
  await writeFile(
    join(state, 'runtime.json'),
    JSON.stringify({
      version: 1,
      file: 'mesh.yaml',
      trustDomain: TD,
      stateDir: state,
      startedAt: new Date().toISOString(),
      supervisor: self,
      identity: {
        ...proc(identity.child),
        apiUrl: identity.apiUrl.href.replace(/\/$/, ''),
        adminUrl: identity.adminUrl.href.replace(/\/$/, ''),
      },
      services: [service('web', web), service('cart', cart)],
    }),
  );
  const caInForce = async () =>
    (await (await fetch(new URL('/ca', identity.adminUrl))).json()) as CaStatusAnswer;
  const check = async () => {
    const result = await runMutual(['check', '--state-dir', state]);
    return { ...result, stdout: result.stdout.replaceAll(state, 'STATE') };
  };

  // Before any change: what is on disk is in force; cart's certificate is not from it.
  const first = await check();
  assert.match(first.stdout, /√ identity service has the issuer and trust anchors on disk in force\n/);

  // 1. An issuer under a root bundle.pem does not hold: refused; check fails and says so.
  await copyFile(join(dir, 'c', 'issuer.key'), join(caDir, 'issuer.key.next'));
  await replace(join(caDir, 'issuer.crt'), await readFile(join(dir, 'c', 'issuer.crt'), 'utf8'));
  await rename(join(caDir, 'issuer.key.next'), join(caDir, 'issuer.key'));
  await until('the issuer refused', async () =>
    (await caInForce()).lastReload.issuer?.result === 'refused' ? true : undefined,
  );
  const refused = await check();
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(
    refused.stdout,
    /× identity service has the issuer and trust anchors on disk in force\n {4}issuer\.crt: the identity service refused STATE\/ca\/issuer\.crt \[MUTUAL_IDENTITY_CA_RELOAD_REFUSED\] at \S+ and still signs with the previous issuer; why: `mutual logs identity --state-dir STATE`\n {6}on disk: {2}O=Mutual, CN=Mutual issuer cluster\.local \w+ \(SHA-256 \w{16}…\)\n {6}in force: O=Mutual, CN=Mutual issuer cluster\.local \w+ \(SHA-256 \w{16}…\), expires \S+\n {4}why: /,
  );
  await replace(join(caDir, 'issuer.key'), keyA);
  await replace(join(caDir, 'issuer.crt'), issuerA);
  await until('the first issuer back', async () =>
    (await caInForce()).lastReload.issuer?.result === 'accepted' ? true : undefined,
  );

  // 2. Root B added: accepted; web's sidecar (static bundle) does not trust it.
  await replace(join(caDir, 'bundle.pem'), rootA + rootB);
  await until('root B in force', async () =>
    (await caInForce()).trustBundle.roots.length === 2 ? true : undefined,
  );
  const added = await check();
  assert.match(added.stdout, /√ identity service has the issuer and trust anchors on disk in force\n/);
  assert.match(
    added.stdout,
    /i sidecars have certificates from the issuer in force and trust every root it serves\n {4}1 of 2 sidecars on the issuer in force; the rest renew by \S+; 1 sidecar missing a root of the bundle in force\n[\s\S]*\n {6}web: does not trust O=Mutual, CN=Mutual trust anchor cluster\.local \w+ \(SHA-256 \w{16}…\) yet \(the bundle in force has 2 roots\)\n/,
  );

  // 3. The issuer switched to B's: cart is on it, web renews onto it by its renewAt.
  await copyFile(join(dir, 'b', 'issuer.key'), join(caDir, 'issuer.key.next'));
  await replace(join(caDir, 'issuer.crt'), await readFile(join(dir, 'b', 'issuer.crt'), 'utf8'));
  await rename(join(caDir, 'issuer.key.next'), join(caDir, 'issuer.key'));
  const issuerB = (await runMutual(['cert', 'inspect', join(dir, 'b', 'issuer.crt'), '-o', 'json'])).stdout;
  await until('issuer B in force', async () => {
    const inForce = await caInForce();
    return issuerB.includes(inForce.issuer.fingerprintSha256) ? true : undefined;
  });
  const webIdentity = (await (await fetch(`${web.adminUrl}/identity`)).json()) as { renewAt: string };
  const switched = await check();
  assert.match(switched.stdout, /√ identity service has the issuer and trust anchors on disk in force\n/);
  assert.ok(
    switched.stdout.includes(
      `    1 of 2 sidecars on the issuer in force; the rest renew by ${webIdentity.renewAt}; 1 sidecar missing a root`,
    ),
    switched.stdout,
  );
  assert.match(
    switched.stdout,
    /\n {6}issuer in force: O=Mutual, CN=Mutual issuer cluster\.local \w+ \(SHA-256 \w{16}…\)\n {6}web: from another issuer, O=Mutual, CN=Mutual issuer cluster\.local \w+ \(SHA-256 \w{16}…\); renews by \S+ \(valid until \S+\)\n/,
  );

  // 4. Root A dropped while certificates from the first issuer are valid: held, reported as such.
  await replace(join(caDir, 'bundle.pem'), rootB);
  const held = await until('the bundle held', async () => (await caInForce()).heldTrustBundle ?? undefined);
  assert.equal((await caInForce()).trustBundle.roots.length, 2);
  const holding = await check();
  assert.ok(
    holding.stdout.includes(
      `√ identity service has the issuer and trust anchors on disk in force: bundle.pem is held until ${held.until}: it drops O=Mutual, CN=Mutual trust anchor cluster.local`,
    ),
    holding.stdout,
  );
  assert.match(
    holding.stdout,
    /which certificates from an earlier issuer still chain to; it is applied by itself then\n/,
  );
  // Peers still trust root A (the service serves it until then): web's certificate is fine.
  assert.match(holding.stdout, /√ certificate is valid and chained to the trust bundle \(web, cart\)\n/);
});
