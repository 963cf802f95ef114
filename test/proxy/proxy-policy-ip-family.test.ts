// ipBlocks through a real sidecar whose inbound listens dual-stack on [::], so an IPv4 client
// arrives as ::ffff:127.0.0.1 and an IPv6 one as ::1. As in Envoy, a client matches only blocks of
// its own family: a DENY of 127.0.0.0/8 catches the mapped IPv4 client, and ::/0 in notIpBlocks is
// every IPv6 client, not every client (it used to let each IPv4 client out of the DENY).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';

const policy = (loopbackPort: number, familyPort: number) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: by-ip, namespace: demo }
spec:
  selector: { matchLabels: { app: emoji } }
  action: DENY
  rules:
    - from: [{ source: { ipBlocks: ["127.0.0.0/8"] } }]
      to: [{ operation: { ports: ["${loopbackPort}"] } }]
    - from: [{ source: { notIpBlocks: ["10.0.0.0/8", "::/0"] } }]
      to: [{ operation: { ports: ["${familyPort}"] } }]
`;

/** A plaintext GET from `localAddress` to `host:port`; resolves with the status code. */
function get(host: string, port: number, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host, port, localAddress, path: '/', agent: false }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    })
      .on('error', reject)
      .end();
  });
}

describe('ipBlocks on a dual-stack inbound', () => {
  let dir: string;
  const apps: Server[] = [];
  let proxy: ProxyProcess;
  let loopbackInbound: number;
  let familyInbound: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-ip-family-'));
    const policyDir = join(dir, 'policies');
    await mkdir(policyDir);
    const pki = await createTestPki(join(dir, 'pki'));
    const emoji = await pki.workload('emoji');
    const ports: number[] = [];
    for (let i = 0; i < 2; i++) {
      const app = createServer((_request, response) => response.end('ok'));
      await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
      apps.push(app);
      ports.push((app.address() as AddressInfo).port);
    }
    await writeFile(join(policyDir, 'by-ip.yaml'), policy(ports[0]!, ports[1]!));
    proxy = await startProxyProcess([
      ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
      ...['--inbound', `[::]:0=${ports[0]}`, '--inbound', `[::]:0=${ports[1]}`, '--mode', 'PERMISSIVE'],
      ...['--policy-dir', policyDir, '--label', 'app=emoji', '--admin-listen', '127.0.0.1:0'],
    ]);
    await proxy.untilReady();
    loopbackInbound = proxy.inbound[0]!.port;
    familyInbound = proxy.inbound[1]!.port;
  });

  after(async () => {
    await proxy?.stop();
    for (const app of apps) app.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a DENY of 127.0.0.0/8 catches an IPv4 client seen as ::ffff:127.0.0.1, not ::1', async () => {
    assert.equal(await get('127.0.0.1', loopbackInbound, '127.0.0.1'), 403);
    assert.equal(await get('::1', loopbackInbound, '::1'), 200);
  });

  test('notIpBlocks [10.0.0.0/8, ::/0] in a DENY refuses an IPv4 client outside 10/8 and no IPv6 client', async () => {
    assert.equal(await get('127.0.0.1', familyInbound, '127.0.0.1'), 403);
    assert.equal(await get('::1', familyInbound, '::1'), 200);
  });
});
