// Istio's AuthorizationPolicy semantics where Mutual once differed, through real sidecars in a
// mesh whose trust domain is example.org (not cluster.local): principals written
// `cluster.local/...` name the mesh's own trust domain, `namespaces` match as Istio's regex over
// the whole principal, a header `*` is a presence check, and an empty source is refused rather
// than read as "any peer".
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';

const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: mesh-peers, namespace: demo }
spec:
  rules:
    - from: [{ source: { principals: ["*"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny, namespace: demo }
spec:
  action: DENY
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/evil/sa/bad"] } }]
    - from: [{ source: { namespaces: ["prod"] } }]
    - when: [{ key: "request.headers[x-debug]", values: ["*"] }]
`;

let dir: string;
let app: Server;
let policyDir: string;
let server: ProxyProcess;
const clients = new Map<string, ProxyProcess>();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-istio-'));
  policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  await writeFile(join(policyDir, 'policies.yaml'), POLICIES);
  const pki = await createTestPki(join(dir, 'pki'), 'example.org');
  const emoji = await pki.workload('emoji');
  app = createServer((request, response) => response.end(`ok ${request.url}`));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  server = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`, '--policy-dir', policyDir],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  const callers = {
    web: {},
    bad: { ns: 'evil', sa: 'bad' },
    deep: { spiffeId: 'spiffe://example.org/ns/dev/sa/x/ns/prod/y' },
  };
  for (const [name, options] of Object.entries(callers)) {
    const caller = await pki.workload(name, options);
    const proxy = await startProxyProcess([
      ...['--cert', caller.certFile, '--key', caller.keyFile, '--bundle', caller.bundleFile],
      ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
      ...['--admin-listen', '127.0.0.1:0'],
    ]);
    clients.set(name, proxy);
  }
  for (const proxy of [server, ...clients.values()]) await proxy.untilReady();
});

after(async () => {
  await Promise.all([server, ...clients.values()].map((proxy) => proxy?.stop()));
  app?.close();
  await rm(dir, { recursive: true, force: true });
});

/** One raw HTTP/1.1 request through `caller`'s outbound (mTLS to the server); status and denier. */
function call(caller: string, headers = ''): Promise<{ status: number; deniedBy: string | undefined }> {
  const port = clients.get(caller)!.outbound[0]!.port;
  return raw(port, headers);
}

function raw(port: number, headers = ''): Promise<{ status: number; deniedBy: string | undefined }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
    });
    socket.on('error', reject);
    socket.on('close', () =>
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0),
        deniedBy: /\r\nx-mutual-denied-by: ([^\r]*)/i.exec(text)?.[1],
      }),
    );
    socket.end(`GET /x HTTP/1.1\r\nHost: emoji.demo\r\n${headers}Connection: close\r\n\r\n`, 'latin1');
  });
}

test('cluster.local/ns/evil/sa/bad denies example.org/ns/evil/sa/bad, as in Istio; others pass', async () => {
  assert.deepEqual(await call('web'), { status: 200, deniedBy: undefined });
  assert.deepEqual(await call('bad'), { status: 403, deniedBy: 'demo/deny' });
});

test('namespaces: ["prod"] matches /ns/prod/ anywhere in the principal, as Istio\'s regex does', async () => {
  assert.deepEqual(await call('deep'), { status: 403, deniedBy: 'demo/deny' });
});

test('request.headers[x-debug]: ["*"] denies a request that sends the header empty', async () => {
  assert.deepEqual(await call('web', 'X-Debug:\r\n'), { status: 403, deniedBy: 'demo/deny' });
  assert.deepEqual(await call('web', 'X-Debug: 1\r\n'), { status: 403, deniedBy: 'demo/deny' });
});

test('an ALLOW with an empty source is refused, not read as "any peer": plaintext stays out', async () => {
  const plaintext = () => raw(server.inbound[0]!.port);
  assert.equal((await plaintext()).status, 403);
  await writeFile(
    join(policyDir, 'widen.yaml'),
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: generated, namespace: demo }
spec:
  rules:
    - from: [{ source: { principals: [] } }]
`,
  );
  const deadline = Date.now() + 10_000;
  while (!/policy files refused/.test(server.output()) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.match(server.output(), /policy files refused.*a source must set at least one field/);
  assert.equal((await plaintext()).status, 403);
});

test('a namespace-wide PeerAuthentication with portLevelMtls is refused, as Istio refuses it', async () => {
  await rm(join(policyDir, 'widen.yaml'), { force: true });
  await writeFile(
    join(policyDir, 'peer.yaml'),
    `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: namespace-wide, namespace: demo }
spec:
  mtls: { mode: STRICT }
  portLevelMtls:
    "${server.inbound[0]!.port}": { mode: DISABLE }
`,
  );
  const deadline = Date.now() + 10_000;
  while (!/portLevelMtls needs a selector/.test(server.output()) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.match(server.output(), /policy files refused.*portLevelMtls needs a selector/);
  // The last good set stays: PERMISSIVE, so a plaintext client is still answered (403 by policy).
  assert.equal((await raw(server.inbound[0]!.port)).status, 403);
});
