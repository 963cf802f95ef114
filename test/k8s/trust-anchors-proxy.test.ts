// The trust anchors of an injected proxy, with real processes: the proxy gets them only from
// MUTUAL_PROXY_IDENTITY_BUNDLE_PEM (as the injector writes them; no file, no ConfigMap in its
// namespace), certifies against a real identity service with them, and then follows the identity
// service's bundle long-poll: when the anchors file the service watches gains a second root (step 1
// of an anchor rotation), the running proxy trusts both without a restart.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type ProxyProcess, startProxyProcess, waitUntil } from '../../src/testing/mesh-pki.ts';
import {
  createCa,
  type IdentityServiceProcess,
  mintJoinToken,
  startIdentityService,
} from '../e2e/run-mutual.ts';

let dir: string;
let identity: IdentityServiceProcess;
let proxy: ProxyProcess;
const app = createServer((_request, response) => response.end('ok'));

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-anchors-env-'));
  await createCa(join(dir, 'ca'));
  identity = await startIdentityService(join(dir, 'ca'), join(dir, 'state'));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
});

after(async () => {
  await proxy?.stop();
  await identity?.stop();
  app.close();
  await rm(dir, { recursive: true, force: true });
});

interface IdentityAnswer {
  spiffeId: string | null;
  roots?: number;
  trustBundlePem?: string;
}

test('a proxy with the anchors only in its environment certifies, then follows a second root published by the identity service without a restart', async () => {
  const anchorsPem = await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8');
  const tokenFile = join(dir, 'web.token');
  await writeFile(tokenFile, await mintJoinToken(join(dir, 'state'), 'demo', 'web'), { mode: 0o600 });
  proxy = await startProxyProcess(
    [
      ...['--identity-url', identity.apiUrl.toString(), '--token-file', tokenFile],
      ...['--spiffe-id', 'spiffe://cluster.local/ns/demo/sa/web'],
      ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`, '--admin-listen', '127.0.0.1:0'],
    ],
    { MUTUAL_PROXY_IDENTITY_BUNDLE_PEM: anchorsPem },
  );
  await proxy.untilReady();
  const current = async () => (await (await fetch(`${proxy.adminUrl}/identity`)).json()) as IdentityAnswer;
  const first = await current();
  assert.equal(first.spiffeId, 'spiffe://cluster.local/ns/demo/sa/web');
  assert.equal(first.roots, 1);

  // Step 1 of a rotation: the anchors the identity service watches now hold the old and a new root
  // (on a cluster: the mutual-trust-anchors ConfigMap, refreshed in its pod by the kubelet).
  await createCa(join(dir, 'ca-new'));
  const newRoot = await readFile(join(dir, 'ca-new', 'bundle.pem'), 'utf8');
  await writeFile(join(dir, 'ca', 'bundle.pem.tmp'), `${anchorsPem}${newRoot}`);
  await rename(join(dir, 'ca', 'bundle.pem.tmp'), join(dir, 'ca', 'bundle.pem'));
  await waitUntil(async () => (await current()).roots === 2, 'the running proxy to trust both roots');
  const after = await current();
  assert.ok(after.trustBundlePem?.includes(newRoot.trim()), 'the new root is in the bundle the proxy uses');
  assert.match(proxy.output(), /trust bundle updated/);
});
