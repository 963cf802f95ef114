// `hosts` through a real sidecar, as Istio matches them: the Host as sent, without regard to case.
// istio.io (security best practices, "Writing Host Match Policies"): "exact match authorization
// policies only match the exact string given", so write ["example.com", "example.com:*"]. A
// sidecar matched `hosts: ["web.demo"]` with and without the port and let web.demo:8080 in.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';
import { rawHttp1Status } from '../e2e/plain-http-client.ts';

const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: hosts, namespace: demo }
spec:
  rules:
    - to: [{ operation: { hosts: ["web.demo", "api.example.com", "api.example.com:*"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: demo }
spec:
  action: DENY
  rules:
    - to: [{ operation: { hosts: ["api.example.com"], paths: ["/admin"] } }]
`;

let dir: string;
let app: Server;
let server: ProxyProcess;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-hosts-'));
  await writeFile(join(dir, 'policies.yaml'), POLICIES);
  const pki = await createTestPki(join(dir, 'pki'));
  const web = await pki.workload('web');
  app = createServer((_request, response) => response.end('ok'));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  server = await startProxyProcess([
    ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
    ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`, '--policy-dir', dir],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await server.untilReady();
});

after(async () => {
  await server?.stop();
  app?.close();
  await rm(dir, { recursive: true, force: true });
});

/** One plaintext HTTP/1.1 request with this Host; its status. */
function status(host: string, path = '/x'): Promise<number> {
  return rawHttp1Status(
    server.inbound[0]!.port,
    `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
  );
}

test('ALLOW hosts: the Host as written, in any case; with a port only where the policy says :*', async () => {
  assert.equal(await status('web.demo'), 200);
  assert.equal(await status('Web.Demo'), 200);
  assert.equal(await status('web.demo:8080'), 403);
  assert.equal(await status('web.demo.'), 403);
  assert.equal(await status('api.example.com:8443'), 200);
});

test('DENY hosts still holds with a port or a trailing dot (stricter than Istio)', async () => {
  assert.equal(await status('api.example.com', '/admin'), 403);
  assert.equal(await status('api.example.com:8443', '/admin'), 403);
  assert.equal(await status('api.example.com:8443', '/public'), 200);
});
