// Istio's `serviceAccounts` through a real inbound sidecar: a request from the named service
// account is allowed, every other peer (another account, the same name in another namespace,
// plaintext) gets 403; a bare name is in the policy's namespace; a hot-reloaded policy takes
// effect, and one Istio would refuse (a wildcard, a targetRefs) is refused with the last good set
// kept in force. The mesh's trust domain is example.org: service accounts do not name one.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';

const policy = (serviceAccounts: string, extra = '') => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: voting, namespace: demo }
spec:
${extra}  rules:
    - from: [{ source: { serviceAccounts: ${serviceAccounts} } }]
`;

let dir: string;
let app: Server;
let policyFile: string;
let server: ProxyProcess;
const clients = new Map<string, ProxyProcess>();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-sa-'));
  const policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  policyFile = join(policyDir, 'voting.yaml');
  await writeFile(policyFile, policy('["web"]'));
  const pki = await createTestPki(join(dir, 'pki'), 'example.org');
  const voting = await pki.workload('voting');
  app = createServer((request, response) => response.end(`ok ${request.url}`));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  server = await startProxyProcess([
    ...['--cert', voting.certFile, '--key', voting.keyFile, '--bundle', voting.bundleFile],
    ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`, '--policy-dir', policyDir],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  const callers = { web: {}, bot: {}, 'prod-web': { ns: 'prod', sa: 'web' } };
  for (const [name, options] of Object.entries(callers)) {
    const caller = await pki.workload(name, options);
    const proxy = await startProxyProcess([
      ...['--cert', caller.certFile, '--key', caller.keyFile, '--bundle', caller.bundleFile],
      ...['--upstream', `127.0.0.1:0=${voting.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
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

interface Answer {
  status: number;
  deniedBy: string | undefined;
}

/** One HTTP/1.1 request through `caller`'s outbound sidecar (mTLS as its service account), or plaintext. */
function call(caller: string | 'plaintext'): Promise<Answer> {
  const port = caller === 'plaintext' ? server.inbound[0]!.port : clients.get(caller)!.outbound[0]!.port;
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
    socket.end('GET /vote HTTP/1.1\r\nHost: voting.demo\r\nConnection: close\r\n\r\n', 'latin1');
  });
}

/** Polls until `caller` gets `status` (a reload is debounced), failing after 10 s. */
async function until(caller: string, status: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await call(caller)).status !== status) {
    if (Date.now() > deadline) assert.fail(`${caller} never got ${status}:\n${server.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits for the sidecar to log that it refused the files, and returns what it said. */
async function refusal(count: number): Promise<string> {
  const deadline = Date.now() + 10_000;
  const refusals = () => server.output().match(/policy files refused[^\n]*/g) ?? [];
  while (refusals().length < count && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(refusals().length, count, server.output());
  return refusals().at(-1)!;
}

test('serviceAccounts: ["web"] (policy in demo) allows demo/web, and only it', async () => {
  assert.deepEqual(await call('web'), { status: 200, deniedBy: undefined });
  assert.deepEqual(await call('bot'), { status: 403, deniedBy: 'demo/voting' });
  assert.deepEqual(await call('prod-web'), { status: 403, deniedBy: 'demo/voting' });
  assert.equal((await call('plaintext')).status, 403);
});

test('a reloaded serviceAccounts: ["prod/web"] lets prod/web in and keeps demo/web out', async () => {
  await writeFile(policyFile, policy('["prod/web"]'));
  await until('prod-web', 200);
  assert.deepEqual(await call('web'), { status: 403, deniedBy: 'demo/voting' });
});

test('a wildcard or a targetRefs is refused as Istio refuses it, and the last good set stays', async () => {
  await writeFile(policyFile, policy('["demo/*"]'));
  assert.match(
    await refusal(1),
    /MUTUAL_POLICY_INVALID.*serviceAccounts\[0\]: \\?"demo\/\*\\?" has a \\?"\*\\?"/,
  );
  await writeFile(policyFile, policy('["web"]', '  targetRefs: [{ kind: Service, name: voting }]\n'));
  assert.match(await refusal(2), /MUTUAL_POLICY_UNSUPPORTED.*targetRefs\[0\]: a policy attached to Service/);
  assert.deepEqual(await call('prod-web'), { status: 200, deniedBy: undefined });
  assert.deepEqual(await call('web'), { status: 403, deniedBy: 'demo/voting' });
});
