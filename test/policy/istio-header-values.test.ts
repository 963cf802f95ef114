// `when: request.headers[...]` through a real sidecar, as Istio matches it (istio.io, Authorization
// Policy Normalization, "Duplicate headers"): a header sent twice is merged with "," (foo,bar) and
// matched as one string. node:http(2) keep only the first User-Agent and join others with ", ",
// so a DENY on the merged value let through a request an app reads all of. Stricter than Istio, a
// DENY also matches one `,`-separated element (x-user: good,evil), which an app may read alone.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createHttp2Server, type Http2Server, connect as http2Connect } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';
import { rawHttp1Status } from '../e2e/plain-http-client.ts';

const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-headers, namespace: demo }
spec:
  action: DENY
  rules:
    - when: [{ key: "request.headers[x-user]", values: ["evil"] }]
    - when: [{ key: "request.headers[User-Agent]", values: ["*scanner/1"] }]
    - when: [{ key: "request.headers[:method]", values: ["DELETE"] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-tenants, namespace: demo }
spec:
  rules:
    - when: [{ key: "request.headers[x-tenant]", values: ["acme", "acme,eu"] }]
`;

let dir: string;
let app: Server;
let http2App: Http2Server;
let server: ProxyProcess;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-headers-'));
  await writeFile(join(dir, 'policies.yaml'), POLICIES);
  const pki = await createTestPki(join(dir, 'pki'));
  const emoji = await pki.workload('emoji');
  app = createServer((_request, response) => response.end('ok'));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  http2App = createHttp2Server().on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  await new Promise<void>((resolve) => http2App.listen(0, '127.0.0.1', resolve));
  server = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`, '--policy-dir', dir],
    ...['--inbound', `127.0.0.1:0=${(http2App.address() as AddressInfo).port}`],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await server.untilReady();
});

after(async () => {
  await server?.stop();
  app?.close();
  http2App?.close();
  await rm(dir, { recursive: true, force: true });
});

/** One plaintext HTTP/1.1 request with the raw header lines given; its status. */
function http1(headerLines: string, method = 'GET'): Promise<number> {
  return rawHttp1Status(
    server.inbound[0]!.port,
    `${method} /x HTTP/1.1\r\nHost: emoji.demo\r\n${headerLines}Connection: close\r\n\r\n`,
  );
}

/** One plaintext HTTP/2 request with the headers given as [name, value] pairs; its status. */
async function http2(pairs: readonly (readonly [string, string])[]): Promise<number> {
  const session = http2Connect(`http://127.0.0.1:${server.inbound[1]!.port}`);
  session.on('error', () => {});
  try {
    const raw = [':method', 'GET', ':path', '/x', ':authority', 'emoji.demo', ...pairs.flat()];
    const stream = session.request(raw as unknown as Record<string, string>, { endStream: true });
    const status = await new Promise<number>((resolve, reject) => {
      stream.on('response', (headers) => resolve(Number(headers[':status'])));
      stream.on('error', reject);
    });
    stream.resume();
    return status;
  } finally {
    session.close();
  }
}

test('HTTP/1: a DENY on a header value holds when the value comes second of two header lines', async () => {
  assert.equal(await http1('x-tenant: acme\r\nx-user: good\r\n'), 200);
  assert.equal(await http1('x-tenant: acme\r\nx-user: evil\r\n'), 403);
  assert.equal(await http1('x-tenant: acme\r\nx-user: good\r\nx-user: evil\r\n'), 403);
  assert.equal(await http1('x-tenant: acme\r\nx-user: good,evil\r\n'), 403);
  // node:http keeps only the first User-Agent; Envoy sees curl/8,scanner/1 (and an app may read the last).
  assert.equal(await http1('x-tenant: acme\r\nUser-Agent: curl/8\r\nUser-Agent: scanner/1\r\n'), 403);
});

test('HTTP/1: an ALLOW matches the values merged with "," as one string, as Istio does', async () => {
  assert.equal(await http1('x-tenant: acme\r\nx-tenant: eu\r\n'), 200);
  assert.equal(await http1('x-tenant: other\r\nx-tenant: acme\r\n'), 403);
  assert.equal(await http1('x-tenant: acme, eu\r\n'), 403);
});

test('HTTP/2: the same, for header fields repeated in one HEADERS frame', async () => {
  assert.equal(await http2([['x-tenant', 'acme']]), 200);
  assert.equal(
    await http2([
      ['x-tenant', 'acme'],
      ['x-user', 'good'],
      ['x-user', 'evil'],
    ]),
    403,
  );
  assert.equal(
    await http2([
      ['x-tenant', 'acme'],
      ['x-tenant', 'eu'],
    ]),
    200,
  );
  assert.equal(
    await http2([
      ['x-tenant', 'other'],
      ['x-tenant', 'acme'],
    ]),
    403,
  );
});

test('HTTP/1: request.headers[:method] matches the method, as in Envoy, though HTTP/1 has no such line', async () => {
  assert.equal(await http1('x-tenant: acme\r\n', 'POST'), 200);
  assert.equal(await http1('x-tenant: acme\r\n', 'DELETE'), 403);
});
