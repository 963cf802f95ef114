// `--mode` / `--port-mode` beside `--policy-dir`: where no PeerAuthentication of the directory sets
// a mode they apply, as with `--policy-url`. Before, they were dropped silently: `--mode STRICT`
// with a directory of AuthorizationPolicies only took plaintext.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  createTestPki,
  type ProxyProcess,
  readTlsCredentials,
  startProxyProcess,
  type WorkloadFiles,
} from '../../src/testing/mesh-pki.ts';

const DENY_ADMIN = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-admin, namespace: demo }
spec:
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/admin"] } }]
`;
const NAMESPACE_PERMISSIVE = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: demo }
spec: { mtls: { mode: PERMISSIVE } }
`;

let dir: string;
let apps: Server[];
let appPorts: number[];
let web: WorkloadFiles;
let emoji: WorkloadFiles;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-dir-modes-'));
  const pki = await createTestPki(dir);
  web = await pki.workload('web');
  emoji = await pki.workload('emoji');
  apps = [0, 1].map(() => createServer((_req, res) => res.end('app')));
  await Promise.all(apps.map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
  appPorts = apps.map((s) => (s.address() as AddressInfo).port);
});

after(async () => {
  for (const s of apps) s.close();
  await rm(dir, { recursive: true, force: true });
});

async function startWith(
  name: string,
  files: Record<string, string>,
  modeArgs: string[],
): Promise<ProxyProcess> {
  const policyDir = join(dir, name);
  await mkdir(policyDir, { recursive: true });
  for (const [file, text] of Object.entries(files)) await writeFile(join(policyDir, file), text);
  const proxy = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...['--inbound', `127.0.0.1:0=${appPorts[0]}`, '--inbound', `127.0.0.1:0=${appPorts[1]}`],
    ...['--policy-dir', policyDir, ...modeArgs, '--admin-listen', '127.0.0.1:0'],
  ]);
  await proxy.untilReady();
  return proxy;
}

/** A plaintext GET: the status, or 'refused' when the sidecar closes the connection. */
async function plain(port: number): Promise<number | 'refused'> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/`)).status;
  } catch {
    return 'refused';
  }
}

async function mtls(port: number): Promise<number> {
  const credentials = await readTlsCredentials(web);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path: '/', ...credentials, rejectUnauthorized: false, agent: false },
      (res) => {
        res.resume();
        resolve(res.statusCode!);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('--mode STRICT and --port-mode apply where the directory sets no mode', async () => {
  const proxy = await startWith('authz-only', { 'deny.yaml': DENY_ADMIN }, [
    ...['--mode', 'STRICT', '--port-mode', `${appPorts[1]}=PERMISSIVE`],
  ]);
  try {
    const [strict, permissive] = proxy.inbound;
    assert.equal(await plain(strict!.port), 'refused');
    assert.equal(await mtls(strict!.port), 200);
    assert.equal(await plain(permissive!.port), 200);
    const metrics = await proxy.metrics();
    assert.match(metrics, /mutual_inbound_refused_total\{reason="plaintext_strict",port="\d+"\} 1/);
  } finally {
    await proxy.stop();
  }
});

test('a PeerAuthentication in the directory decides over --mode', async () => {
  const proxy = await startWith(
    'peer-authentication',
    { 'deny.yaml': DENY_ADMIN, 'pa.yaml': NAMESPACE_PERMISSIVE },
    ['--mode', 'STRICT'],
  );
  try {
    assert.equal(await plain(proxy.inbound[0]!.port), 200);
  } finally {
    await proxy.stop();
  }
});
